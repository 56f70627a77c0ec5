/*
 * What an exec leaves to read at sched_process_exec: the new image's
 * argument and environment bounds, bprm's counts and path, and the task's
 * ancestors (execmon's probe and bench/exec_floor.bpf.c read them alike).
 */
#ifndef SDXFER_BPF_EXEC_IMAGE_H
#define SDXFER_BPF_EXEC_IMAGE_H

#include "helpers.h"

/* mm_struct's stack, argument and environment bounds. */
struct mm_bounds {
    __u64 start_stack;
    __u64 arg_start;
    __u64 arg_end;
    __u64 env_start;
    __u64 env_end;
};

/* From a BTF mm pointer (loaded from bpf_get_current_task_btf()): plain
 * loads, a faulting one (no mm) reading 0. */
static __always_inline void read_mm_bounds(const char *mm, struct mm_bounds *bounds)
{
    bounds->start_stack = sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, start_stack));
    bounds->arg_start = sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, arg_start));
    bounds->arg_end = sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, arg_end));
    bounds->env_start = sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, env_start));
    bounds->env_end = sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, env_end));
}

/* linux_binprm's argument and environment counts and the path exec was
 * given. Kernels so far keep them side by side, so one read fetches all
 * three; a kernel that lays them out otherwise gets one read each. */
struct exec_image {
    __s32 argc;
    __s32 envc;
    const char *filename;
};

static __always_inline void read_exec_image(const char *bprm, struct exec_image *image)
{
    /* Constants under BCC (clang keeps one branch); relocated under CO-RE,
     * where the verifier walks only the branch they select. */
    if (SDXFER_MEMBER(linux_binprm, envc) == SDXFER_MEMBER(linux_binprm, argc) + 4 &&
        SDXFER_MEMBER(linux_binprm, filename) == SDXFER_MEMBER(linux_binprm, argc) + 8) {
        if (bpf_probe_read_kernel(image, sizeof(*image), bprm + SDXFER_MEMBER(linux_binprm, argc)) < 0) {
            image->argc = image->envc = -1;
            image->filename = NULL;
        }
    } else {
        image->argc = image->envc = -1;
        bpf_probe_read_kernel(&image->argc, sizeof(image->argc), bprm + SDXFER_MEMBER(linux_binprm, argc));
        bpf_probe_read_kernel(&image->envc, sizeof(image->envc), bprm + SDXFER_MEMBER(linux_binprm, envc));
        image->filename = (const char *)sdxfer_kernel_u64(bprm + SDXFER_MEMBER(linux_binprm, filename));
    }
}

/* The exec record's ancestors: the task's parent chain, nearest parent
 * first, up to SDXFER_MAX_EXEC_ANCESTORS. Returns the count, or'ed with
 * SDXFER_LEN_TRUNCATED when the chain goes on. It ends at the idle task
 * (tgid 0), init's parent. */
static __always_inline __u32 walk_ancestors(struct sdxfer_exec_ancestors_entry *out)
{
    /* A BTF pointer: its members (and those of the tasks it leads to) are
     * plain loads, not a probe read each; a faulting load reads 0. */
    const char *task = sdxfer_task();
    for (__u32 i = 0; i < SDXFER_MAX_EXEC_ANCESTORS; i++) {
        const char *parent = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, real_parent));
        __u32 tgid = parent ? sdxfer_member_u32(parent, SDXFER_MEMBER(task_struct, tgid)) : 0;
        if (tgid == 0 || parent == task)
            return i;
        out[i].pid = tgid;
        __u64 *comm = (__u64 *)out[i].comm;
        comm[0] = sdxfer_member_u64(parent, SDXFER_MEMBER(task_struct, comm));
        comm[1] = sdxfer_member_u64(parent, SDXFER_MEMBER(task_struct, comm) + 8);
        task = parent;
    }
    const char *parent = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, real_parent));
    __u32 more = parent && parent != task ? sdxfer_member_u32(parent, SDXFER_MEMBER(task_struct, tgid)) : 0;
    return more ? SDXFER_MAX_EXEC_ANCESTORS | SDXFER_LEN_TRUNCATED : SDXFER_MAX_EXEC_ANCESTORS;
}

#endif /* SDXFER_BPF_EXEC_IMAGE_H */
