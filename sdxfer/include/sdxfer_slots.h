/*
 * Scratch slots: claimed atomically per CPU (nesting-safe), SDXFER_LOCAL,
 * a record's slot and the per-event drop counters.
 * A part of sdxfer_runtime.h, which includes it.
 */
#ifndef SDXFER_SLOTS_H
#define SDXFER_SLOTS_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_slots.h"
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
#else /* BPF, under BCC */

/* sdxfer_this_cpu, sdxfer_scratch_slot, sdxfer_drop_counter and
 * sdxfer_events_output come with the maps from the generated header. */
static __always_inline void sdxfer_count_drop(__u32 index)
{
    __u64 *drops = sdxfer_drop_counter(index);
    if (drops)
        (*drops)++;
}
#endif

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

#endif /* SDXFER_SLOTS_H */
