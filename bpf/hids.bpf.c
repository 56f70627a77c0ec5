/*
 * execmon's probe: one exec record per execve/execveat, successful or failed.
 *
 * Successful execs are read at the sched_process_exec raw tracepoint, after
 * the kernel has built the new image, so argv and the environment are the new
 * program's own (mm->arg_start..arg_end and the envp array on the new stack).
 * Failed execs never reach that tracepoint: sys_exit_execve* reports them when
 * ret < 0, reading the caller's arguments from its saved user registers.
 *
 * Kernel structure offsets arrive as -D macros computed from the running
 * kernel's BTF by sdxfer.loader; the installed headers belong to another kernel.
 * Large work areas live in slot 1 of the per-CPU scratch array.
 */
#include <linux/sched.h>
#include "xfer.h"

#if !defined(BTF_OFF_TASK_STRUCT_MM) || !defined(BTF_OFF_TASK_STRUCT_REAL_PARENT) || \
    !defined(BTF_OFF_TASK_STRUCT_TGID) || !defined(BTF_OFF_TASK_STRUCT_COMM) || \
    !defined(BTF_OFF_MM_STRUCT_ARG_START) || !defined(BTF_OFF_MM_STRUCT_ARG_END) || \
    !defined(BTF_OFF_MM_STRUCT_ENV_START) || \
    !defined(BTF_OFF_MM_STRUCT_ENV_END) || !defined(BTF_OFF_MM_STRUCT_START_STACK) || \
    !defined(BTF_OFF_PT_REGS_DI) || !defined(BTF_OFF_PT_REGS_SI) || \
    !defined(BTF_OFF_PT_REGS_DX) || !defined(BTF_OFF_PT_REGS_R10) || \
    !defined(BTF_OFF_LINUX_BINPRM_ARGC) || !defined(BTF_OFF_LINUX_BINPRM_ENVC) || \
    !defined(BTF_OFF_LINUX_BINPRM_FILENAME)
#error "kernel structure offsets missing: load this program with sdxfer.loader"
#endif

#define ARGV_MAX SDXFER_MAX_EXEC_ARGV
#define EXE_MAX SDXFER_MAX_EXEC_EXE
_Static_assert((ARGV_MAX & (ARGV_MAX - 1)) == 0, "argv offsets are bounded by a mask");
#define ENV_WINDOW 8192         /* environment bytes compared in BPF memory at a time */
#define ENVP_CHUNK 256          /* envp entries read at a time; a power of two */
#define ENVP_SCAN_MAX 2048      /* environment entries of a new image examined */
#define CALLER_ENVP_MAX 1024    /* environment entries of a failed exec examined */
#define FAILED_ARGS_MAX 1024    /* argv entries gathered for a failed exec */

/* Slot 1 layout. A successful exec uses the environment window and the envp
 * chunk (its argv is read straight from the new image); a failed exec uses the
 * argv blob and the exe copy. The verifier sees an argv write as a masked
 * offset plus a bounded length, up to 2 * ARGV_MAX bytes from LOCAL_ARGV, so
 * that much must lie inside the slot; at run time the blob stays within
 * ARGV_MAX and the locals after it are safe. The exe copy has room for
 * EXE_MAX + 2 bytes, as the packer reads it, so a longer path shows as cut. */
#define LOCAL_ARGV 0
#define LOCAL_ENV (LOCAL_ARGV + ARGV_MAX)
#define LOCAL_ENVP (LOCAL_ENV + ENV_WINDOW)
#define LOCAL_EXE (LOCAL_ENVP + ENVP_CHUNK * 8)
#define LOCAL_FOUND (LOCAL_EXE + EXE_MAX + 8)
#define LOCAL_ARGV_LEN (LOCAL_FOUND + 16)
_Static_assert(LOCAL_ARGV_LEN + 4 <= SDXFER_SLOT_SIZE, "slot 1 too small");
_Static_assert(LOCAL_ARGV + 2 * ARGV_MAX <= SDXFER_SLOT_SIZE, "argv writes must stay in the slot");

/* First bytes of "SSH_CONNECTION=" and "LD_PRELOAD=" as little-endian words. */
#define SSH_CONNECTION_W0 0x4e4e4f435f485353ULL   /* "SSH_CONN" */
#define SSH_CONNECTION_W1 0x003d4e4f49544345ULL   /* "ECTION=" */
#define SSH_CONNECTION_W1_MASK 0x00ffffffffffffffULL
#define SSH_CONNECTION_PREFIX 15
#define LD_PRELOAD_W0 0x4f4c4552505f444cULL       /* "LD_PRELO" */
#define LD_PRELOAD_W1 0x3d4441ULL                 /* "AD=" */
#define LD_PRELOAD_W1_MASK 0xffffffULL
#define LD_PRELOAD_PREFIX 11

struct env_values {
    const char *ssh_connection;
    const char *ld_preload;
};

static __always_inline struct env_values *clear_env_values(char *local)
{
    struct env_values *found = (struct env_values *)(local + LOCAL_FOUND);
    found->ssh_connection = NULL;
    found->ld_preload = NULL;
    return found;
}

/* Values not found in an environment the probe could not examine to the end
 * are unknown, not absent. */
static __always_inline void mark_unexamined(struct env_values *found)
{
    if (!found->ssh_connection)
        found->ssh_connection = SDXFER_UNKNOWN;
    if (!found->ld_preload)
        found->ld_preload = SDXFER_UNKNOWN;
}

/* Applies a mask clang cannot fold away, so the verifier sees the bound. */
static __always_inline __u32 bounded(__u32 value, const __u32 mask)
{
    asm volatile("%0 &= %1" : "+r"(value) : "i"(mask));
    return value;
}

static __always_inline __u64 read_kernel_u64(const void *addr)
{
    __u64 value = 0;
    bpf_probe_read_kernel(&value, sizeof(value), addr);
    return value;
}

static __always_inline __u32 parent_tgid(const char *task)
{
    const char *parent = (const char *)read_kernel_u64(task + BTF_OFF_TASK_STRUCT_REAL_PARENT);
    __u32 tgid = 0;
    bpf_probe_read_kernel(&tgid, sizeof(tgid), parent + BTF_OFF_TASK_STRUCT_TGID);
    return tgid;
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

/* x, hidden from clang, which would otherwise turn arithmetic meant to be
 * branch-free back into a compare and a branch. */
static __always_inline __u64 opaque(__u64 x)
{
    asm volatile("" : "+r"(x));
    return x;
}

/* 1 if x != 0, else 0, with no branch. The verifier walks the environment
 * loops entry by entry, and every branch it cannot decide leaves a state
 * pending per entry (8192 at most), so the common case takes one branch, an
 * asm goto into the rare case: clang would lay out an if () the other way
 * round, and the verifier walks the fall-through first. */
static __always_inline __u64 nonzero(__u64 x)
{
    return (x | opaque(-x)) >> 63;
}

/* 1 if an entry starting with this word may be SSH_CONNECTION= or LD_PRELOAD= */
static __always_inline __u64 may_match(__u64 first_word)
{
    return (nonzero(first_word ^ SSH_CONNECTION_W0) & nonzero(first_word ^ LD_PRELOAD_W0)) ^ 1;
}

/* if_set when condition is 1, otherwise when it is 0; no branch. */
static __always_inline __u64 choose(__u64 condition, __u64 if_set, __u64 otherwise)
{
    return otherwise ^ ((if_set ^ otherwise) & opaque(-condition));
}

/* Notes where the value of SSH_CONNECTION or LD_PRELOAD starts, given an
 * entry's first 16 bytes, with no branch (each way through would be explored
 * again for every entry). The last entry wins, as in ld.so's LD_PRELOAD
 * handling. */
static __always_inline void match_env(struct env_values *found, __u64 entry, const __u64 head[2])
{
    __u64 is_ssh = (nonzero(head[0] ^ SSH_CONNECTION_W0) |
                    nonzero((head[1] & SSH_CONNECTION_W1_MASK) ^ SSH_CONNECTION_W1)) ^ 1;
    __u64 is_ld = (nonzero(head[0] ^ LD_PRELOAD_W0) |
                   nonzero((head[1] & LD_PRELOAD_W1_MASK) ^ LD_PRELOAD_W1)) ^ 1;
    found->ssh_connection = (const char *)choose(is_ssh, entry + SSH_CONNECTION_PREFIX,
                                                 (__u64)found->ssh_connection);
    found->ld_preload = (const char *)choose(is_ld, entry + LD_PRELOAD_PREFIX, (__u64)found->ld_preload);
}

/* Copies up to ENV_WINDOW bytes of the environment block from `from` (never
 * past env_end: above the block lie only the exec path and the stack's end). */
static __always_inline long read_env_window(char *env, __u64 from, __u64 env_end)
{
    __u64 len = env_end - from;
    if (len > ENV_WINDOW)
        len = ENV_WINDOW;
    return bpf_probe_read_user(env, len, (void *)from);
}

/* The new stack starts with argc, argv[argc], NULL, envp[envc], NULL (bprm
 * knows both counts; below them lies a random gap that may not be mapped, so
 * nothing past the envp array is read). The kernel laid the entries out in
 * order in env_start..env_end, so a window on that block (one bulk read,
 * moved on when an entry lies past it) rejects most entries by their first
 * eight bytes; candidates are read again from user memory, so stale bytes
 * after a short window can never produce a match. Returns whether every entry
 * was examined. */
static __always_inline int find_env_of_new_image(char *local, const struct mm_bounds *mm,
                                                 const char *bprm, struct env_values *found)
{
    __s32 argc = -1, envc = -1;
    bpf_probe_read_kernel(&argc, sizeof(argc), bprm + BTF_OFF_LINUX_BINPRM_ARGC);
    bpf_probe_read_kernel(&envc, sizeof(envc), bprm + BTF_OFF_LINUX_BINPRM_ENVC);
    if (argc < 0 || envc < 0)
        return 0;
    if (envc == 0)
        return 1;

    __u64 envp = mm->start_stack + 8 * ((__u64)argc + 2);
    __u64 *entries = (__u64 *)(local + LOCAL_ENVP);
    char *env = local + LOCAL_ENV;
    __u64 window = mm->env_start;
    if (read_env_window(env, window, mm->env_end) < 0)
        return 0;

    for (__u32 i = 0; i < ENVP_SCAN_MAX; i++) {
        if (i % ENVP_CHUNK == 0) {
            if (i >= envc)
                return 1;
            __u64 chunk_bytes = 8 * ((__u64)envc - i);
            if (chunk_bytes > ENVP_CHUNK * 8)
                chunk_bytes = ENVP_CHUNK * 8;
            if (bpf_probe_read_user(entries, chunk_bytes, (void *)(envp + 8 * i)) < 0)
                return 0;
        }
        __u64 entry = entries[i % ENVP_CHUNK];
        __u64 offset = entry - window;
        __u64 first_word = *(__u64 *)(env + bounded(offset, ENV_WINDOW - 1));
        __u64 past_last = (((__u64)i - opaque(envc)) >> 63) ^ 1;
        /* First word not inside the window (an offset below it wraps round) */
        __u64 past_window = nonzero((offset | (offset + sizeof(__u64) - 1)) / ENV_WINDOW);
        asm goto("if %0 != 0 goto %l[rare]" : : "r"(past_last | past_window | may_match(first_word)) : : rare);
        continue;
    rare:
        if (i >= envc)
            return 1;
        if (past_window) {
            window = entry;
            if (read_env_window(env, window, mm->env_end) < 0)
                return 0;
        }
        __u64 head[2] = {};
        bpf_probe_read_user_str(head, sizeof(head), (void *)entry);
        match_env(found, entry, head);
    }
    return envc <= ENVP_SCAN_MAX;
}

/* Raw tracepoint: cheaper than the trace-event one, and its arguments
 * (task, old_pid, bprm) give the argument and environment counts. */
RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    char *local = sdxfer_get_local();
    if (!local)
        return 0;
    const char *bprm = (const char *)ctx->args[2];
    const char *task = (const char *)bpf_get_current_task();
    struct mm_bounds mm;
    read_mm_bounds((const char *)read_kernel_u64(task + BTF_OFF_TASK_STRUCT_MM), &mm);
    __u32 argv_len = mm.arg_end - mm.arg_start;

    struct env_values *env = clear_env_values(local);
    if (!find_env_of_new_image(local, &mm, bprm, env))
        mark_unexamined(env);

    /* comm is read straight from the task by the packer: no copy on the stack */
    const char *comm = task + BTF_OFF_TASK_STRUCT_COMM;
    __u64 uid_gid = bpf_get_current_uid_gid();
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    const char *exe = (const char *)read_kernel_u64(bprm + BTF_OFF_LINUX_BINPRM_FILENAME);
    /* old_pid: the thread that called exec, which may not be the leader */
    exec_print(ctx, pid_tgid >> 32, (__u32)ctx->args[1], parent_tgid(task), (__u32)uid_gid,
               uid_gid >> 32, 0, comm, exe, (const char *)mm.arg_start, argv_len, env->ssh_connection,
               env->ld_preload);
    return 0;
}

/* Whether a user pointer array has an entry at `index` (an unreadable one
 * counts: it says as little as one that is there). */
static __always_inline int entry_follows(__u64 array, __u32 index)
{
    __u64 entry = 0;
    return bpf_probe_read_user(&entry, sizeof(entry), (void *)(array + 8 * index)) < 0 || entry;
}

/* Gathers the caller's argv strings into one NUL-separated blob in slot 1 and
 * leaves its length at LOCAL_ARGV_LEN, or'ed with SDXFER_LEN_TRUNCATED when
 * arguments (or part of one) were left out: how much is unknown here. The
 * length lives in map memory, so the verifier carries neither its range from
 * one iteration to the next nor a packer path per way out of the loop. */
static __always_inline void gather_argv(char *local, __u64 argv)
{
    __u32 *len = (__u32 *)(local + LOCAL_ARGV_LEN);
    *len = 0;
    if (!argv)
        return;  /* execve(path, NULL, envp): no arguments */
    for (__u32 i = 0; i < FAILED_ARGS_MAX; i++) {
        __u64 arg = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), (void *)(argv + 8 * i)) < 0)
            goto truncated;
        if (!arg)
            return;
        /* Below ARGV_MAX at run time: a full blob ends the loop. */
        __u32 used = bounded(*len, ARGV_MAX - 1);
        __u32 room = ARGV_MAX - used;
        long copied = bpf_probe_read_user_str(local + LOCAL_ARGV + used, room, (void *)arg);
        if (copied <= 0)
            goto truncated;
        *len = used + copied;
        if (copied == room) {
            /* The blob is full: complete only if that was this argument's
             * own NUL and no argument follows. */
            char last = 1;
            bpf_probe_read_user(&last, 1, (void *)(arg + copied - 1));
            if (last || entry_follows(argv, i + 1))
                goto truncated;
            return;
        }
    }
    if (!entry_follows(argv, FAILED_ARGS_MAX))
        return;
truncated:
    *len |= SDXFER_LEN_TRUNCATED;
}

/* The caller's envp, entry by entry (its layout is the caller's own), with
 * one branch per entry as in find_env_of_new_image. Returns whether every
 * entry was examined. */
static __always_inline int find_env_of_caller(__u64 envp, struct env_values *found)
{
    if (!envp)
        return 1;
    for (__u32 i = 0; i < CALLER_ENVP_MAX; i++) {
        __u64 entry = 0;
        __u64 head[2] = {};
        long entry_read = bpf_probe_read_user(&entry, sizeof(entry), (void *)(envp + 8 * i));
        long head_read = bpf_probe_read_user_str(head, sizeof(head), (void *)entry);
        __u64 failed = (__u64)(entry_read | head_read) >> 63;
        asm goto("if %0 != 0 goto %l[rare]" : : "r"(failed | (nonzero(entry) ^ 1) | may_match(head[0])) : : rare);
        continue;
    rare:
        if (entry_read < 0)
            return 0;
        if (!entry)
            return 1;
        if (head_read < 0)
            return 0;
        match_env(found, entry, head);
    }
    return !entry_follows(envp, CALLER_ENVP_MAX);
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
    const char *regs = (const char *)bpf_task_pt_regs(bpf_get_current_task_btf());
    if (is_execveat) {
        /* execveat(dirfd, filename, argv, envp, flags) */
        call->filename = read_kernel_u64(regs + BTF_OFF_PT_REGS_SI);
        call->argv = read_kernel_u64(regs + BTF_OFF_PT_REGS_DX);
        call->envp = read_kernel_u64(regs + BTF_OFF_PT_REGS_R10);
    } else {
        call->filename = read_kernel_u64(regs + BTF_OFF_PT_REGS_DI);
        call->argv = read_kernel_u64(regs + BTF_OFF_PT_REGS_SI);
        call->envp = read_kernel_u64(regs + BTF_OFF_PT_REGS_DX);
    }
}

static __always_inline int report_failed_exec(void *ctx, long ret, int is_execveat)
{
    if (ret >= 0)
        return 0;
    char *local = sdxfer_get_local();
    if (!local)
        return 0;
    struct exec_call call;
    read_exec_call(&call, is_execveat);

    const char *exe = local + LOCAL_EXE;
    if (bpf_probe_read_user_str(local + LOCAL_EXE, EXE_MAX + 2, (void *)call.filename) < 0)
        exe = SDXFER_UNKNOWN;
    gather_argv(local, call.argv);
    __u32 argv_len = *(volatile __u32 *)(local + LOCAL_ARGV_LEN);
    struct env_values *env = clear_env_values(local);
    if (!find_env_of_caller(call.envp, env))
        mark_unexamined(env);

    __u64 uid_gid = bpf_get_current_uid_gid();
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    const char *task = (const char *)bpf_get_current_task();
    exec_print(ctx, pid_tgid >> 32, (__u32)pid_tgid, parent_tgid(task), (__u32)uid_gid, uid_gid >> 32,
               ret, task + BTF_OFF_TASK_STRUCT_COMM, exe, local + LOCAL_ARGV, argv_len, env->ssh_connection, env->ld_preload);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return report_failed_exec(args, args->ret, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return report_failed_exec(args, args->ret, 1);
}
