/*
 * sdxfer's C runtime: everything a packer needs that no schema decides.
 *
 * Not included directly: a generated xfer.h defines the shared facts first
 * (SDXFER_* macros and structs from sdxfer/record.py, the slot size and
 * event count of its schema, the maps and their accessors), includes this
 * file, then defines the packers.
 *
 *   scratch    per-CPU slots claimed atomically: a program interrupted (or,
 *              where the kernel allows it, preempted) mid-record keeps its
 *              slots and the other program takes free ones; with none free a
 *              record is dropped and counted (nesting_drops, and the event's
 *              drop counter)
 *   locals     SDXFER_LOCAL(type, name) gives a probe a slot for its large
 *              locals, given back automatically when `name` goes out of scope
 *   copiers    sdxfer_put_str / sdxfer_put_blob / sdxfer_put_fixed
 *   send       header, sequence number, transport (perf buffer, or the BPF
 *              ring buffer with -DSDXFER_RINGBUF), per-event drop counters
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

/* What a claim on a scratch slot needs to give it back. */
struct sdxfer_claim {
    struct sdxfer_cpu_state *cpu;
    void *slot;
    __u32 level;
};

#ifdef SDXFER_HOST
static __thread struct sdxfer_slot_data sdxfer_host_slots[SDXFER_SCRATCH_SLOTS] __attribute__((aligned(8)));
static __thread struct sdxfer_cpu_state sdxfer_host_cpu;
static __thread __u64 sdxfer_host_drops[SDXFER_DROP_COUNTERS];
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

static __always_inline struct sdxfer_cpu_state *sdxfer_this_cpu(void)
{
    return &sdxfer_host_cpu;
}

static __always_inline void *sdxfer_scratch_slot(__u32 index)
{
    return index < SDXFER_SCRATCH_SLOTS ? &sdxfer_host_slots[index] : NULL;
}

static __always_inline void sdxfer_count_drop(__u32 index)
{
    if (index < SDXFER_DROP_COUNTERS)
        sdxfer_host_drops[index]++;
}

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

static __always_inline long sdxfer_output(void *ctx, void *rec, __u32 size, __u64 seq)
{
    (void)seq;
    return sdxfer_host_emit(ctx, rec, size);
}

#define sdxfer_now_ns() SDXFER_HOST_NOW_NS()
#define sdxfer_cpu_id() SDXFER_HOST_CPU()
#define sdxfer_bound(n, max) ((void)0)

#else /* BPF, under BCC */

/* sdxfer_this_cpu, sdxfer_scratch_slot, sdxfer_drop_counter and
 * sdxfer_events_output come with the maps from the generated header. */
static __always_inline void sdxfer_count_drop(__u32 index)
{
    __u64 *drops = sdxfer_drop_counter(index);
    if (drops)
        (*drops)++;
}

#define sdxfer_read_kernel_str bpf_probe_read_kernel_str
#define sdxfer_read_kernel bpf_probe_read_kernel

/* A word of kernel memory; 0 where it cannot be read. */
static __always_inline __u64 sdxfer_kernel_u64(const void *at)
{
    __u64 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), at);
    return value;
}

static __always_inline __u32 sdxfer_kernel_u32(const void *at)
{
    __u32 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), at);
    return value;
}

/* User-memory fields also take BPF memory the probe filled itself (say, a
 * failed exec's argv gathered in its locals): a kernel address makes the user
 * read fail at once, and the kernel read is tried instead. */
static __always_inline long sdxfer_read_user_str(void *dst, __u32 size, const void *src)
{
    long n = bpf_probe_read_user_str(dst, size, src);
    if (n < 0)
        n = bpf_probe_read_kernel_str(dst, size, src);
    return n;
}

static __always_inline long sdxfer_read_user(void *dst, __u32 size, const void *src)
{
    long err = bpf_probe_read_user(dst, size, src);
    if (err < 0)
        err = bpf_probe_read_kernel(dst, size, src);
    return err;
}

/* The current task as a BTF pointer: the verifier lets a program load its
 * members directly (a faulting load reads 0), far cheaper than a probe read
 * per member. */
static __always_inline const char *sdxfer_task(void)
{
    return (const char *)bpf_get_current_task_btf();
}

static __always_inline __u64 sdxfer_member_u64(const char *base, const __u32 offset)
{
    return *(const volatile __u64 *)(base + offset);
}

static __always_inline __u32 sdxfer_member_u32(const char *base, const __u32 offset)
{
    return *(const volatile __u32 *)(base + offset);
}

#define sdxfer_now_ns() bpf_ktime_get_ns()
#define sdxfer_cpu_id() bpf_get_smp_processor_id()
/* clang may test a copy of a clamped length and hand the helper the
 * original register; checking again in asm bounds the register it gets. */
#define sdxfer_bound(n, max) asm volatile("if %0 <= %1 goto +1; %0 = %1" : "+r"(n) : "i"(max))

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
#endif /* SDXFER_HOST */

/* Takes a free scratch slot of this CPU; NULL when the map cannot be read or
 * every slot is taken (counted as nesting_drops). The claim is an atomic
 * or, so a program that interrupts or preempts this one between the test
 * and the claim simply takes another slot. */
static __always_inline void *sdxfer_claim_slot(struct sdxfer_claim *claim)
{
    struct sdxfer_cpu_state *cpu = sdxfer_this_cpu();

    claim->cpu = cpu;
    claim->slot = NULL;
    claim->level = 0;
    if (!cpu)
        return NULL;
    for (__u32 i = 0; i < SDXFER_SCRATCH_SLOTS; i++) {
        __u64 bit = 1ULL << i;
        if (cpu->busy & bit)
            continue;
        if (__sync_fetch_and_or(&cpu->busy, bit) & bit)
            continue;  /* taken meanwhile */
        claim->slot = sdxfer_scratch_slot(i);
        if (!claim->slot) {
            __sync_fetch_and_and(&cpu->busy, ~bit);
            return NULL;
        }
        claim->level = i;
        return claim->slot;
    }
    __sync_fetch_and_add(&cpu->nesting_drops, 1);
    return NULL;
}

static __always_inline void sdxfer_release_slot(struct sdxfer_claim *claim)
{
    if (claim->slot && claim->cpu)
        __sync_fetch_and_and(&claim->cpu->busy, ~(1ULL << claim->level));
    claim->slot = NULL;
}

/* A probe's large locals (SDXFER_SLOT_SIZE bytes, off the 512-byte stack):
 *     SDXFER_LOCAL(struct my_area, area);
 *     if (!area)
 *         return 0;
 * declares `struct my_area *area` in a slot of its own, given back when the
 * enclosing block is left, on every path. */
#define SDXFER_LOCAL(type, name)                                                                  \
    struct sdxfer_claim sdxfer_local_##name __attribute__((cleanup(sdxfer_release_slot)));        \
    type *name = (type *)sdxfer_claim_slot(&sdxfer_local_##name)

/* Claims the slot a packer builds its record in; a record that cannot have
 * one is counted as a drop of its event. */
static __always_inline void *sdxfer_begin_record(struct sdxfer_claim *claim, __u32 index)
{
    void *rec = sdxfer_claim_slot(claim);
    if (!rec)
        sdxfer_count_drop(index);
    return rec;
}

/* Reads a string into the payload at `cursor`. `cursor_max` is the layout's
 * bound: checking it proves the write in range to the verifier and never
 * fails for a record this header packs. */
static __always_inline __u32 sdxfer_put_str(void *rec, __u32 cursor, __u32 cursor_max,
                                            struct sdxfer_var *var, const char *src,
                                            __u32 max, int from_user)
{
    long n;

    var->off = 0;
    var->len = 0;
    var->lost = 0;
    if (!src)
        return cursor;
    if ((const void *)src == SDXFER_UNKNOWN || cursor > cursor_max) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    if (from_user)
        n = sdxfer_read_user_str((char *)rec + cursor, max + SDXFER_STR_READ_SLACK, src);
    else
        n = sdxfer_read_kernel_str((char *)rec + cursor, max + SDXFER_STR_READ_SLACK, src);
    if (n <= 0) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    n -= 1;
    if (n > max) {
        n = max;
        var->lost = SDXFER_LOST_UNKNOWN;
    }
    var->off = cursor;
    var->len = n;
    return cursor + n;
}

/* Copies the longest prefix of `blob_len` bytes (a blob, or a NUL-separated
 * string list) that fits in `max`, and records exactly how many did not
 * (unknown when blob_len carries SDXFER_LEN_TRUNCATED). */
static __always_inline __u32 sdxfer_put_blob(void *rec, __u32 cursor, __u32 cursor_max,
                                             struct sdxfer_var *var, const void *blob,
                                             __u32 blob_len, __u32 max, int from_user)
{
    long err;
    __u64 n = blob_len & ~SDXFER_LEN_TRUNCATED;
    __u32 lost_unknown = blob_len & SDXFER_LEN_TRUNCATED;

    var->off = 0;
    var->len = 0;
    var->lost = 0;
    if (!blob)
        return cursor;
    if (blob == SDXFER_UNKNOWN || cursor > cursor_max) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    if (n > max) {
        var->lost = n - max;
        n = max;
    }
    if (lost_unknown)
        var->lost = SDXFER_LOST_UNKNOWN;
    sdxfer_bound(n, max);
    if (n == 0)
        err = 0;
    else if (from_user)
        err = sdxfer_read_user((char *)rec + cursor, n, blob);
    else
        err = sdxfer_read_kernel((char *)rec + cursor, n, blob);
    if (err < 0) {
        var->lost = lost_unknown ? SDXFER_LOST_UNKNOWN : blob_len;
        return cursor;
    }
    var->off = cursor;
    var->len = n;
    return cursor + n;
}

/* An array's entry count (or'ed with SDXFER_LEN_TRUNCATED, or
 * SDXFER_LEN_UNKNOWN) as the byte length sdxfer_put_blob takes. */
static __always_inline __u32 sdxfer_entry_bytes(__u32 count, __u32 entry_size)
{
    __u32 n = count & ~SDXFER_LEN_TRUNCATED;

    if (count == SDXFER_LEN_UNKNOWN)
        return count;
    if (n > SDXFER_SLOT_SIZE)
        n = SDXFER_SLOT_SIZE;  /* more than any max already: keeps the product in range */
    return n * entry_size | (count & SDXFER_LEN_TRUNCATED);
}

static __always_inline void sdxfer_put_fixed(void *dst, const void *src, __u32 size)
{
    if (!src || sdxfer_read_kernel(dst, size, src) < 0)
        __builtin_memset(dst, 0, size);
}

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
    if (!sdxfer_member_u64(sdxfer_task(), BTF_OFF_TASK_STRUCT_BPF_STORAGE))
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
 * as BCC's RAW_TRACEPOINT_PROBE, its body a function of its own, so that
 * its slots are given back before the tail call that sends the rest. */
#ifdef SDXFER_HAS_SPANS
#define sdxfer_rest_after_probe(ctx) sdxfer_rest_now(ctx)
#else
#define sdxfer_rest_after_probe(ctx) ((void)(ctx))
#endif
#define SDXFER_RAW_TRACEPOINT_PROBE(event)                                                         \
    static __always_inline int sdxfer_probe_##event(struct sdxfer_raw_tracepoint_ctx *ctx);        \
    int raw_tracepoint__##event(struct bpf_raw_tracepoint_args *ctx)                              \
    {                                                                                             \
        int ret = sdxfer_probe_##event((struct sdxfer_raw_tracepoint_ctx *)ctx);                  \
        sdxfer_rest_after_probe(ctx);                                                             \
        return ret;                                                                               \
    }                                                                                             \
    static __always_inline int sdxfer_probe_##event(struct sdxfer_raw_tracepoint_ctx *ctx)
#endif

#endif /* SDXFER_RUNTIME_H */
