/*
 * The file family: mount, chmod, rename, unlink and file_create, one record
 * per call, successful or failed (ret is the return value or -errno).
 *
 * Every program sits on the syscall's sys_exit tracepoint and reads the
 * arguments from the caller's saved user registers (as exec.bpf.h does for
 * failed execs): the kernel leaves them alone, so one program per syscall
 * sees both the arguments and the result, with no enter probe and no map.
 * Paths are read from the caller's memory as it passed them (relative ones
 * stay relative to the dirfd), up to the field's max, a longer one cut and
 * flagged by the packer. Only 64-bit syscalls are seen: the kernel does not
 * trace compat (ia32) syscalls.
 *
 * Each event's programs are compiled unless HIDS_SELECTED is defined without HIDS_WANT_<EVENT>.
 */
#ifndef SDXFER_BPF_FILE_H
#define SDXFER_BPF_FILE_H

/* UAPI values (x86-64), spelled here so no kernel header is needed. */
#define FILE_AT_FDCWD (-100)
#define FILE_AT_REMOVEDIR 0x200
#define FILE_O_WRONLY 01
#define FILE_O_CREAT 0100
#define FILE_O_TRUNC 01000
#define FILE_O_TMPFILE_BIT 020000000 /* __O_TMPFILE; O_TMPFILE adds O_DIRECTORY */

/* The syscall's arguments in x86-64 order (di, si, dx, r10, r8, r9). */
struct file_call {
    __u64 arg[6];
};

/* The caller's saved user registers. bpf_task_pt_regs gives a BTF pointer,
 * which the verifier lets a program load from directly (a faulting load
 * reads 0): ~40 ns less per register than bpf_probe_read_kernel, which is
 * most of what a plain open costs here. */
static __always_inline const char *file_user_regs(void)
{
    return (const char *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* One saved register, at its BTF_OFF_PT_REGS_<NAME> offset. */
static __always_inline __u64 file_reg(const char *regs, const __u32 offset)
{
    return *(const volatile __u64 *)(regs + offset);
}

static __always_inline void file_read_call(struct file_call *call)
{
    const char *regs = file_user_regs();
    call->arg[0] = file_reg(regs, BTF_OFF_PT_REGS_DI);
    call->arg[1] = file_reg(regs, BTF_OFF_PT_REGS_SI);
    call->arg[2] = file_reg(regs, BTF_OFF_PT_REGS_DX);
    call->arg[3] = file_reg(regs, BTF_OFF_PT_REGS_R10);
    call->arg[4] = file_reg(regs, BTF_OFF_PT_REGS_R8);
    call->arg[5] = file_reg(regs, BTF_OFF_PT_REGS_R9);
}

#define FILE_PATH(x) ((const char *)(x))

/* ---- mount(source, target, fstype, flags, data) ---------------------- */
#if defined(HIDS_WANT_MOUNT) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_mount)
{
    struct file_call call;
    file_read_call(&call);
    mount_print(args, FILE_PATH(call.arg[0]), FILE_PATH(call.arg[1]), FILE_PATH(call.arg[2]), call.arg[3],
                args->ret);
    return 0;
}
#endif

/* ---- chmod(path, mode), fchmod(fd, mode), fchmodat(dfd, path, mode),
 *      fchmodat2(dfd, path, mode, flags) --------------------------------- */
#if defined(HIDS_WANT_CHMOD) || !defined(HIDS_SELECTED)
/* mode is umode_t in every one of them: the kernel reads 16 bits. */
static __always_inline int file_report_chmod(void *ctx, const char *syscall, __s32 fd, __u64 path, __u64 mode,
                                             long ret)
{
    chmod_print(ctx, syscall, fd, FILE_PATH(path), (__u16)mode, ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_chmod)
{
    char name[] = "chmod";
    struct file_call call;
    file_read_call(&call);
    return file_report_chmod(args, name, FILE_AT_FDCWD, call.arg[0], call.arg[1], args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmod)
{
    char name[] = "fchmod";
    struct file_call call;
    file_read_call(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], 0, call.arg[1], args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat)
{
    char name[] = "fchmodat";
    struct file_call call;
    file_read_call(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], call.arg[1], call.arg[2], args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat2)
{
    char name[] = "fchmodat2";
    struct file_call call;
    file_read_call(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], call.arg[1], call.arg[2], args->ret);
}
#endif

/* ---- rename(old, new), renameat(olddfd, old, newdfd, new),
 *      renameat2(olddfd, old, newdfd, new, flags) ------------------------ */
#if defined(HIDS_WANT_RENAME) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_rename)
{
    char name[] = "rename";
    struct file_call call;
    file_read_call(&call);
    rename_print(args, name, FILE_PATH(call.arg[0]), FILE_PATH(call.arg[1]), 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat)
{
    char name[] = "renameat";
    struct file_call call;
    file_read_call(&call);
    rename_print(args, name, FILE_PATH(call.arg[1]), FILE_PATH(call.arg[3]), 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat2)
{
    char name[] = "renameat2";
    struct file_call call;
    file_read_call(&call);
    rename_print(args, name, FILE_PATH(call.arg[1]), FILE_PATH(call.arg[3]), (__u32)call.arg[4], args->ret);
    return 0;
}
#endif

/* ---- unlink(path), rmdir(path), unlinkat(dfd, path, flag) ------------- */
#if defined(HIDS_WANT_UNLINK) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_unlink)
{
    char name[] = "unlink";
    struct file_call call;
    file_read_call(&call);
    unlink_print(args, name, FILE_PATH(call.arg[0]), 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_rmdir)
{
    char name[] = "rmdir";
    struct file_call call;
    file_read_call(&call);
    unlink_print(args, name, FILE_PATH(call.arg[0]), 1, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat)
{
    char name[] = "unlinkat";
    struct file_call call;
    file_read_call(&call);
    unlink_print(args, name, FILE_PATH(call.arg[1]), (call.arg[2] & FILE_AT_REMOVEDIR) != 0, args->ret);
    return 0;
}
#endif

/* ---- file_create: open(path, flags, mode), openat(dfd, path, flags, mode),
 *      openat2(dfd, path, how, size), creat(path, mode) ------------------
 * Every open of the host passes through here, so a plain one (neither
 * O_CREAT nor O_TMPFILE) costs one register load and returns: the flags
 * register is read alone, before anything else. */
#if defined(HIDS_WANT_FILE_CREATE) || !defined(HIDS_SELECTED)
#define FILE_MAY_CREATE(flags) (((flags) & (FILE_O_CREAT | FILE_O_TMPFILE_BIT)) != 0)

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    __u64 flags = file_reg(file_user_regs(), BTF_OFF_PT_REGS_DX);
    if (!FILE_MAY_CREATE(flags))
        return 0;
    char name[] = "openat";
    struct file_call call;
    file_read_call(&call);
    file_create_print(args, name, FILE_PATH(call.arg[1]), (__s32)flags, (__u16)call.arg[3], args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    __u64 flags = file_reg(file_user_regs(), BTF_OFF_PT_REGS_SI);
    if (!FILE_MAY_CREATE(flags))
        return 0;
    char name[] = "open";
    struct file_call call;
    file_read_call(&call);
    file_create_print(args, name, FILE_PATH(call.arg[0]), (__s32)flags, (__u16)call.arg[2], args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
    char name[] = "creat";
    struct file_call call;
    file_read_call(&call);
    file_create_print(args, name, FILE_PATH(call.arg[0]), FILE_O_CREAT | FILE_O_WRONLY | FILE_O_TRUNC,
                      (__u16)call.arg[1], args->ret);
    return 0;
}

/* The start of struct open_how (flags, mode, resolve: u64 each). */
struct file_open_how {
    __u64 flags;
    __u64 mode;
};

/* openat2's flags and mode are in user memory: an open_how that cannot be
 * read (the call then fails with -EFAULT) creates nothing and sends nothing.
 * The kernel refuses a mode beyond 07777, so 32 bits of it say all. */
TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
    struct file_call call;
    file_read_call(&call);
    struct file_open_how how;
    if (bpf_probe_read_user(&how, sizeof(how), (const void *)call.arg[2]) < 0)
        return 0;
    if (!FILE_MAY_CREATE(how.flags))
        return 0;
    char name[] = "openat2";
    file_create_print(args, name, FILE_PATH(call.arg[1]), (__s32)how.flags, (__u32)how.mode, args->ret);
    return 0;
}
#endif

#endif /* SDXFER_BPF_FILE_H */
