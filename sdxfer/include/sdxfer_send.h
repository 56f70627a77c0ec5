/*
 * Sending a record: header, sequence number, transport (perf buffer, or
 * the BPF ring buffer with its wake-up batching), drops counted on failure.
 * A part of sdxfer_runtime.h, which includes it.
 */
#ifndef SDXFER_SEND_H
#define SDXFER_SEND_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_send.h"
#endif

#ifdef SDXFER_HOST
int sdxfer_host_emit(void *ctx, const void *rec, __u32 size);

#ifndef SDXFER_HOST_NOW_NS
/* CLOCK_MONOTONIC, as bpf_ktime_get_ns; plain ISO C only has the wall clock. */
static inline __u64 sdxfer_host_now_ns(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    timespec_get(&ts, TIME_UTC);
#endif
    return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}
#define SDXFER_HOST_NOW_NS() sdxfer_host_now_ns()
#endif
#ifndef SDXFER_HOST_CPU
#define SDXFER_HOST_CPU() 0
#endif

static __always_inline long sdxfer_output(void *ctx, void *rec, __u32 size, __u64 seq)
{
    (void)seq;
    return sdxfer_host_emit(ctx, rec, size);
}

#define sdxfer_now_ns() SDXFER_HOST_NOW_NS()
#define sdxfer_cpu_id() SDXFER_HOST_CPU()

#else /* BPF, under BCC */

#define sdxfer_now_ns() bpf_ktime_get_ns()
#define sdxfer_cpu_id() bpf_get_smp_processor_id()

#ifdef SDXFER_RINGBUF
/* Wake the reader once every SDXFER_WAKEUP_EVERY records of a CPU; it polls
 * at least every 100 ms for the rest. Forced: the default wakes it only if
 * it had read everything before this record, which after 63 records sent
 * without a wake-up it has not. (bcc 0.26 cannot call bpf_ringbuf_query on
 * its maps.) */
#define sdxfer_output(ctx, rec, size, seq) \
    sdxfer_events_output(ctx, rec, size, (seq) % SDXFER_WAKEUP_EVERY ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP)
#else
/* The reader sets the perf buffer's wakeup_events. */
#define sdxfer_output(ctx, rec, size, seq) sdxfer_events_output(ctx, rec, size, 0)
#endif
#endif

/* Fills the header and sends `size` bytes; the slot stays claimed. Returns
 * the bytes sent or a negative error (counted as a drop of `index`). */
static __always_inline int sdxfer_emit(void *ctx, struct sdxfer_claim *claim, struct sdxfer_head *head,
                                       __u32 size, __u16 id, __u32 fingerprint, __u16 payload_off,
                                       __u32 index)
{
    struct sdxfer_cpu_state *cpu = claim->cpu;
    long err;

    head->timestamp_ns = sdxfer_now_ns();
    head->seq = cpu ? __sync_fetch_and_add(&cpu->seq, 1) : 0;
    head->size = size;
    head->fingerprint = fingerprint;
    head->id = id;
    head->payload_off = payload_off;
    head->cpu = sdxfer_cpu_id();
    err = sdxfer_output(ctx, head, size, head->seq);
    if (err < 0) {
        sdxfer_count_drop(index);
        return (int)err;
    }
    return (int)size;
}

/* sdxfer_emit, then gives the record's slot back. */
static __always_inline int sdxfer_send(void *ctx, struct sdxfer_claim *claim, struct sdxfer_head *head,
                                       __u32 size, __u16 id, __u32 fingerprint, __u16 payload_off,
                                       __u32 index)
{
    int sent = sdxfer_emit(ctx, claim, head, size, id, fingerprint, payload_off, index);
    sdxfer_release_slot(claim);
    return sent;
}

#endif /* SDXFER_SEND_H */
