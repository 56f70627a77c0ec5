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
 * flagged by the packer. Each path field has a <field>_abs counterpart: the
 * path joined to its dirfd's (or the cwd's) path as the kernel names it now,
 * by sdxfer_path.h's walk (see file_abs below). Only 64-bit syscalls are
 * seen: the kernel does not trace compat (ia32) syscalls.
 *
 * Each event's programs are compiled unless HIDS_SELECTED is defined without HIDS_WANT_<EVENT>.
 */
#ifndef SDXFER_BPF_FILE_H
#define SDXFER_BPF_FILE_H

#include "helpers.h"

/* UAPI values (x86-64), spelled here so no kernel header is needed. */
#define FILE_AT_FDCWD (-100)
#define FILE_AT_REMOVEDIR 0x200
#define FILE_AT_EMPTY_PATH 0x1000
#define FILE_S_IFDIR 0040000
#define FILE_O_WRONLY 01
#define FILE_O_CREAT 0100
#define FILE_O_TRUNC 01000
#define FILE_O_TMPFILE_BIT 020000000 /* __O_TMPFILE; O_TMPFILE adds O_DIRECTORY */

#define FILE_PATH(x) ((const char *)(x))

/* A path argument made absolute (the _abs fields), in a scratch slot: the
 * walk's text, or the argument itself when it is absolute. The argument is
 * read from the caller once, into `arg`: the path field and its _abs
 * counterpart both take that copy (kernel memory, cheaper to read than the
 * caller's), so they are of the same moment. One byte more than a field
 * keeps says that a longer path was cut (the field flags it). */
struct file_abs {
    struct sdxfer_path_buf walk;
    char arg[SDXFER_PATH_MAX + 2];
    __s64 arg_size;  /* bytes read into arg with the NUL; 0: none (no argument, or not read) */
    __u64 arg_text;  /* the path field's value: arg, or the caller's address */
    __u64 path;      /* the argument */
    __u64 at;        /* the struct path walked */
    __u64 relative;  /* the argument is relative: joined to the walk's text */
    __u64 given;     /* the argument is absolute: the outcome */
    __s64 fd;
};

struct file_abs_area {
    struct file_abs first, second;
};
_Static_assert(sizeof(struct file_abs_area) <= SDXFER_SLOT_SIZE, "two paths' walks and copies must fit a scratch slot");

/* Stores a value in the slot and loads it back: to the verifier a new
 * unknown value, so what file_abs_walk's branches learn of it does not
 * refine the caller's copy (which goes on to the packer), and every case
 * reaches the walk in the same state: the walk is checked once. */
#define FILE_ABS_KEEP(abs, member, value) ((abs)->member = (value), *(volatile __typeof__((abs)->member) *)&(abs)->member)

/* Fills abs for a path argument relative to fd (a dirfd, or AT_FDCWD): the
 * argument as given when absolute; else fd's (the cwd's) path joined with
 * it, . and .. as given. Without an argument (path NULL), fd's own file.
 * Nothing for an argument that cannot be read, a bad fd or, for a relative
 * path, an fd that is no directory (ENOTDIR), nor for an empty one, which
 * names no file (ENOENT) unless the call takes it for fd's own
 * (AT_EMPTY_PATH: empty_is_fd). At sys_exit the dirfd still names the
 * directory the call used, unless another thread closed it meanwhile. */
static __always_inline void file_abs_walk(struct file_abs *abs, __s32 fd_arg, const char *path_arg, int empty_is_fd)
{
    const char *path = (const char *)FILE_ABS_KEEP(abs, path, (__u64)path_arg);
    __s32 fd = FILE_ABS_KEEP(abs, fd, fd_arg);
    long size = 0;

    abs->at = abs->relative = abs->given = 0;
    if (path)
        size = bpf_probe_read_user_str(abs->arg, sizeof(abs->arg), path);
    abs->arg_size = size > 0 ? size : 0;
    if (!path)
        abs->at = (__u64)sdxfer_file_path(sdxfer_current_file(fd));
    else if (size <= 0)
        ;  /* no path: nothing */
    else if (abs->arg[0] == '/')
        abs->given = 1;
    else if (size == 1 && !empty_is_fd)
        ;  /* an empty path: nothing */
    else {
        const char *dir = fd == FILE_AT_FDCWD ? NULL : (const char *)sdxfer_current_file(fd);
        /* a dirfd that is no directory: the call failed (ENOTDIR) before a path existed */
        if (fd == FILE_AT_FDCWD || size == 1 || file_type(dir) == FILE_S_IFDIR) {
            abs->at = (__u64)(fd == FILE_AT_FDCWD ? sdxfer_current_cwd() : sdxfer_file_path(dir));
            abs->relative = 1;
        }
    }
    sdxfer_path_walk((const void *)*(volatile __u64 *)&abs->at, &abs->walk);
    if (abs->relative)
        sdxfer_path_append_copy(&abs->walk, abs->arg, *(volatile __s64 *)&abs->arg_size);
    if (abs->given)
        sdxfer_path_given(&abs->walk, abs->arg);
}

/* The _abs field's value: the walk's text or the argument's copy (kernel
 * addresses, read as such). No slot (abs NULL): flagged. */
static __always_inline const char *file_abs_text(struct file_abs *abs)
{
    return abs ? sdxfer_path_result(&abs->walk) : SDXFER_UNKNOWN;
}

/* The path field's value: the argument's copy where file_abs_walk read it,
 * else the caller's address (no slot, or an argument it did not read). It
 * passes through map memory, as sdxfer_path_result's does. */
static __always_inline const char *file_abs_arg(struct file_abs *abs, const char *path)
{
    if (!abs)
        return path;
    abs->arg_text = abs->arg_size > 0 ? (__u64)abs->arg : (__u64)path;
    return (const char *)*(volatile __u64 *)&abs->arg_text;
}

/* ---- mount(source, target, fstype, flags, data) ---------------------- */
#if defined(HIDS_WANT_MOUNT) || !defined(HIDS_SELECTED)
TRACEPOINT_PROBE(syscalls, sys_exit_mount)
{
    if (!sdxfer_wanted())
        return 0;
    struct syscall_args call;
    read_syscall_args(&call);
    SDXFER_LOCAL(struct file_abs_area, abs);
    if (abs) {
        file_abs_walk(&abs->first, FILE_AT_FDCWD, FILE_PATH(call.arg[0]), 0);
        file_abs_walk(&abs->second, FILE_AT_FDCWD, FILE_PATH(call.arg[1]), 0);
    }
    mount_print(args, file_abs_arg(abs ? &abs->first : NULL, FILE_PATH(call.arg[0])),
                file_abs_arg(abs ? &abs->second : NULL, FILE_PATH(call.arg[1])), FILE_PATH(call.arg[2]), call.arg[3],
                args->ret, file_abs_text(abs ? &abs->first : NULL), file_abs_text(abs ? &abs->second : NULL));
    return 0;
}
#endif

/* ---- chmod(path, mode), fchmod(fd, mode), fchmodat(dfd, path, mode),
 *      fchmodat2(dfd, path, mode, flags) --------------------------------- */
#if defined(HIDS_WANT_CHMOD) || !defined(HIDS_SELECTED)
/* mode is umode_t in every one of them: the kernel reads 16 bits. */
static __always_inline int file_report_chmod(void *ctx, const char *syscall, __s32 fd, __u64 path, __u64 mode,
                                             long ret, __u64 flags)
{
    if (!sdxfer_wanted())
        return 0;
    SDXFER_LOCAL(struct file_abs, abs);
    if (abs)  /* fchmod (no path), and fchmodat2's empty path with AT_EMPTY_PATH: the fd's own file */
        file_abs_walk(abs, fd, FILE_PATH(path), (flags & FILE_AT_EMPTY_PATH) != 0);
    chmod_print(ctx, syscall, fd, file_abs_arg(abs, FILE_PATH(path)), (__u16)mode, ret, file_abs_text(abs));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_chmod)
{
    char name[] = "chmod";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, FILE_AT_FDCWD, call.arg[0], call.arg[1], args->ret, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmod)
{
    char name[] = "fchmod";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], 0, call.arg[1], args->ret, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat)
{
    char name[] = "fchmodat";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], call.arg[1], call.arg[2], args->ret, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat2)
{
    char name[] = "fchmodat2";
    struct syscall_args call;
    read_syscall_args(&call);
    return file_report_chmod(args, name, (__s32)call.arg[0], call.arg[1], call.arg[2], args->ret, call.arg[3]);
}
#endif

/* ---- rename(old, new), renameat(olddfd, old, newdfd, new),
 *      renameat2(olddfd, old, newdfd, new, flags) ------------------------ */
#if defined(HIDS_WANT_RENAME) || !defined(HIDS_SELECTED)
static __always_inline void file_report_rename(void *ctx, const char *syscall, __s32 old_dirfd, __u64 old_path,
                                              __s32 new_dirfd, __u64 new_path, __u32 flags, long ret)
{
    if (!sdxfer_wanted())
        return;
    SDXFER_LOCAL(struct file_abs_area, abs);
    if (abs) {
        file_abs_walk(&abs->first, old_dirfd, FILE_PATH(old_path), 0);
        file_abs_walk(&abs->second, new_dirfd, FILE_PATH(new_path), 0);
    }
    rename_print(ctx, syscall, file_abs_arg(abs ? &abs->first : NULL, FILE_PATH(old_path)),
                 file_abs_arg(abs ? &abs->second : NULL, FILE_PATH(new_path)), flags, ret,
                 file_abs_text(abs ? &abs->first : NULL), file_abs_text(abs ? &abs->second : NULL));
}

TRACEPOINT_PROBE(syscalls, sys_exit_rename)
{
    char name[] = "rename";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_rename(args, name, FILE_AT_FDCWD, call.arg[0], FILE_AT_FDCWD, call.arg[1], 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat)
{
    char name[] = "renameat";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_rename(args, name, (__s32)call.arg[0], call.arg[1], (__s32)call.arg[2], call.arg[3], 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_renameat2)
{
    char name[] = "renameat2";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_rename(args, name, (__s32)call.arg[0], call.arg[1], (__s32)call.arg[2], call.arg[3],
                       (__u32)call.arg[4], args->ret);
    return 0;
}
#endif

/* ---- unlink(path), rmdir(path), unlinkat(dfd, path, flag) ------------- */
#if defined(HIDS_WANT_UNLINK) || !defined(HIDS_SELECTED)
static __always_inline void file_report_unlink(void *ctx, const char *syscall, __s32 dirfd, __u64 path, __u8 dir,
                                              long ret)
{
    if (!sdxfer_wanted())
        return;
    SDXFER_LOCAL(struct file_abs, abs);
    if (abs)
        file_abs_walk(abs, dirfd, FILE_PATH(path), 0);
    unlink_print(ctx, syscall, file_abs_arg(abs, FILE_PATH(path)), dir, ret, file_abs_text(abs));
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlink)
{
    char name[] = "unlink";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_unlink(args, name, FILE_AT_FDCWD, call.arg[0], 0, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_rmdir)
{
    char name[] = "rmdir";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_unlink(args, name, FILE_AT_FDCWD, call.arg[0], 1, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat)
{
    char name[] = "unlinkat";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_unlink(args, name, (__s32)call.arg[0], call.arg[1], (call.arg[2] & FILE_AT_REMOVEDIR) != 0, args->ret);
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

/* path_abs: the opened file's own path once the call succeeded (ret is its
 * fd), else the argument made absolute. */
static __always_inline void file_report_create(void *ctx, const char *syscall, __s32 dirfd, __u64 path, __s32 flags,
                                               __u32 mode, long ret)
{
    if (!sdxfer_wanted())
        return;
    SDXFER_LOCAL(struct file_abs, abs);
    if (abs)
        file_abs_walk(abs, ret >= 0 ? ret : dirfd, ret >= 0 ? NULL : FILE_PATH(path), 0);
    file_create_print(ctx, syscall, file_abs_arg(abs, FILE_PATH(path)), flags, mode, ret, file_abs_text(abs));
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    __u64 flags = syscall_reg(syscall_regs(), SDXFER_MEMBER(pt_regs, dx));
    if (!FILE_MAY_CREATE(flags))
        return 0;
    char name[] = "openat";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_create(args, name, (__s32)call.arg[0], call.arg[1], (__s32)flags, (__u16)call.arg[3], args->ret);
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
    file_report_create(args, name, FILE_AT_FDCWD, call.arg[0], (__s32)flags, (__u16)call.arg[2], args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
    char name[] = "creat";
    struct syscall_args call;
    read_syscall_args(&call);
    file_report_create(args, name, FILE_AT_FDCWD, call.arg[0], FILE_O_CREAT | FILE_O_WRONLY | FILE_O_TRUNC,
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
    file_report_create(args, name, (__s32)call.arg[0], call.arg[1], (__s32)how.flags, (__u32)how.mode, args->ret);
    return 0;
}
#endif

#endif /* SDXFER_BPF_FILE_H */
