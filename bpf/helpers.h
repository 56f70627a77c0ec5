/*
 * Kernel reads that more than one probe needs. Structure offsets are
 * BTF_OFF_<STRUCT>_<MEMBER> macros: sdxfer resolves every one a program
 * uses from the running kernel's BTF (the installed headers may belong to
 * another kernel).
 */
#ifndef SDXFER_BPF_HELPERS_H
#define SDXFER_BPF_HELPERS_H

/* Applies a mask clang cannot fold away, so the verifier sees the bound. */
static __always_inline __u32 bounded(__u32 value, const __u32 mask)
{
    asm volatile("%0 &= %1" : "+r"(value) : "i"(mask));
    return value;
}

/* x, hidden from clang, which would otherwise turn arithmetic meant to be
 * branch-free back into a compare and a branch. */
static __always_inline __u64 opaque(__u64 x)
{
    asm volatile("" : "+r"(x));
    return x;
}

/* 1 if x != 0, else 0, with no branch: loops the verifier walks entry by
 * entry stay at one pending state per entry. */
static __always_inline __u64 nonzero(__u64 x)
{
    return (x | opaque(-x)) >> 63;
}

/* if_set when condition is 1, otherwise when it is 0; no branch. */
static __always_inline __u64 choose(__u64 condition, __u64 if_set, __u64 otherwise)
{
    return otherwise ^ ((if_set ^ otherwise) & opaque(-condition));
}

static __always_inline __u64 read_kernel_u64(const void *addr)
{
    __u64 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), addr);
    return value;
}

static __always_inline __u32 read_kernel_u32(const void *addr)
{
    __u32 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), addr);
    return value;
}

/* The thread group id of a task's real parent. */
static __always_inline __u32 parent_tgid(const char *task)
{
    const char *parent = (const char *)read_kernel_u64(task + BTF_OFF_TASK_STRUCT_REAL_PARENT);
    return read_kernel_u32(parent + BTF_OFF_TASK_STRUCT_TGID);
}

/* A task's command name, in place: packers read str fields from kernel memory. */
static __always_inline const char *task_comm(const char *task)
{
    return task + BTF_OFF_TASK_STRUCT_COMM;
}

/* mm_struct's stack, argument and environment bounds. Kernels so far keep
 * them side by side in this order, so one read fetches all five; a kernel
 * that lays them out otherwise gets one read each. */
struct mm_bounds {
    __u64 start_stack;
    __u64 arg_start;
    __u64 arg_end;
    __u64 env_start;
    __u64 env_end;
};

static __always_inline void read_mm_bounds(const char *mm, struct mm_bounds *bounds)
{
#if BTF_OFF_MM_STRUCT_ARG_START == BTF_OFF_MM_STRUCT_START_STACK + 8 && \
    BTF_OFF_MM_STRUCT_ARG_END == BTF_OFF_MM_STRUCT_START_STACK + 16 && \
    BTF_OFF_MM_STRUCT_ENV_START == BTF_OFF_MM_STRUCT_START_STACK + 24 && \
    BTF_OFF_MM_STRUCT_ENV_END == BTF_OFF_MM_STRUCT_START_STACK + 32
    if (bpf_probe_read_kernel(bounds, sizeof(*bounds), mm + BTF_OFF_MM_STRUCT_START_STACK) < 0)
        __builtin_memset(bounds, 0, sizeof(*bounds));
#else
    bounds->start_stack = read_kernel_u64(mm + BTF_OFF_MM_STRUCT_START_STACK);
    bounds->arg_start = read_kernel_u64(mm + BTF_OFF_MM_STRUCT_ARG_START);
    bounds->arg_end = read_kernel_u64(mm + BTF_OFF_MM_STRUCT_ARG_END);
    bounds->env_start = read_kernel_u64(mm + BTF_OFF_MM_STRUCT_ENV_START);
    bounds->env_end = read_kernel_u64(mm + BTF_OFF_MM_STRUCT_ENV_END);
#endif
}

/* Whether a user pointer array has an entry at `index` (an unreadable one
 * counts: it says as little as one that is there). */
static __always_inline int entry_follows(__u64 array, __u32 index)
{
    __u64 entry = 0;
    return bpf_probe_read_user(&entry, sizeof(entry), (void *)(array + 8 * index)) < 0 || entry;
}

#endif /* SDXFER_BPF_HELPERS_H */
