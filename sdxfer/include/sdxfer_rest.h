/*
 * Continuation jobs: the bytes of a spanning field beyond its record, sent
 * as continuation records by a tail-call chain (SDXFER_RAW_TRACEPOINT_PROBE),
 * inline (host), or left out with a last record saying how many.
 * A part of sdxfer_runtime.h, which includes it.
 */
#ifndef SDXFER_REST_H
#define SDXFER_REST_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_rest.h"
#endif

/* What a packer learns of a spanning field as it packs the record. */
struct sdxfer_rest {
    const void *src;
    __u32 known;    /* bytes there are to read (SDXFER_LEN_UNKNOWN: only the record's) */
    __u32 cut;      /* more existed than `known`, by an unknown amount */
    __u32 sent;     /* bytes the record kept (its max), 0: no continuation */
};

/* A spanning field's record part is full and bytes are missing from it:
 * continuation records follow (at least one, the last flagged, even when
 * no byte is known beyond max). */
static __always_inline void sdxfer_rest_of(struct sdxfer_rest *rest, const struct sdxfer_var *var,
                                           const void *src, __u32 src_len, __u32 max)
{
    rest->src = src;
    rest->known = src_len == SDXFER_LEN_UNKNOWN ? max : src_len & ~SDXFER_LEN_TRUNCATED;
    rest->cut = src_len & SDXFER_LEN_TRUNCATED;
    rest->sent = var->off && var->len == max && var->lost ? max : 0;
}

/* How a packer sends the rest of a spanning field (SDXFER_SPANS_OF(ctx)):
 * in the record alone, with a last, empty continuation record saying how
 * many bytes were left out; as a job for a tail-call chain (probes declared
 * with SDXFER_RAW_TRACEPOINT_PROBE); or every chunk in a loop (host). */
#define SDXFER_SPANS_IN_RECORD 0
#define SDXFER_SPANS_BY_TAIL_CALL 1
#define SDXFER_SPANS_INLINE 2

#ifdef SDXFER_HOST
#define SDXFER_SPANS_OF(ctx) SDXFER_SPANS_INLINE
#else
/* A raw tracepoint's context as an SDXFER_RAW_TRACEPOINT_PROBE body sees it:
 * struct bpf_raw_tracepoint_args by another name, which tells packers that a
 * tail call follows the body. */
struct sdxfer_raw_tracepoint_ctx {
    __u64 args[0];
};
#define SDXFER_SPANS_OF(ctx)                                                                       \
    (__builtin_types_compatible_p(__typeof__(ctx), struct sdxfer_raw_tracepoint_ctx *)             \
         ? SDXFER_SPANS_BY_TAIL_CALL : SDXFER_SPANS_IN_RECORD)
#endif

#ifdef SDXFER_HAS_SPANS
/* Sends the job's next chunk, in `rec` (a claimed slot); returns non-zero
 * when it was the field's last. A chunk that cannot be read ends the field
 * (lost unknown); one that cannot be sent counts at drop index
 * SDXFER_CONTINUATION_DROPS, and the decoder sees the gap. */
static __always_inline int sdxfer_send_chunk(void *ctx, struct sdxfer_claim *claim, struct sdxfer_continuation *rec,
                                             struct sdxfer_rest_job *job)
{
    __u32 off = job->offset;
    __u32 end = job->end;
    __u32 n = end > off ? end - off : 0;
    const char *src = (const char *)(unsigned long)job->src;
    long err = 0;

    if (n > SDXFER_CONTINUATION_CHUNK)
        n = SDXFER_CONTINUATION_CHUNK;
    sdxfer_bound(n, SDXFER_CONTINUATION_CHUNK);
    rec->flags = off + n >= end ? SDXFER_CONTINUATION_LAST : 0;
    rec->lost = 0;
    if (rec->flags)
        rec->lost = job->cut ? SDXFER_LOST_UNKNOWN : job->known - end;
    if (n && job->from_user)
        err = sdxfer_read_user(rec->data, n, src + off);
    else if (n)
        err = sdxfer_read_kernel(rec->data, n, src + off);
    if (err < 0) {
        n = 0;
        rec->flags = SDXFER_CONTINUATION_LAST;
        rec->lost = SDXFER_LOST_UNKNOWN;
    }
    rec->parent_seq = job->parent_seq;
    rec->offset = off;
    rec->event_id = job->id;
    rec->field = job->field;
    rec->head.version = job->version;
    sdxfer_emit(ctx, claim, &rec->head, (SDXFER_CONTINUATION_PAYLOAD_OFF + n) & SDXFER_CONTINUATION_SIZE_MASK,
                SDXFER_CONTINUATION_ID, job->fingerprint, SDXFER_CONTINUATION_PAYLOAD_OFF, SDXFER_CONTINUATION_DROPS);
    job->offset = off + n;
    return rec->flags;
}

/* A last, empty continuation record: the bytes the job did not send are left out. */
static __always_inline void sdxfer_end_rest(void *ctx, struct sdxfer_rest_job *job)
{
    struct sdxfer_claim claim __attribute__((cleanup(sdxfer_release_slot)));
    struct sdxfer_continuation *rec = sdxfer_begin_record(&claim, SDXFER_CONTINUATION_DROPS);

    if (!rec)
        return;
    job->end = job->offset;
    sdxfer_send_chunk(ctx, &claim, rec, job);
}

#ifdef SDXFER_HOST
/* Every chunk at once, at most `chunks` records (the layout's bound). */
static __always_inline void sdxfer_send_rest_inline(void *ctx, struct sdxfer_rest_job *job, __u32 chunks)
{
    struct sdxfer_claim claim __attribute__((cleanup(sdxfer_release_slot)));
    struct sdxfer_continuation *rec = sdxfer_begin_record(&claim, SDXFER_CONTINUATION_DROPS);

    if (!rec)
        return;
    for (__u32 i = 0; i < chunks; i++)
        if (sdxfer_send_chunk(ctx, &claim, rec, job))
            return;
}
#else
/* The top job, if it is written whole; NULL otherwise. */
static __always_inline struct sdxfer_rest_job *sdxfer_top_job(struct sdxfer_rest_jobs *jobs)
{
    __u64 depth = jobs->depth;
    struct sdxfer_rest_job *job;

    if (depth == 0 || depth > SDXFER_REST_DEPTH)
        return NULL;
    job = &jobs->job[(depth - 1) & (SDXFER_REST_DEPTH - 1)];
    return job->ready ? job : NULL;
}

static __always_inline void sdxfer_pop_job(struct sdxfer_rest_jobs *jobs, struct sdxfer_rest_job *job)
{
    job->ready = 0;
    __sync_fetch_and_add(&jobs->depth, -1);
}

/* Puts a job on the current task's stack (per task, not per CPU: a
 * preempting task never sees it, and the user memory a job reads is this
 * task's); 0 when there is no room, or when a chain is sending (this probe
 * interrupted it, and it would not come back for the job). A probe that
 * interrupts this one between the reservation and `ready` reserves the
 * place above; a chain stops at a job not ready. */
static __always_inline int sdxfer_push_rest(const struct sdxfer_rest_job *job)
{
    struct sdxfer_rest_jobs *jobs = sdxfer_rest_jobs(1);
    struct sdxfer_rest_job *slot;
    __u64 at;

    if (!jobs || jobs->steps)
        return 0;
    at = __sync_fetch_and_add(&jobs->depth, 1);
    if (at >= SDXFER_REST_DEPTH) {
        __sync_fetch_and_add(&jobs->depth, -1);
        return 0;
    }
    slot = &jobs->job[at & (SDXFER_REST_DEPTH - 1)];
    __builtin_memcpy(slot, job, sizeof(*slot));
    asm volatile("" ::: "memory");  /* the job is whole before it is ready */
    slot->ready = 1;
    return 1;
}

/* Sends up to SDXFER_REST_CHUNKS_PER_STEP chunks of the jobs waiting, newest first. */
static __always_inline void sdxfer_rest_chunks(void *ctx, struct sdxfer_rest_jobs *jobs)
{
    struct sdxfer_claim claim __attribute__((cleanup(sdxfer_release_slot)));
    struct sdxfer_continuation *rec = sdxfer_begin_record(&claim, SDXFER_CONTINUATION_DROPS);

    if (!rec)
        return;
    for (__u32 i = 0; i < SDXFER_REST_CHUNKS_PER_STEP; i++) {
        struct sdxfer_rest_job *job = sdxfer_top_job(jobs);
        if (!job)
            return;
        if (sdxfer_send_chunk(ctx, &claim, rec, job))
            sdxfer_pop_job(jobs, job);
    }
}

/* While jobs wait, tail-calls the next step (it does not return); when no
 * call is left, or the call fails, what the jobs did not send is left out. */
static __always_inline void sdxfer_rest_continue(void *ctx, struct sdxfer_rest_jobs *jobs)
{
    if (sdxfer_top_job(jobs) && jobs->steps < SDXFER_REST_STEPS) {
        jobs->steps++;
        sdxfer_rest_tail_call(ctx);
    }
    for (__u32 i = 0; i < SDXFER_REST_DEPTH; i++) {
        struct sdxfer_rest_job *job = sdxfer_top_job(jobs);
        if (!job)
            break;
        sdxfer_end_rest(ctx, job);
        sdxfer_pop_job(jobs, job);
    }
    jobs->steps = 0;
}

/* One call of the chain: the tail-called program's body. */
static __always_inline void sdxfer_rest_step(void *ctx)
{
    struct sdxfer_rest_jobs *jobs = sdxfer_rest_jobs(0);

    if (!jobs)
        return;
    sdxfer_rest_chunks(ctx, jobs);
    sdxfer_rest_continue(ctx, jobs);
}

/* After an SDXFER_RAW_TRACEPOINT_PROBE body (its slots given back): starts
 * the chain, unless this probe interrupted one. */
static __always_inline void sdxfer_rest_now(void *ctx)
{
    struct sdxfer_rest_jobs *jobs;

    /* A task that never left a job (most) has no local storage at all:
     * one load, not a helper call, finds that out. */
    if (!sdxfer_member_u64(sdxfer_task(), SDXFER_MEMBER(task_struct, bpf_storage)))
        return;
    jobs = sdxfer_rest_jobs(0);
    if (jobs && !jobs->steps)
        sdxfer_rest_continue(ctx, jobs);
}
#endif

/* After the record of `parent_seq` went out: the rest of one spanning field. */
static __always_inline void sdxfer_rest_after(int spans, void *ctx, const struct sdxfer_rest *rest, __u64 parent_seq,
                                              __u16 id, __u32 fingerprint, __u16 version, __u8 field,
                                              __u32 total, __u32 chunks, int from_user)
{
    if (!rest->sent)
        return;
    struct sdxfer_rest_job job = {
        .src = (unsigned long)rest->src,
        .parent_seq = parent_seq,
        .offset = rest->sent,
        .end = rest->known < total ? rest->known : total,
        .known = rest->known,
        .cut = rest->cut,
        .fingerprint = fingerprint,
        .id = id,
        .version = version,
        .field = field,
        .from_user = (__u8)from_user,
    };

#ifdef SDXFER_HOST
    (void)spans;
    sdxfer_send_rest_inline(ctx, &job, chunks);
#else
    (void)chunks;
    if (spans == SDXFER_SPANS_BY_TAIL_CALL && sdxfer_push_rest(&job))
        return;
    sdxfer_end_rest(ctx, &job);
#endif
}
#endif /* SDXFER_HAS_SPANS */

#ifndef SDXFER_HOST
/* A raw tracepoint probe whose packers may send continuation records:
 *     SDXFER_RAW_TRACEPOINT_PROBE(sched_process_exec) { ... ctx->args[i] ... }
 * as RAW_TRACEPOINT_PROBE (BCC's, or sdxfer_core.h's), its body a function
 * of its own, so that its slots are given back before the tail call that
 * sends the rest. */
#ifdef SDXFER_HAS_SPANS
#define sdxfer_rest_after_probe(ctx) sdxfer_rest_now(ctx)
#else
#define sdxfer_rest_after_probe(ctx) ((void)(ctx))
#endif
#define SDXFER_RAW_TRACEPOINT_PROBE(event)                                                         \
    static __always_inline int sdxfer_probe_##event(struct sdxfer_raw_tracepoint_ctx *ctx);        \
    RAW_TRACEPOINT_PROBE(event)                                                                   \
    {                                                                                             \
        int ret = sdxfer_probe_##event((struct sdxfer_raw_tracepoint_ctx *)ctx);                  \
        sdxfer_rest_after_probe(ctx);                                                             \
        return ret;                                                                               \
    }                                                                                             \
    static __always_inline int sdxfer_probe_##event(struct sdxfer_raw_tracepoint_ctx *ctx)
#endif

#endif /* SDXFER_REST_H */
