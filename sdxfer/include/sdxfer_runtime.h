/*
 * sdxfer's C runtime: everything a packer needs that no schema decides.
 *
 * Not included directly: a generated xfer.h defines the shared facts first
 * (SDXFER_* macros and structs from sdxfer/record.py, the slot size and
 * event count of its schema, the maps and their accessors), includes this
 * file, then defines the packers.
 *
 * Its parts, included below in this order:
 *
 *   sdxfer_slots.h    scratch slots claimed atomically per CPU: a program
 *                     interrupted (or, where the kernel allows it, preempted)
 *                     mid-record keeps its slots and the other program takes
 *                     free ones; with none free a record is dropped and counted
 *                     (nesting_drops, and the event's drop counter);
 *                     SDXFER_LOCAL(type, name) gives a probe a slot for its
 *                     large locals, given back when `name` goes out of scope
 *   sdxfer_read.h     kernel and user memory reads (user reads fall back to
 *                     kernel ones, for BPF memory), the verifier's bound and
 *                     SDXFER_LOOP (bpf_loop in CO-RE, a plain loop under BCC)
 *   sdxfer_members.h  kernel member reads: a word of kernel memory, the
 *                     current task's members through its BTF pointer
 *   sdxfer_copy.h     copiers: sdxfer_put_str / sdxfer_put_blob / sdxfer_put_fixed
 *   sdxfer_path.h     bounded kernel path walks (BPF only): a struct path,
 *                     a file or a task's fd or cwd as d_path shows it, and a
 *                     relative user path joined to it
 *   sdxfer_send.h     header, sequence number, transport (perf buffer, or the
 *                     BPF ring buffer with -DSDXFER_RINGBUF and its batched
 *                     wake-ups), per-event drop counters
 *   sdxfer_rest.h     continuation jobs: a spanning field's bytes beyond its
 *                     record, as jobs on the task's stack that a tail-call
 *                     chain sends after an SDXFER_RAW_TRACEPOINT_PROBE body
 *                     (inline on the host; else a last record says how many
 *                     bytes were left out)
 *
 * Host build (#define SDXFER_HOST): plain C, the same bytes, handed to
 *     int sdxfer_host_emit(void *ctx, const void *rec, __u32 size);
 * which the program defines (return < 0 to report a drop). SDXFER_HOST_NOW_NS()
 * and SDXFER_HOST_CPU() may be defined to fix the timestamp and CPU.
 */
#ifndef SDXFER_RUNTIME_H
#define SDXFER_RUNTIME_H

#ifndef SDXFER_XFER_H
#error "include the generated xfer.h, not sdxfer_runtime.h"
#endif

#include "sdxfer_slots.h"
#include "sdxfer_read.h"
#include "sdxfer_members.h"
#include "sdxfer_copy.h"
#include "sdxfer_path.h"
#include "sdxfer_send.h"
#include "sdxfer_rest.h"

#endif /* SDXFER_RUNTIME_H */
