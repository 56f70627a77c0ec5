/*
 * The exec family: one exec record per execve/execveat, successful or failed.
 *
 * Successful execs are read at the sched_process_exec raw tracepoint, after
 * the kernel has built the new image, so argv and the environment are the new
 * program's own (mm->arg_start..arg_end and the envp array on the new stack).
 * Failed execs never reach that tracepoint: sys_exit_execve* reports them when
 * ret < 0, reading the caller's arguments from its saved user registers.
 */
#ifndef SDXFER_BPF_EXEC_H
#define SDXFER_BPF_EXEC_H

#include "exec_image.h"
#include "environ.h"

#define ARGV_MAX SDXFER_MAX_EXEC_ARGV
#define EXE_MAX SDXFER_MAX_EXEC_EXE
_Static_assert((ARGV_MAX & (ARGV_MAX - 1)) == 0, "argv offsets are bounded by a mask");
#define FAILED_ARGS_MAX 1024    /* argv entries gathered for a failed exec */

/* -DHIDS_WITHOUT_FAILED_EXECS: no sys_exit_execve* programs, so failed execs
 * are not reported (hidsmon --no-failed). */

/* The exec probes' locals, in a scratch slot. A successful exec uses the
 * environment scan's window (its argv is read straight from the new image);
 * a failed exec the argv blob, the exe copy and the scan's walk state. */
struct exec_area {
    /* The verifier sees an argv write as a masked offset plus a bounded
     * length, up to 2 * ARGV_MAX bytes from here, so that much must lie
     * inside the slot; at run time the blob stays within ARGV_MAX. */
    char argv[ARGV_MAX];
    struct env_scan scan;
    /* beside the scan's end, where a successful exec's other locals share its pages */
    struct env_values found;
    struct sdxfer_exec_ancestors_entry ancestors[SDXFER_MAX_EXEC_ANCESTORS];
    __u32 ancestors_count;
    __u32 argv_len;
    __u32 argv_ended;   /* gather_argv's walk came to its end */
    __u64 argv_at;      /* the caller's argv array */
    /* room for EXE_MAX + 2 bytes, as the packer reads it, so a longer path shows as cut */
    char exe[EXE_MAX + 8];
};
_Static_assert(sizeof(struct exec_area) <= SDXFER_SLOT_SIZE, "exec locals must fit a scratch slot");
_Static_assert(__builtin_offsetof(struct exec_area, argv) + 2 * ARGV_MAX <= SDXFER_SLOT_SIZE,
               "argv writes must stay in the slot");

/* The probe's parts in headers of their own: bench/kernel_cost.py shadows one
 * at a time with a stand-in of the same name, to show what each costs. */
#include "exec_part_env.h"
#include "exec_part_ancestors.h"
#include "exec_part_rest.h"
#include "exec_part_context.h"

/* The packer's arguments for the new exec fields, from a filled context. */
#define EXEC_CONTEXT_ARGS(context)                                                                 \
    (context)->exe_ino, (context)->exe_dev, (context)->exe_memfd, (context)->exe_deleted,         \
        &(context)->stdio_remote, &(context)->stdio_local, (context)->cwd_text, (context)->tty_text, \
        (context)->stdio_text[0], (context)->stdio_text[1], (context)->stdio_text[2]

#if defined(HIDS_WANT_EXEC) || !defined(HIDS_SELECTED)
/* Raw tracepoint: cheaper than the trace-event one, and its arguments
 * (task, old_pid, bprm) give the argument and environment counts. */
EXEC_RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    SDXFER_LOCAL(struct exec_area, area);
    SDXFER_LOCAL(struct exec_context, context);
    if (!area || !context)
        return 0;
    struct exec_image image;
    read_exec_image((const char *)ctx->args[2], &image);
    struct mm_bounds mm;
    read_mm_bounds((const char *)sdxfer_member_u64(sdxfer_task(), SDXFER_MEMBER(task_struct, mm)), &mm);
    __u32 argv_len = mm.arg_end - mm.arg_start;

    clear_env_values(&area->found);
    env_of_new_image(area, &mm, &image);

    __u32 ancestors = count_ancestors(area);
    read_exec_context(context, 1);
    /* old_pid: the thread that called exec, which may not be the leader; the
     * packer fills pid, ppid, uid, comm and the rest of the common fields */
    exec_print(ctx, (__u32)ctx->args[1], 0, image.filename, (const char *)mm.arg_start, argv_len,
               area->found.ssh_connection, area->found.ld_preload, area->ancestors, ancestors,
               EXEC_CONTEXT_ARGS(context));
    return 0;
}

/* A failed exec's argument i: see gather_argv. */
static long gather_arg(__u32 i, void *state)
{
    struct exec_area *area = *(struct exec_area **)state;
    __u64 arg = 0;
    if (bpf_probe_read_user(&arg, sizeof(arg), (void *)(area->argv_at + 8 * i)) < 0)
        goto truncated;
    if (!arg)
        goto ended;
    /* Below ARGV_MAX at run time: a full blob ends the loop. */
    __u32 used = bounded(area->argv_len, ARGV_MAX - 1);
    __u32 room = ARGV_MAX - used;
    long copied = bpf_probe_read_user_str(area->argv + used, room, (void *)arg);
    if (copied <= 0)
        goto truncated;
    area->argv_len = used + copied;
    if (copied != room)
        return 0;
    /* The blob is full: complete only if that was this argument's own NUL
     * and no argument follows. */
    char last = 1;
    bpf_probe_read_user(&last, 1, (void *)(arg + copied - 1));
    if (last || entry_follows(area->argv_at, i + 1))
        goto truncated;
    goto ended;
truncated:
    area->argv_len |= SDXFER_LEN_TRUNCATED;
ended:
    area->argv_ended = 1;
    return 1;
}

/* Gathers the caller's argv strings into one NUL-separated blob and sets
 * argv_len, or'ed with SDXFER_LEN_TRUNCATED when arguments (or part of one)
 * were left out: how much is unknown here. The length lives in map memory,
 * so the verifier carries neither its range from one argument to the next
 * nor a packer path per way out of the loop. */
static __always_inline void gather_argv(struct exec_area *area, __u64 argv)
{
    area->argv_len = 0;
    if (!argv)
        return;  /* execve(path, NULL, envp): no arguments */
    area->argv_at = argv;
    area->argv_ended = 0;
    HIDS_LOOP(FAILED_ARGS_MAX, FAILED_ARGS_MAX, gather_arg, &area);
    if (!area->argv_ended && entry_follows(argv, FAILED_ARGS_MAX))
        area->argv_len |= SDXFER_LEN_TRUNCATED;
}

/* The syscall's arguments as user space passed them: a failed exec leaves the
 * saved user registers alone, so sys_exit can read them without an enter
 * probe and a map update on every exec. x86-64 syscall ABI. */
struct exec_call {
    __u64 filename;
    __u64 argv;
    __u64 envp;
};

static __always_inline void read_exec_call(struct exec_call *call, int is_execveat)
{
    const char *regs = syscall_regs();
    if (is_execveat) {
        /* execveat(dirfd, filename, argv, envp, flags) */
        call->filename = syscall_reg(regs, SDXFER_MEMBER(pt_regs, si));
        call->argv = syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx));
        call->envp = syscall_reg(regs, SDXFER_MEMBER(pt_regs, r10));
    } else {
        call->filename = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
        call->argv = syscall_reg(regs, SDXFER_MEMBER(pt_regs, si));
        call->envp = syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx));
    }
}

static __always_inline int report_failed_exec(void *ctx, long ret, int is_execveat)
{
    if (ret >= 0)
        return 0;
    SDXFER_LOCAL(struct exec_area, area);
    SDXFER_LOCAL(struct exec_context, context);
    if (!area || !context)
        return 0;
    struct exec_call call;
    read_exec_call(&call, is_execveat);

    const char *exe = area->exe;
    if (bpf_probe_read_user_str(area->exe, EXE_MAX + 2, (void *)call.filename) < 0)
        exe = SDXFER_UNKNOWN;
    gather_argv(area, call.argv);
    __u32 argv_len = *(volatile __u32 *)&area->argv_len;
    clear_env_values(&area->found);
    if (!find_env_of_caller(&area->scan, call.envp, &area->found))
        mark_unexamined(&area->found);

    __u32 ancestors = count_ancestors(area);
    read_exec_context(context, 0);
    exec_print(ctx, (__u32)bpf_get_current_pid_tgid(), ret, exe, area->argv, argv_len, area->found.ssh_connection,
               area->found.ld_preload, area->ancestors, ancestors, EXEC_CONTEXT_ARGS(context));
    return 0;
}

#ifndef HIDS_WITHOUT_FAILED_EXECS
TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return report_failed_exec(args, args->ret, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return report_failed_exec(args, args->ret, 1);
}
#endif
#endif

#endif /* SDXFER_BPF_EXEC_H */
