/*
 * The CO-RE build (SDXFER_CORE, set by `sdxfer build`): what BCC gives a
 * program implicitly, the libbpf way. Kernel types come from vmlinux.h,
 * helpers from libbpf's headers; maps are SEC(".maps") definitions (in the
 * generated xfer.h); programs are named by SEC() so libbpf knows where each
 * attaches. `sdxfer build` includes it before the program (clang -include),
 * so a probe's text is the same for both builds.
 */
#ifndef SDXFER_CORE_H
#define SDXFER_CORE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
/* Argument structs of the tracepoints the program names, from the build
 * host's tracefs formats (as BCC makes them); written by `sdxfer build`. */
#include "sdxfer_tracepoints.h"

/* bpf_probe_read_kernel, the perf output and task storage are GPL-only helpers
 * (BCC declares the licence itself). */
char LICENSE[] SEC("license") = "GPL";

/* A map definition libbpf reads from BTF. Perf event, program and cgroup
 * arrays take sizes, not BTF types, for their keys and values. */
#define SDXFER_CORE_MAP(map_type, name, key_type, value_type, entries)                           \
    struct {                                                                                      \
        __uint(type, map_type);                                                                   \
        __uint(max_entries, entries);                                                             \
        __type(key, key_type);                                                                    \
        __type(value, value_type);                                                                \
    } name SEC(".maps")
#define SDXFER_CORE_FD_ARRAY(map_type, name, entries)                                              \
    struct {                                                                                      \
        __uint(type, map_type);                                                                   \
        __uint(max_entries, entries);                                                             \
        __uint(key_size, sizeof(__u32));                                                          \
        __uint(value_size, sizeof(__u32));                                                        \
    } name SEC(".maps")

/* BCC's probe declarations, as libbpf sections: the same names and context
 * arguments (`args`, `ctx`), so one probe text builds both ways. */
#define TRACEPOINT_PROBE(category, event)                                                          \
    SEC("tp/" #category "/" #event)                                                               \
    int tracepoint__##category##__##event(struct tracepoint__##category##__##event *args)
#define RAW_TRACEPOINT_PROBE(event)                                                                \
    SEC("raw_tp/" #event)                                                                         \
    int raw_tracepoint__##event(struct bpf_raw_tracepoint_args *ctx)
/* A program no event attaches: it is tail-called from raw tracepoint probes. */
#define SDXFER_TAIL_CALLED SEC("raw_tp")

#endif /* SDXFER_CORE_H */
