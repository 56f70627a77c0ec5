/*
 * A part of exec.bpf.h: where and how the new program runs: the file run
 * (inode, device, memory file, deleted), the working directory, the
 * controlling terminal, fds 0-2 as readlink /proc/PID/fd/N shows them and
 * the first connected inet socket among them (a reverse shell's shape).
 * bench/exec_without/ has a stand-in of the same name without it.
 */
#ifndef SDXFER_BPF_EXEC_PART_CONTEXT_H
#define SDXFER_BPF_EXEC_PART_CONTEXT_H

#include "sockets.h"

#define CONTEXT_MNT_INTERNAL 0x4000  /* vfsmount.mnt_flags of a kernel-internal mount (memfd's) */
#define CONTEXT_TTY_MAX SDXFER_MAX_EXEC_TTY  /* tty_struct.name is 64 bytes too */

/* fds 0-2's text: a record has room for SDXFER_MAX_EXEC_STDIN bytes of each;
 * a longer one is flagged, without text, not cut to what may be another
 * file's path. Kept with its NUL and the byte past it that sdxfer_put_str
 * reads (max + 2). */
#define CONTEXT_STDIO_KEPT (SDXFER_MAX_EXEC_STDIN + 2)
_Static_assert(SDXFER_MAX_EXEC_STDOUT == SDXFER_MAX_EXEC_STDIN && SDXFER_MAX_EXEC_STDERR == SDXFER_MAX_EXEC_STDIN,
               "fds 0-2 keep the same length");

/* In a scratch slot of its own: the paths are walked into it and the packer
 * reads them from there. fds 0-2 are walked one after another into `walk`,
 * each text copied out of it: a walk needs room for any path. */
struct exec_context {
    struct sdxfer_path_buf cwd;
    struct sdxfer_path_buf walk;
    char stdio[3][CONTEXT_STDIO_KEPT];
    const char *cwd_text;
    const char *stdio_text[3];
    const char *tty_text;
    __u64 stdio_files[3];  /* fds 0-2's struct file, 0 for a closed one */
    struct sdxfer_sockaddr stdio_remote;
    struct sdxfer_sockaddr stdio_local;
    __u64 exe_ino;
    __u32 exe_dev;
    __u8 exe_memfd;
    __u8 exe_deleted;
    char tty[CONTEXT_TTY_MAX + 8];
};
_Static_assert(sizeof(struct exec_context) <= SDXFER_SLOT_SIZE, "the exec context must fit a scratch slot");

/* A kernel dev_t (major << 20 | minor) as stat(2)'s st_dev encodes it. */
static __always_inline __u32 user_dev(__u32 dev)
{
    __u32 major = dev >> 20, minor = dev & 0xfffff;
    return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

/* The file the new image runs from: mm->exe_file, set by the time the exec
 * tracepoint fires. A memory file lives on a kernel-internal mount under the
 * name "memfd:NAME". */
static __always_inline void read_exe_file(struct exec_context *context, const char *task)
{
    const char *mm = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, mm));
    const char *file = mm ? (const char *)sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, exe_file)) : NULL;
    if (!file)
        return;
    const char *inode = (const char *)sdxfer_member_u64(file, SDXFER_MEMBER(file, f_inode));
    const char *sb = (const char *)sdxfer_member_u64(inode, SDXFER_MEMBER(inode, i_sb));
    context->exe_ino = sdxfer_member_u64(inode, SDXFER_MEMBER(inode, i_ino));
    context->exe_dev = user_dev(sdxfer_member_u32(sb, SDXFER_MEMBER(super_block, s_dev)));
    context->exe_deleted = sdxfer_member_u32(inode, SDXFER_MEMBER(inode, __i_nlink)) == 0;

    const char *path = file + SDXFER_MEMBER(file, f_path);
    const char *mnt = (const char *)sdxfer_member_u64(path, SDXFER_MEMBER(path, mnt));
    const char *dentry = (const char *)sdxfer_member_u64(path, SDXFER_MEMBER(path, dentry));
    const char *name = (const char *)sdxfer_member_u64(dentry, SDXFER_MEMBER(dentry, d_name) + SDXFER_MEMBER(qstr, name));
    char prefix[6] = {};
    bpf_probe_read_kernel(prefix, sizeof(prefix), name);
    context->exe_memfd = (sdxfer_member_u32(mnt, SDXFER_MEMBER(vfsmount, mnt_flags)) & CONTEXT_MNT_INTERNAL) &&
                         prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
                         prefix[4] == 'd' && prefix[5] == ':';
}

/* The controlling terminal's name as ps shows it: the kernel names a pty
 * slave "pts3", ps "pts/3". NULL without a terminal. */
static __always_inline const char *read_tty(struct exec_context *context, const char *task)
{
    const char *signal = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, signal));
    const char *tty = signal ? (const char *)sdxfer_member_u64(signal, SDXFER_MEMBER(signal_struct, tty)) : NULL;
    if (!tty)
        return NULL;
    const char *name = tty + SDXFER_MEMBER(tty_struct, name);
    char head[4] = {};
    bpf_probe_read_kernel(head, sizeof(head), name);
    if (head[0] == 'p' && head[1] == 't' && head[2] == 's' && head[3] >= '0' && head[3] <= '9') {
        context->tty[0] = 'p';
        context->tty[1] = 't';
        context->tty[2] = 's';
        context->tty[3] = '/';
        if (bpf_probe_read_kernel_str(context->tty + 4, CONTEXT_TTY_MAX - 3, name + 3) <= 0)
            return SDXFER_UNKNOWN;
    } else if (bpf_probe_read_kernel_str(context->tty, CONTEXT_TTY_MAX, name) <= 0) {
        return SDXFER_UNKNOWN;
    }
    return context->tty;
}

/* A file's text as readlink /proc/PID/fd/N shows it, kept in `kept` with
 * its NUL; NULL for a closed fd, SDXFER_UNKNOWN for one too long to keep. */
static __always_inline const char *read_stdio_file(struct exec_context *context, const void *file, char *kept)
{
    const char *text = sdxfer_file_path_text(file, &context->walk);
    if (!text || (const void *)text == SDXFER_UNKNOWN)
        return text;
    if (context->walk.len > SDXFER_MAX_EXEC_STDIN)
        return SDXFER_UNKNOWN;
    __u32 size = context->walk.len + 1;
    sdxfer_bound(size, CONTEXT_STDIO_KEPT);
    bpf_probe_read_kernel(kept, size, text);
    return kept;
}

/* fds 0-2's files (task->files->fdt->fd[0..2]) in one read. A table has
 * room for 64 fds at least (NR_OPEN_DEFAULT); max_fds is checked all the same. */
static __always_inline void read_stdio_files(struct exec_context *context)
{
    const char *fdt = sdxfer_current_fdt();

    if (!fdt || sdxfer_member_u32(fdt, SDXFER_MEMBER(fdtable, max_fds)) < 3 ||
        bpf_probe_read_kernel(context->stdio_files, sizeof(context->stdio_files),
                              (const void *)sdxfer_member_u64(fdt, SDXFER_MEMBER(fdtable, fd))) < 0)
        __builtin_memset(context->stdio_files, 0, sizeof(context->stdio_files));
}

/* fds 0-2 of the current task (one walk for an fd that is the one before it
 * again: a terminal, 2>&1); the first that is a connected inet socket gives
 * the endpoints. Only a file of sockfs, as its walk tells, is looked at as
 * a socket: two reads less for each other fd. */
static __always_inline void read_stdio(struct exec_context *context)
{
    const void *previous = NULL;
    int found = 0;

    read_stdio_files(context);
#pragma unroll
    for (int fd = 0; fd < 3; fd++) {
        const void *file = (const void *)context->stdio_files[fd];
        if (fd > 0 && file && file == previous) {
            context->stdio_text[fd] = context->stdio_text[fd - 1];
            continue;
        }
        previous = file;
        context->stdio_text[fd] = read_stdio_file(context, file, context->stdio[fd]);
        if (found || context->walk.magic != SDXFER_SOCKFS_MAGIC)
            continue;
        const char *sk = sock_of_file((const char *)file);
        if (is_inet(sock_family(sk)) && sock_connected(sk)) {
            sock_peer(sk, &context->stdio_remote);
            sock_local(sk, &context->stdio_local);
            found = 1;
        }
    }
}

/* Fills the context of the current task; exe_file only for a successful
 * exec (a failed one ran no file: its fields stay zero). */
static __always_inline void read_exec_context(struct exec_context *context, int exec_succeeded)
{
    const char *task = sdxfer_task();
    __builtin_memset(&context->stdio_remote, 0, sizeof(context->stdio_remote));
    __builtin_memset(&context->stdio_local, 0, sizeof(context->stdio_local));
    context->exe_ino = 0;
    context->exe_dev = 0;
    context->exe_memfd = 0;
    context->exe_deleted = 0;
    if (exec_succeeded)
        read_exe_file(context, task);
    context->cwd_text = sdxfer_path_text(sdxfer_current_cwd(), &context->cwd);
    context->tty_text = read_tty(context, task);
    read_stdio(context);
}

#endif /* SDXFER_BPF_EXEC_PART_CONTEXT_H */
