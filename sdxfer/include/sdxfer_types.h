/*
 * The integer types sdxfer's headers use: the kernel's own under BPF (BCC's,
 * or in a CO-RE build vmlinux.h's, from sdxfer_core.h, which `sdxfer build`
 * includes before the program), and in a host build (SDXFER_HOST) the
 * kernel's <linux/types.h> where it exists, else the same names over
 * <stdint.h>. Included by the generated xfer.h.
 */
#ifndef SDXFER_TYPES_H
#define SDXFER_TYPES_H

#ifdef SDXFER_HOST
#include <stddef.h>
#include <string.h>
#include <time.h>
/* The kernel's __u64 is unsigned long long, uint64_t may be unsigned long:
 * take the kernel's types where they exist so both can be included. */
#ifdef __has_include
#if __has_include(<linux/types.h>)
#define SDXFER_HOST_LINUX_TYPES
#endif
#endif
#ifdef SDXFER_HOST_LINUX_TYPES
#include <linux/types.h>
#else
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int8_t __s8;
typedef int16_t __s16;
typedef int32_t __s32;
typedef int64_t __s64;
#endif
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#elif !defined(SDXFER_CORE)
/* BCC attaches programs by their names, sdxfer_core.h by sections. */
#define SDXFER_TAIL_CALLED
#endif

#endif /* SDXFER_TYPES_H */
