/*
 * The process family: exit, ptrace, memfd_create, prctl, setsid,
 * creds_change and kmod_load. Each event's programs are compiled unless
 * HIDS_SELECTED is defined without HIDS_WANT_<EVENT>.
 *
 * Syscalls are reported at sys_exit, with ret, success and failure alike;
 * their arguments are read from the caller's saved user registers (x86-64
 * syscall ABI: di, si, dx, r10, r8, r9), which the syscall leaves alone, so
 * no enter probe or map is needed. creds_change is the exception: it must
 * see the credentials from before the call, so it caches them at sys_enter
 * in a hash keyed by thread id and compares at sys_exit.
 */
#ifndef SDXFER_BPF_PROCESS_H
#define SDXFER_BPF_PROCESS_H

#include "helpers.h"

/* ---- exit ---------------------------------------------------------------- */
#if defined(HIDS_WANT_EXIT) || !defined(HIDS_SELECTED)
#define SIGNAL_GROUP_EXIT 0x00000004  /* include/linux/sched/signal.h: exit_group() or a fatal signal */

/* Raw tracepoint: TP_PROTO(struct task_struct *p, bool group_dead), called
 * in do_exit() after tsk->exit_code is set. group_dead is true for the last
 * thread of the group only, so each process is reported once. The code is
 * what wait(2) reports (wait_task_zombie): the group's exit code when the
 * group is exiting as a whole (exit_group(), a fatal signal: every thread
 * then exits with it), else the leader's own exit_code (threads that each
 * called exit(); the leader may have gone first). */
RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    if (!(__u8)ctx->args[1])
        return 0;
    /* the exiting task (args[0]) is current: loads through its BTF pointer */
    const char *task = sdxfer_task();
    const char *signal = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, signal));
    __s32 code;
    if (sdxfer_member_u32(signal, SDXFER_MEMBER(signal_struct, flags)) & SIGNAL_GROUP_EXIT) {
        code = sdxfer_member_u32(signal, SDXFER_MEMBER(signal_struct, group_exit_code));
    } else {
        const char *leader = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, group_leader));
        code = sdxfer_member_u32(leader, SDXFER_MEMBER(task_struct, exit_code));
    }
    exit_print(ctx, code);
    return 0;
}
#endif

/* ---- ptrace -------------------------------------------------------------- */
#if defined(HIDS_WANT_PTRACE) || !defined(HIDS_SELECTED)
/* Requests that attach to another process or write into its memory, registers
 * or state, as bits: below 64 (POKETEXT 4, POKEDATA 5, POKEUSR 6, SETREGS 13,
 * SETFPREGS 15, ATTACH 16, SETFPXREGS 19, SET_THREAD_AREA 26, ARCH_PRCTL 30)
 * and from 0x4200 (SETSIGINFO 3, SETREGSET 5, SEIZE 6, SETSIGMASK 0xb,
 * SET_SYSCALL_USER_DISPATCH_CONFIG 0x10, SET_SYSCALL_INFO 0x12). */
#define PTRACE_WRITES_LOW ((1ULL << 4) | (1ULL << 5) | (1ULL << 6) | (1ULL << 13) | (1ULL << 15) | \
                           (1ULL << 16) | (1ULL << 19) | (1ULL << 26) | (1ULL << 30))
#define PTRACE_WRITES_HIGH_BASE 0x4200
#define PTRACE_WRITES_HIGH ((1ULL << 0x3) | (1ULL << 0x5) | (1ULL << 0x6) | (1ULL << 0xb) | (1ULL << 0x10) | \
                            (1ULL << 0x12))

static __always_inline int ptrace_writes(__u64 request)
{
    if (request < 64)
        return (PTRACE_WRITES_LOW >> request) & 1;
    request -= PTRACE_WRITES_HIGH_BASE;
    return request < 64 && ((PTRACE_WRITES_HIGH >> request) & 1);
}

/* ptrace(request, pid, addr, data) */
TRACEPOINT_PROBE(syscalls, sys_exit_ptrace)
{
    const char *regs = syscall_regs();
    __s64 request = syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    if (!ptrace_writes(request))
        return 0;
    ptrace_print(args, request, (__s32)syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)),
                 syscall_reg(regs, SDXFER_MEMBER(pt_regs, dx)), args->ret);
    return 0;
}
#endif

/* ---- memfd_create -------------------------------------------------------- */
#if defined(HIDS_WANT_MEMFD_CREATE) || !defined(HIDS_SELECTED)
/* memfd_create(name, flags) */
TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create)
{
    const char *regs = syscall_regs();
    memfd_create_print(args, (const char *)syscall_reg(regs, SDXFER_MEMBER(pt_regs, di)),
                       (__u32)syscall_reg(regs, SDXFER_MEMBER(pt_regs, si)), args->ret);
    return 0;
}
#endif

/* ---- prctl --------------------------------------------------------------- */
#if defined(HIDS_WANT_PRCTL) || !defined(HIDS_SELECTED)
#define PROCESS_PR_SET_NAME 15  /* include/uapi/linux/prctl.h */

/* prctl(option, arg2, ...): arg2 is the new name for PR_SET_NAME */
TRACEPOINT_PROBE(syscalls, sys_exit_prctl)
{
    const char *regs = syscall_regs();
    __s32 option = (__s32)syscall_reg(regs, SDXFER_MEMBER(pt_regs, di));
    const char *name = NULL;
    if (option == PROCESS_PR_SET_NAME)
        name = (const char *)syscall_reg(regs, SDXFER_MEMBER(pt_regs, si));
    prctl_print(args, option, name, args->ret);
    return 0;
}
#endif

/* ---- setsid -------------------------------------------------------------- */
#if defined(HIDS_WANT_SETSID) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_setsid)
{
    setsid_print(args, args->ret);
    return 0;
}
#endif

/* ---- creds_change -------------------------------------------------------- */
#if defined(HIDS_WANT_CREDS_CHANGE) || !defined(HIDS_SELECTED)
/* capset's tracepoint arguments have the types cap_user_header_t and
 * cap_user_data_t, which BCC's generated argument struct needs declared
 * (under CO-RE, vmlinux.h declares them). */
#ifndef SDXFER_CORE
#include <linux/capability.h>
#endif

#define CREDS_GROUPS_HASHED 32  /* supplementary groups compared, from the first */

/* What a call can change: the ids, the capability sets and (setgroups) the
 * supplementary groups, as a count and a hash of the first ones. Compared
 * as 64-bit words. */
struct creds_snapshot {
    struct sdxfer_creds ids;  /* uid gid suid sgid euid egid fsuid fsgid, as struct cred has them */
    __u64 caps[5];            /* cap_inheritable, permitted, effective, bset, ambient */
    __u32 ngroups;
    __u32 groups_hash;
};
_Static_assert(sizeof(struct creds_snapshot) % 8 == 0, "compared as u64 words");

/* One entry per thread inside one of these calls, deleted at its sys_exit;
 * LRU, so entries of threads that never got there (killed in the call)
 * cannot fill the table. */
#ifdef SDXFER_CORE
HIDS_LRU_HASH(process_creds_before, __u32, struct creds_snapshot, 10240);
#else
BPF_TABLE("lru_hash", __u32, struct creds_snapshot, process_creds_before, 10240);
static __always_inline struct creds_snapshot *process_creds_before_lookup(__u32 *tid)
{
    return process_creds_before.lookup(tid);
}
static __always_inline void process_creds_before_update(__u32 *tid, struct creds_snapshot *snap)
{
    process_creds_before.update(tid, snap);
}
static __always_inline void process_creds_before_delete(__u32 *tid)
{
    process_creds_before.delete(tid);
}
#endif

static __always_inline void read_creds(struct creds_snapshot *snap, int with_groups)
{
    const char *task = (const char *)bpf_get_current_task();
    const char *cred = (const char *)sdxfer_kernel_u64(task + SDXFER_MEMBER(task_struct, cred));
    /* Constants under BCC (clang keeps one branch); relocated under CO-RE,
     * where the verifier walks only the branch they select. */
    const __u32 uid = SDXFER_MEMBER(cred, uid);
    if (SDXFER_MEMBER(cred, gid) == uid + 4 && SDXFER_MEMBER(cred, suid) == uid + 8 &&
        SDXFER_MEMBER(cred, sgid) == uid + 12 && SDXFER_MEMBER(cred, euid) == uid + 16 &&
        SDXFER_MEMBER(cred, egid) == uid + 20 && SDXFER_MEMBER(cred, fsuid) == uid + 24 &&
        SDXFER_MEMBER(cred, fsgid) == uid + 28) {
        /* struct cred keeps the eight ids side by side, in sdxfer_creds' order */
        if (bpf_probe_read_kernel(&snap->ids, sizeof(snap->ids), cred + uid) < 0)
            __builtin_memset(&snap->ids, 0, sizeof(snap->ids));
    } else {
        snap->ids.uid = sdxfer_kernel_u32(cred + uid);
        snap->ids.gid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, gid));
        snap->ids.suid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, suid));
        snap->ids.sgid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, sgid));
        snap->ids.euid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, euid));
        snap->ids.egid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, egid));
        snap->ids.fsuid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, fsuid));
        snap->ids.fsgid = sdxfer_kernel_u32(cred + SDXFER_MEMBER(cred, fsgid));
    }
    const __u32 caps = SDXFER_MEMBER(cred, cap_inheritable);
    if (SDXFER_MEMBER(cred, cap_permitted) == caps + 8 && SDXFER_MEMBER(cred, cap_effective) == caps + 16 &&
        SDXFER_MEMBER(cred, cap_bset) == caps + 24 && SDXFER_MEMBER(cred, cap_ambient) == caps + 32) {
        if (bpf_probe_read_kernel(snap->caps, sizeof(snap->caps), cred + caps) < 0)
            __builtin_memset(snap->caps, 0, sizeof(snap->caps));
    } else {
        snap->caps[0] = sdxfer_kernel_u64(cred + caps);
        snap->caps[1] = sdxfer_kernel_u64(cred + SDXFER_MEMBER(cred, cap_permitted));
        snap->caps[2] = sdxfer_kernel_u64(cred + SDXFER_MEMBER(cred, cap_effective));
        snap->caps[3] = sdxfer_kernel_u64(cred + SDXFER_MEMBER(cred, cap_bset));
        snap->caps[4] = sdxfer_kernel_u64(cred + SDXFER_MEMBER(cred, cap_ambient));
    }
    snap->ngroups = 0;
    snap->groups_hash = 0;
    if (!with_groups)
        return;
    const char *groups = (const char *)sdxfer_kernel_u64(cred + SDXFER_MEMBER(cred, group_info));
    __u32 ngroups = sdxfer_kernel_u32(groups + SDXFER_MEMBER(group_info, ngroups));
    __u32 hash = 2166136261U;  /* FNV-1a over the gids */
    for (__u32 i = 0; i < CREDS_GROUPS_HASHED && i < ngroups; i++)
        hash = (hash ^ sdxfer_kernel_u32(groups + SDXFER_MEMBER(group_info, gid) + 4 * i)) * 16777619U;
    snap->ngroups = ngroups;
    snap->groups_hash = hash;
}

static __always_inline int creds_differ(const struct creds_snapshot *a, const struct creds_snapshot *b)
{
    const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
    __u64 diff = 0;
    for (int i = 0; i < sizeof(*a) / 8; i++)
        diff |= x[i] ^ y[i];
    return diff != 0;
}

static __always_inline int creds_enter(int with_groups)
{
    __u32 tid = bpf_get_current_pid_tgid();
    struct creds_snapshot snap;
    read_creds(&snap, with_groups);
    process_creds_before_update(&tid, &snap);
    return 0;
}

#define CREDS_IDS 0
#define CREDS_GROUPS 1  /* setgroups: the groups are compared too */
#define CREDS_FSUID 2   /* setfsuid, setfsgid: they return the previous id, never an error */
#define CREDS_FSGID 3

/* Reports a call that changed the credentials, or failed: ret < 0, or for
 * setfs*id a real id asked for (not -1, the query) that did not take. */
static __always_inline int creds_exit(void *ctx, const char *syscall, long ret, int kind)
{
    __u32 tid = bpf_get_current_pid_tgid();
    struct creds_snapshot *before = process_creds_before_lookup(&tid);
    if (!before)
        return 0;
    struct creds_snapshot after;
    read_creds(&after, kind == CREDS_GROUPS);
    int report = ret < 0 || creds_differ(before, &after);
    if (kind == CREDS_FSUID || kind == CREDS_FSGID) {
        __u32 asked = syscall_reg(syscall_regs(), SDXFER_MEMBER(pt_regs, di));
        __u32 had = kind == CREDS_FSUID ? before->ids.fsuid : before->ids.fsgid;
        __u32 has = kind == CREDS_FSUID ? after.ids.fsuid : after.ids.fsgid;
        report = creds_differ(before, &after) || (asked != (__u32)-1 && asked != had && has == had);
    }
    if (report)
        creds_change_print(ctx, syscall, &before->ids, &after.ids, ret);
    process_creds_before_delete(&tid);
    return 0;
}

/* One enter and one exit program per call; `name` is what the event's
 * syscall field says. */
#define CREDS_PROBES(call, kind)                                      \
    TRACEPOINT_PROBE(syscalls, sys_enter_##call)                      \
    {                                                                 \
        return creds_enter(kind == CREDS_GROUPS);                     \
    }                                                                 \
    TRACEPOINT_PROBE(syscalls, sys_exit_##call)                       \
    {                                                                 \
        char name[16] = #call;                                        \
        return creds_exit(args, name, args->ret, kind);               \
    }

CREDS_PROBES(setuid, CREDS_IDS)
CREDS_PROBES(setgid, CREDS_IDS)
CREDS_PROBES(setreuid, CREDS_IDS)
CREDS_PROBES(setregid, CREDS_IDS)
CREDS_PROBES(setresuid, CREDS_IDS)
CREDS_PROBES(setresgid, CREDS_IDS)
CREDS_PROBES(setfsuid, CREDS_FSUID)
CREDS_PROBES(setfsgid, CREDS_FSGID)
CREDS_PROBES(capset, CREDS_IDS)
CREDS_PROBES(setgroups, CREDS_GROUPS)
#endif

/* ---- kmod_load ----------------------------------------------------------- */
#if defined(HIDS_WANT_KMOD_LOAD) || !defined(HIDS_SELECTED)
/* Where the calls are seen is the including program's choice, by define:
 *
 * HIDS_KMOD_TRACEPOINTS=1: at syscalls:sys_exit_init_module and
 *   sys_exit_finit_module, with the module's name from module:module_load.
 *   Only kernels with module support (CONFIG_MODULES) have them, i.e. where
 *   /sys/kernel/tracing/events/syscalls/sys_exit_finit_module exists.
 * HIDS_KMOD_RAW_SYSCALLS: at the raw sys_exit tracepoint, which works
 *   without them (this kernel has no module support: the calls reach
 *   sys_ni_syscall and fail with -ENOSYS) but runs a program on every
 *   syscall of the host; measured here, that costs a loop of open+close
 *   about 10 to 20% of its rate on top of what any syscall tracepoint costs.
 *   No module name there.
 *
 * Neither: the raw sys_exit, which works on every kernel (sdxfer.hids
 * chooses the tracepoints where tracefs has them). */
#ifndef HIDS_KMOD_TRACEPOINTS
#define HIDS_KMOD_TRACEPOINTS 0
#endif
#if !HIDS_KMOD_TRACEPOINTS && !defined(HIDS_KMOD_RAW_SYSCALLS)
#define HIDS_KMOD_RAW_SYSCALLS 1
#endif

static __always_inline int report_kmod_load(void *ctx, int finit, long ret, const char *name)
{
    char syscall[16] = "init_module";
    __s32 fd = -1;
    if (finit) {
        __builtin_memcpy(syscall, "finit_module", sizeof("finit_module"));
        fd = syscall_reg(syscall_regs(), SDXFER_MEMBER(pt_regs, di));  /* finit_module(fd, uargs, flags) */
    }
    kmod_load_print(ctx, syscall, name, fd, ret);
    return 0;
}

#if HIDS_KMOD_TRACEPOINTS
/* The module's name, noted at module:module_load (load_module() has parsed
 * the image and is about to run its init) for the sys_exit that follows. */
#define KMOD_NAME_MAX 64  /* the name field's max; MODULE_NAME_LEN is 56 */
struct kmod_name {
    char name[KMOD_NAME_MAX];
};
#ifdef SDXFER_CORE
HIDS_LRU_HASH(process_kmod_names, __u32, struct kmod_name, 1024);
#else
BPF_TABLE("lru_hash", __u32, struct kmod_name, process_kmod_names, 1024);
static __always_inline struct kmod_name *process_kmod_names_lookup(__u32 *tid)
{
    return process_kmod_names.lookup(tid);
}
static __always_inline void process_kmod_names_update(__u32 *tid, struct kmod_name *name)
{
    process_kmod_names.update(tid, name);
}
static __always_inline void process_kmod_names_delete(__u32 *tid)
{
    process_kmod_names.delete(tid);
}
#endif

/* TP_PROTO(struct module *mod) */
RAW_TRACEPOINT_PROBE(module_load)
{
    __u32 tid = bpf_get_current_pid_tgid();
    struct kmod_name found = {};
    bpf_probe_read_kernel_str(found.name, sizeof(found.name), (const char *)ctx->args[0] + SDXFER_MEMBER(module, name));
    process_kmod_names_update(&tid, &found);
    return 0;
}

static __always_inline int report_kmod_syscall(void *ctx, int finit, long ret)
{
    __u32 tid = bpf_get_current_pid_tgid();
    struct kmod_name *found = process_kmod_names_lookup(&tid);
    report_kmod_load(ctx, finit, ret, found ? found->name : SDXFER_UNKNOWN);
    if (found)
        process_kmod_names_delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_init_module)
{
    return report_kmod_syscall(args, 0, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_finit_module)
{
    return report_kmod_syscall(args, 1, args->ret);
}
#elif defined(HIDS_KMOD_RAW_SYSCALLS)
#define PROCESS_NR_INIT_MODULE 175    /* x86-64 */
#define PROCESS_NR_FINIT_MODULE 313
#define PROCESS_TS_COMPAT 0x0002      /* thread_info.status: a 32-bit syscall, other numbers */

/* TP_PROTO(struct pt_regs *regs, long ret); the syscall number is orig_ax */
RAW_TRACEPOINT_PROBE(sys_exit)
{
    /* runs for every syscall of the host: a plain load, not a probe read */
    __u64 nr = syscall_reg(syscall_regs(), SDXFER_MEMBER(pt_regs, orig_ax));
    if (nr != PROCESS_NR_INIT_MODULE && nr != PROCESS_NR_FINIT_MODULE)
        return 0;
    const char *task = (const char *)bpf_get_current_task();
    if (sdxfer_kernel_u32(task + SDXFER_MEMBER(task_struct, thread_info) + SDXFER_MEMBER(thread_info, status)) & PROCESS_TS_COMPAT)
        return 0;
    /* no module name here (and without module support the kernel never
     * reads the image) */
    return report_kmod_load(ctx, nr == PROCESS_NR_FINIT_MODULE, (long)ctx->args[1], SDXFER_UNKNOWN);
}
#endif
#endif

#endif /* SDXFER_BPF_PROCESS_H */
