/*
 * Memory reads the copiers use (kernel, user, or BPF memory), the bound
 * that proves a helper's length to the verifier, and bounded loops.
 * A part of sdxfer_runtime.h, which includes it.
 */
#ifndef SDXFER_READ_H
#define SDXFER_READ_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_read.h"
#endif

#ifdef SDXFER_HOST
/* Same contract as bpf_probe_read_*_str: at most size - 1 bytes and a NUL;
 * returns the bytes written, NUL included. */
static __always_inline long sdxfer_read_str(void *dst, __u32 size, const void *src)
{
    const char *text = (const char *)src;
    size_t n = 0;

    while (n < size - 1 && text[n])
        n++;
    memcpy(dst, src, n);
    ((char *)dst)[n] = '\0';
    return (long)n + 1;
}
#define sdxfer_read_kernel_str sdxfer_read_str
#define sdxfer_read_user_str sdxfer_read_str

static __always_inline long sdxfer_read(void *dst, __u32 size, const void *src)
{
    memcpy(dst, src, size);
    return 0;
}
#define sdxfer_read_kernel sdxfer_read
#define sdxfer_read_user sdxfer_read

#define sdxfer_bound(n, max) ((void)0)

#else /* BPF, under BCC */

#define sdxfer_read_kernel_str bpf_probe_read_kernel_str
#define sdxfer_read_kernel bpf_probe_read_kernel

/* User-memory fields also take BPF memory the probe filled itself (say, a
 * failed exec's argv gathered in its locals, or a path sdxfer_path.h built).
 * A kernel address (the upper half on x86-64 and arm64) is read as kernel
 * memory at once: a user read of one only fails, and on x86 since kernel
 * 6.12 (masked user access) it fails by taking a fault, about 1 us. Where
 * that test does not hold, a failed user read is still tried as kernel memory. */
static __always_inline int sdxfer_kernel_address(const void *src)
{
    return (__s64)(unsigned long)src < 0;
}

static __always_inline long sdxfer_read_user_str(void *dst, __u32 size, const void *src)
{
    long n = -1;

    if (!sdxfer_kernel_address(src))
        n = bpf_probe_read_user_str(dst, size, src);
    if (n < 0)
        n = bpf_probe_read_kernel_str(dst, size, src);
    return n;
}

static __always_inline long sdxfer_read_user(void *dst, __u32 size, const void *src)
{
    long err = -1;

    if (!sdxfer_kernel_address(src))
        err = bpf_probe_read_user(dst, size, src);
    if (err < 0)
        err = bpf_probe_read_kernel(dst, size, src);
    return err;
}

/* clang may test a copy of a clamped length and hand the helper the
 * original register; checking again in asm bounds the register it gets. */
#define sdxfer_bound(n, max) asm volatile("if %0 <= %1 goto +1; %0 = %1" : "+r"(n) : "i"(max))
#endif

/* Calls step(i, state) for i = 0, 1, ... below count and at most max (a
 * constant), until it returns non-zero: `static long step(__u32 i, void
 * *state)`. state points to the stack (bpf_loop's rule): pointers and
 * values set before the loop; what changes from one call to the next is
 * kept in map memory. */
#ifdef SDXFER_CORE
/* bpf_loop (kernel 5.17): the verifier checks step until its states settle
 * (at once, when nothing it tracks changes between calls), not once per
 * iteration as it does a loop's body. */
#define SDXFER_LOOP(count, max, step, state)                                                       \
    bpf_loop((count) < (max) ? (count) : (max), step, state, 0)
#else
/* BCC links no BPF-to-BPF calls (and the host has no bpf_loop): the loop is
 * walked inline. */
#define SDXFER_LOOP(count, max, step, state)                                                       \
    for (__u32 sdxfer_loop_i = 0; sdxfer_loop_i < (max) && sdxfer_loop_i < (count); sdxfer_loop_i++) \
        if (step(sdxfer_loop_i, state))                                                           \
            break
#endif

#endif /* SDXFER_READ_H */
