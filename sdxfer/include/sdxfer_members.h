/*
 * Kernel member reads: a word of kernel memory, and direct loads from
 * the current task through its BTF pointer (BPF only); where a member is.
 * A part of sdxfer_runtime.h, which includes it.
 */
#ifndef SDXFER_MEMBERS_H
#define SDXFER_MEMBERS_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_members.h"
#endif

#ifndef SDXFER_HOST
/* offsetof(struct type, member) in the kernel that runs the probe, and
 * SDXFER_SIZE(type) its sizeof(struct type):
 *     sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, mm))
 * Under BCC, the BTF_OFF_<type>_<member> macro sdxfer resolves from the
 * running kernel's BTF at load; in a CO-RE object, a relocation libbpf
 * patches at load. */
#ifdef SDXFER_CORE
#define SDXFER_MEMBER(type, member) ((__u32)bpf_core_field_offset(struct type, member))
#define SDXFER_SIZE(type) ((__u32)bpf_core_type_size(struct type))
#else
#define SDXFER_MEMBER(type, member) BTF_OFF_##type##_##member
#define SDXFER_SIZE(type) BTF_SIZE_##type
#endif

/* task_struct.flags: forked, and not exec'd since (include/linux/sched.h) */
#define SDXFER_PF_FORKNOEXEC 0x40
#define SDXFER_PF_KTHREAD 0x00200000  /* a kernel thread */

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
#endif

#endif /* SDXFER_MEMBERS_H */
