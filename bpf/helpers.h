/*
 * Kernel reads that more than one probe needs. Structure offsets are
 * SDXFER_MEMBER(struct, member): under BCC resolved from the running
 * kernel's BTF (the installed headers may belong to another kernel), in a
 * CO-RE object relocated by libbpf at load.
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

/* sdxfer_read.h's SDXFER_LOOP: bpf_loop in a CO-RE object, a plain loop under BCC. */
#define HIDS_LOOP SDXFER_LOOP

/* The caller's saved user registers (struct pt_regs) at a syscall
 * tracepoint: a syscall leaves them alone, so its arguments are still there
 * at sys_exit (x86-64 ABI: di, si, dx, r10, r8, r9). */
static __always_inline const char *syscall_regs(void)
{
    return (const char *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* One saved register, at its SDXFER_MEMBER(pt_regs, <name>) offset. bpf_task_pt_regs
 * gives a BTF pointer the verifier lets a program load from directly (a
 * faulting load reads 0): ~40 ns less per register than a probe read. */
static __always_inline __u64 syscall_reg(const char *regs, const __u32 offset)
{
    return *(const volatile __u64 *)(regs + offset);
}

struct syscall_args {
    __u64 arg[6];
};

static __always_inline void read_syscall_args(struct syscall_args *call)
{
    const char *regs = syscall_regs();
    call->arg[0] = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    call->arg[1] = syscall_reg(regs, SDXFER_MEMBER(pt_regs, si));
    call->arg[2] = syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx));
    call->arg[3] = syscall_reg(regs, SDXFER_MEMBER(pt_regs, r10));
    call->arg[4] = syscall_reg(regs, SDXFER_MEMBER(pt_regs, r8));
    call->arg[5] = syscall_reg(regs, SDXFER_MEMBER(pt_regs, r9));
}

/* The thread group id of a task's real parent. */
static __always_inline __u32 parent_tgid(const char *task)
{
    const char *parent = (const char *)sdxfer_kernel_u64(task + SDXFER_MEMBER(task_struct, real_parent));
    return sdxfer_kernel_u32(parent + SDXFER_MEMBER(task_struct, tgid));
}

static __always_inline __u16 read_kernel_u16(const void *addr)
{
    __u16 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), addr);
    return value;
}

#define HIDS_S_IFMT 0170000

/* A file's type: the S_IFMT bits of its inode's mode; 0 for no file. */
static __always_inline __u32 file_type(const char *file)
{
    if (!file)
        return 0;
    const char *inode = (const char *)sdxfer_kernel_u64(file + SDXFER_MEMBER(file, f_inode));
    return read_kernel_u16(inode + SDXFER_MEMBER(inode, i_mode)) & HIDS_S_IFMT;
}

/* A task's command name, in place: packers read str fields from kernel memory. */
static __always_inline const char *task_comm(const char *task)
{
    return task + SDXFER_MEMBER(task_struct, comm);
}

/* Whether a user pointer array has an entry at `index` (an unreadable one
 * counts: it says as little as one that is there). */
static __always_inline int entry_follows(__u64 array, __u32 index)
{
    __u64 entry = 0;
    return bpf_probe_read_user(&entry, sizeof(entry), (void *)(array + 8 * index)) < 0 || entry;
}

#ifdef SDXFER_CORE
/* An LRU hash and its calls (NAME_lookup, NAME_update, NAME_delete), the
 * libbpf way. BCC rewrites map method calls only where they are spelled, not
 * from a macro, so its side writes the same three functions out. */
#define HIDS_LRU_HASH(name, key_type, value_type, entries)                                     \
    SDXFER_CORE_MAP(BPF_MAP_TYPE_LRU_HASH, name, key_type, value_type, entries);                \
    static __always_inline value_type *name##_lookup(key_type *key)                             \
    {                                                                                           \
        return bpf_map_lookup_elem(&name, key);                                                 \
    }                                                                                           \
    static __always_inline void name##_update(key_type *key, value_type *value)                 \
    {                                                                                           \
        bpf_map_update_elem(&name, key, value, BPF_ANY);                                        \
    }                                                                                           \
    static __always_inline void name##_delete(key_type *key)                                    \
    {                                                                                           \
        bpf_map_delete_elem(&name, key);                                                        \
    }
#endif

#endif /* SDXFER_BPF_HELPERS_H */
