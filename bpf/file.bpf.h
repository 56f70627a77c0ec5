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

#include "helpers.h"

/* UAPI values (x86-64), spelled here so no kernel header is needed. */
#define FILE_AT_FDCWD (-100)
#define FILE_AT_REMOVEDIR 0x200
#define FILE_O_WRONLY 01
#define FILE_O_CREAT 0100
#define FILE_O_TRUNC 01000
#define FILE_O_TMPFILE_BIT 020000000 /* __O_TMPFILE; O_TMPFILE adds O_DIRECTORY */

#define FILE_PATH(x) ((const char *)(x))

/* ---- mount(source, target, fstype, flags, data) ---------------------- */
#if defined(HIDS_WANT_MOUNT) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_mount)
{
    struct syscall_args call;
    read_syscall_args(&call);
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
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, FILE_AT_FDCWD, call.arg[0], call.arg[1], args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmod)
{
    char name[] = "fchmod";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], 0, call.arg[1], args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat)
{
    char name[] = "fchmodat";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], call.arg[1], call.arg[2], args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat2)
{
    char name[] = "fchmodat2";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], call.arg[1], call.arg[2], args->ret);
}
#endif

/* ---- rename(old, new), renameat(olddfd, old, newdfd, new),
 *      renameat2(olddfd, old, newdfd, new, flags) ------------------------ */
#if defined(HIDS_WANT_RENAME) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_rename)
{
    char name[] = "rename";
    struct syscall_args call;
    read_syscall_args(&call);
    rename_print(args, name, FILE_PATH(call.arg[0]), FILE_PATH(call.arg[1]), 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat)
{
    char name[] = "renameat";
    struct syscall_args call;
    read_syscall_args(&call);
    rename_print(args, name, FILE_PATH(call.arg[1]), FILE_PATH(call.arg[3]), 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat2)
{
    char name[] = "renameat2";
    struct syscall_args call;
    read_syscall_args(&call);
    rename_print(args, name, FILE_PATH(call.arg[1]), FILE_PATH(call.arg[3]), (__u32)call.arg[4], args->ret);
    return 0;
}
#endif

/* ---- unlink(path), rmdir(path), unlinkat(dfd, path, flag) ------------- */
#if defined(HIDS_WANT_UNLINK) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_unlink)
{
    char name[] = "unlink";
    struct syscall_args call;
    read_syscall_args(&call);
    unlink_print(args, name, FILE_PATH(call.arg[0]), 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_rmdir)
{
    char name[] = "rmdir";
    struct syscall_args call;
    read_syscall_args(&call);
    unlink_print(args, name, FILE_PATH(call.arg[0]), 1, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat)
{
    char name[] = "unlinkat";
    struct syscall_args call;
    read_syscall_args(&call);
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
    __u64 flags = syscall_reg(syscall_regs(), SDXFER_MEMBER(pt_regs, dx));
    if (!FILE_MAY_CREATE(flags))
        return 0;
    char name[] = "openat";
    struct syscall_args call;
    read_syscall_args(&call);
    file_create_print(args, name, FILE_PATH(call.arg[1]), (__s32)flags, (__u16)call.arg[3], args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    __u64 flags = syscall_reg(syscall_regs(), SDXFER_MEMBER(pt_regs, si));
    if (!FILE_MAY_CREATE(flags))
        return 0;
    char name[] = "open";
    struct syscall_args call;
    read_syscall_args(&call);
    file_create_print(args, name, FILE_PATH(call.arg[0]), (__s32)flags, (__u16)call.arg[2], args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
    char name[] = "creat";
    struct syscall_args call;
    read_syscall_args(&call);
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
    struct syscall_args call;
    read_syscall_args(&call);
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
