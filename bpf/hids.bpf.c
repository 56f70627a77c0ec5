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

#define ARGV_MAX 16384          /* schema max of exec.argv; a power of two */
#define EXE_MAX 4096            /* schema max of exec.exe */
#define ENV_COPY_MAX 8192       /* environment bytes compared in BPF memory */
#define ENVP_MAX 256            /* environment entries examined */
#define FAILED_ARGS_MAX 1024    /* argv entries gathered for a failed exec */

/* Slot 1 layout. A successful exec uses the environment copy and the envp
 * array (its argv is read straight from the new image); a failed exec uses the
 * argv blob and the exe copy. The verifier sees an argv write as a masked
 * offset plus a bounded length, up to 2 * ARGV_MAX bytes from LOCAL_ARGV, so
 * that much must lie inside the slot; at run time the blob stays within
 * ARGV_MAX and the locals after it are safe. */
#define LOCAL_ARGV 0
#define LOCAL_ENV (LOCAL_ARGV + ARGV_MAX)
#define LOCAL_ENVP (LOCAL_ENV + ENV_COPY_MAX)
#define LOCAL_EXE (LOCAL_ENVP + ENVP_MAX * 8)
#define LOCAL_FOUND (LOCAL_EXE + EXE_MAX)
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

/* Reads an environment entry's first bytes from user memory and notes where
 * the value of SSH_CONNECTION or LD_PRELOAD starts. The last entry wins, as in
 * ld.so's LD_PRELOAD handling; testing the found pointers instead would
 * multiply the verifier's states per iteration. */
static __always_inline void match_env(struct env_values *found, __u64 entry)
{
    __u64 head[2] = {};
    bpf_probe_read_user_str(head, sizeof(head), (void *)entry);
    if (head[0] == SSH_CONNECTION_W0 && (head[1] & SSH_CONNECTION_W1_MASK) == SSH_CONNECTION_W1)
        found->ssh_connection = (const char *)(entry + SSH_CONNECTION_PREFIX);
    else if (head[0] == LD_PRELOAD_W0 && (head[1] & LD_PRELOAD_W1_MASK) == LD_PRELOAD_W1)
        found->ld_preload = (const char *)(entry + LD_PRELOAD_PREFIX);
}

/* The new stack starts with argc, argv[argc], NULL, envp[envc], NULL (bprm
 * knows both counts; below them lies a random gap that may not be mapped, so
 * nothing past the envp array is read). A copy of the environment block (one
 * bulk read) serves to reject most entries by their first eight bytes;
 * candidates and entries past the copy are read again from user memory, so
 * stale bytes beyond the copy can never produce a match. */
static __always_inline void find_env_of_new_image(char *local, const struct mm_bounds *mm,
                                                  const char *bprm, struct env_values *found)
{
    __u64 env_start = mm->env_start;
    __s32 argc = 0, envc = 0;
    bpf_probe_read_kernel(&argc, sizeof(argc), bprm + BTF_OFF_LINUX_BINPRM_ARGC);
    bpf_probe_read_kernel(&envc, sizeof(envc), bprm + BTF_OFF_LINUX_BINPRM_ENVC);
    if (argc < 0 || envc <= 0)
        return;

    /* envc + 1 entries take in the terminating NULL the loop stops at. */
    __u64 envp = mm->start_stack + 8 * ((__u64)argc + 2);
    __u64 envp_bytes = 8 * ((__u64)envc + 1);
    if (envp_bytes > ENVP_MAX * 8)
        envp_bytes = ENVP_MAX * 8;
    __u64 *entries = (__u64 *)(local + LOCAL_ENVP);
    if (bpf_probe_read_user(entries, envp_bytes, (void *)envp) < 0)
        return;

    char *env = local + LOCAL_ENV;
    __u64 env_len = mm->env_end - env_start;
    if (env_len > ENV_COPY_MAX)
        env_len = ENV_COPY_MAX;
    bpf_probe_read_user(env, env_len, (void *)env_start);

    for (__u32 i = 0; i < ENVP_MAX; i++) {
        __u64 entry = entries[i];
        if (!entry)
            break;
        __u64 offset = entry - env_start;
        /* Past the copy: treat as a candidate and read it from user memory. */
        __u64 first_word = SSH_CONNECTION_W0;
        if (offset <= ENV_COPY_MAX - sizeof(first_word))
            first_word = *(__u64 *)(env + offset);
        if (first_word == SSH_CONNECTION_W0 || first_word == LD_PRELOAD_W0)
            match_env(found, entry);
    }
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
    find_env_of_new_image(local, &mm, bprm, env);

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

/* Gathers the caller's argv strings into one NUL-separated blob in slot 1 and
 * stores its length at LOCAL_ARGV_LEN, or SDXFER_LEN_UNKNOWN when something did
 * not fit (the exact loss is unknown here, only that there was one). The length
 * lives in map memory so the verifier does not carry its range from one
 * iteration to the next. */
static __always_inline void gather_argv(char *local, __u64 argv)
{
    __u32 *len = (__u32 *)(local + LOCAL_ARGV_LEN);
    *len = 0;
    for (__u32 i = 0; i < FAILED_ARGS_MAX; i++) {
        __u64 arg = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), (void *)(argv + 8 * i)) < 0 || !arg)
            return;
        __u32 used = *len;
        if (used >= ARGV_MAX) {
            *len = SDXFER_LEN_UNKNOWN;
            return;
        }
        used = bounded(used, ARGV_MAX - 1);
        __u32 room = ARGV_MAX - used;
        long copied = bpf_probe_read_user_str(local + LOCAL_ARGV + used, room, (void *)arg);
        if (copied <= 0)
            return;
        *len = used + copied;
        if (copied == room) {
            /* Filled the blob exactly: truncated unless that was the NUL. */
            char last = 1;
            bpf_probe_read_user(&last, 1, (void *)(arg + copied - 1));
            if (last)
                *len = SDXFER_LEN_UNKNOWN;
            return;
        }
    }
    *len = SDXFER_LEN_UNKNOWN;
}

static __always_inline void find_env_of_caller(__u64 envp, struct env_values *found)
{
    for (__u32 i = 0; i < ENVP_MAX; i++) {
        __u64 entry = 0;
        if (bpf_probe_read_user(&entry, sizeof(entry), (void *)(envp + 8 * i)) < 0 || !entry)
            return;
        match_env(found, entry);
    }
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
    if (bpf_probe_read_user_str(local + LOCAL_EXE, EXE_MAX, (void *)call.filename) < 0)
        exe = NULL;
    gather_argv(local, call.argv);
    __u32 argv_len = *(__u32 *)(local + LOCAL_ARGV_LEN);
    struct env_values *env = clear_env_values(local);
    if (call.envp)
        find_env_of_caller(call.envp, env);

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
