/*
 * Kernel path walks: the absolute path of a struct path, of a file, or of
 * the file behind a task's fd, as d_path (and so readlink /proc/PID/fd/N)
 * shows it. A part of sdxfer_runtime.h, which includes it (BPF builds only).
 *
 *     SDXFER_LOCAL(struct sdxfer_path_buf, buf);
 *     const char *text = sdxfer_file_path_text(sdxfer_current_file(fd), buf);
 *
 * gives the text inside buf (a str field takes it), NULL where there is no
 * file, or SDXFER_UNKNOWN (sdxfer_put_str flags the field) where the path
 * cannot be told within the bounds: more than SDXFER_PATH_MAX bytes, more
 * than SDXFER_PATH_DEPTH components, more than SDXFER_PATH_DEPTH +
 * SDXFER_PATH_MOUNTS steps up (a component, a mount crossed or the stop at
 * the root each), a read that failed, or a pseudo file of a kind not named
 * here. A path that does not fit is never cut to a shorter one.
 *
 * The walk is d_path's (fs/d_path.c): from the dentry up through d_parent;
 * at a mount's root, on to the mountpoint in the parent mount (struct
 * mount: mnt_parent, mnt_mountpoint); it stops at the walking task's root
 * (fs->root: a chrooted task sees paths from its root) or at a mount with
 * no parent (the namespace's root, or a detached mount: the path from its
 * root). An unlinked dentry gets " (deleted)". Files with a d_dname (pipes,
 * sockets, anonymous inodes, memfds) get the kernel's names for them, told
 * by the superblock's magic: pipe:[INO], socket:[INO], anon_inode:NAME
 * (anon_inode:[eventfd], ...), anon_inode:[pidfd], and /NAME (deleted) for
 * files made by alloc_file_pseudo on tmpfs, hugetlbfs or secretmem
 * (/memfd:NAME (deleted)).
 *
 * Bounds: 4096 bytes, 64 components, 80 steps (components and mounts
 * crossed up to 79: 15 mounts at 64 components, more on a shorter path):
 * the deepest paths seen in practice fit, and under BCC, where the verifier
 * walks each loop step by step, a walk costs about 20k of its 1M
 * instructions (CO-RE: bpf_loop, a few thousand).
 *
 * The components' names are collected leaf first into a small array, then
 * copied root first, each at `len & (SDXFER_PATH_MAX - 1)`: forward writes
 * at an offset the verifier can bound. Both loops are SDXFER_LOOP steps.
 * A short name lies inside its dentry (d_shortname), in the bytes the walk
 * reads of each dentry anyway: a CO-RE build keeps it from there and copies
 * it by stores, and reads only a longer name again, a helper call of its own
 * (a BCC build reads every name again).
 * A rename racing the walk: a dentry caught mid-rename (its d_seq odd when
 * its bytes are read) makes the walk unknown, so a name half rewritten is
 * not shown. A rename that starts within the few nanoseconds between the
 * read of d_seq and of the name, or (BCC) before a name is read again, is
 * not seen: the kernel's own d_path retries under rename_lock, which a
 * probe cannot read.
 * A walk leaves its outcome in the buffer (sdxfer_path_walk, then
 * sdxfer_path_result): see sdxfer_path_walk for why.
 */
#ifndef SDXFER_PATH_H
#define SDXFER_PATH_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_path.h"
#endif

#ifndef SDXFER_HOST

#define SDXFER_PATH_MAX 4096    /* bytes of text, NUL excluded (a power of 2) */
#define SDXFER_PATH_DEPTH 64    /* components (a power of 2) */
#define SDXFER_PATH_MOUNTS 16   /* mount points crossed: steps beyond the components' */
#define SDXFER_PATH_NAME_SIZE 256  /* a component: NAME_MAX bytes and a NUL */
#define SDXFER_PATH_DIGITS 19      /* of a number below 2^63 */
#define SDXFER_PATH_SHORT_WORDS 5  /* a name kept from its dentry: up to 39 bytes and a NUL (DNAME_INLINE_LEN) */

/* Superblock magics of the files d_path names by d_dname (uapi/linux/magic.h). */
#define SDXFER_PIPEFS_MAGIC 0x50495045
#define SDXFER_SOCKFS_MAGIC 0x534F434B
#define SDXFER_ANON_INODE_FS_MAGIC 0x09041934
#define SDXFER_PIDFS_MAGIC 0x50494446
#define SDXFER_TMPFS_MAGIC 0x01021994
#define SDXFER_HUGETLBFS_MAGIC 0x958458f6
#define SDXFER_SECRETMEM_MAGIC 0x5345434d

/* A walk's state, and then its outcome. */
enum sdxfer_path_walk { SDXFER_PATH_NONE, SDXFER_PATH_WALKING, SDXFER_PATH_DONE, SDXFER_PATH_FAILED, SDXFER_PATH_GIVEN };

/* Members of a kernel struct that lie close together, read in one go (one
 * helper call instead of one each): the `size` bytes (16 to 96) from `base`
 * on, each member then taken from there where it lies inside (as it has in
 * every kernel for a decade), else read on its own. Offsets are constants
 * at load, so the verifier keeps one of the two ways. */
#define SDXFER_WINDOW_WORDS 16  /* a power of 2, above the largest window's 12 words */
struct sdxfer_window {
    __u64 word[SDXFER_WINDOW_WORDS];
};

/* A walk's text and state, in map memory (a scratch slot: SDXFER_LOCAL). */
struct sdxfer_path_buf {
    /* twice the bound: sdxfer_path_append_user reads up to SDXFER_PATH_MAX + 1
     * bytes at any offset up to SDXFER_PATH_MAX - 1 */
    char text[2 * SDXFER_PATH_MAX];
    __u64 names[SDXFER_PATH_DEPTH];     /* the components' names (kernel addresses), leaf first */
    __u64 short_names[SDXFER_PATH_DEPTH][SDXFER_PATH_SHORT_WORDS];  /* a short name's bytes (CO-RE) */
    __u32 short_len[SDXFER_PATH_DEPTH]; /* its length; 0: read the name from names[] */
    __u64 dentry;                       /* where the walk is */
    __u64 window_dentry;                /* the dentry whose bytes `window` holds */
    __u64 mount;                        /* its struct mount */
    __u64 mnt_parent, mnt_mountpoint, mnt_root;  /* that mount's */
    __u64 root_dentry, root_mount;      /* the walking task's root */
    __u64 result;                       /* sdxfer_path_result's */
    __u64 magic;                        /* a file named by d_dname: its superblock's magic; else 0 */
    __u32 depth;                        /* names collected */
    __u32 renaming;                     /* a dentry was seen mid-rename (d_seq odd) */
    __u32 len;                          /* bytes of text */
    __u32 walk;                         /* enum sdxfer_path_walk */
    char digits[SDXFER_PATH_DIGITS];    /* a number's, right-aligned */
    struct sdxfer_window window;        /* members read in one go (a dentry's, a struct path's):
                                         * off the 512-byte stack, which a program inlining many
                                         * walks (packers) would fill */
    struct sdxfer_window mount_window;  /* a mount's */
};

/* The text's end after a walk or append; the offset the verifier can bound. */
static __always_inline __u32 sdxfer_path_at(__u32 len)
{
    return len & (SDXFER_PATH_MAX - 1);
}


static __always_inline void sdxfer_window_read(struct sdxfer_window *window, const char *object, __u32 base,
                                               __u32 size)
{
    if (bpf_probe_read_kernel(window, size, object + base) < 0)
        __builtin_memset(window, 0, sizeof(*window));
}

static __always_inline __u64 sdxfer_window_u64(const struct sdxfer_window *window, const char *object, __u32 base,
                                               __u32 size, __u32 offset)
{
    __u32 at = offset - base;

    if (offset >= base && at + 8 <= size && !(at & 7))
        return window->word[(at / 8) & (SDXFER_WINDOW_WORDS - 1)];
    return sdxfer_kernel_u64(object + offset);
}

/* A struct path, { mnt, dentry }. */
#define SDXFER_PATH_WINDOW 0, 16
/* A dentry's window: d_seq (and d_flags before it), d_hash.pprev (NULL:
 * unhashed), d_parent, d_name, d_inode, the short name's bytes, d_op, d_sb. */
#define SDXFER_DENTRY_BASE (SDXFER_MEMBER(dentry, d_seq) & ~7u)
#define SDXFER_DENTRY_SIZE 112
#define SDXFER_DENTRY_HASHED (SDXFER_MEMBER(dentry, d_hash) + SDXFER_MEMBER(hlist_bl_node, pprev))
#define SDXFER_DENTRY_SEQ SDXFER_MEMBER(dentry, d_seq)
#define SDXFER_DENTRY_WINDOW SDXFER_DENTRY_BASE, SDXFER_DENTRY_SIZE
#define SDXFER_DENTRY_PARENT SDXFER_MEMBER(dentry, d_parent)
#define SDXFER_DENTRY_NAME (SDXFER_MEMBER(dentry, d_name) + SDXFER_MEMBER(qstr, name))
/* qstr.hash_len: the length in its upper 32 bits, whatever the byte order */
#define SDXFER_DENTRY_HASH_LEN (SDXFER_MEMBER(dentry, d_name) + SDXFER_MEMBER(qstr, hash_len))
/* A mount's window: mnt_parent, mnt_mountpoint, mnt.mnt_root. */
#define SDXFER_MOUNT_WINDOW SDXFER_MEMBER(mount, mnt_parent), 32
#define SDXFER_MOUNT_ROOT (SDXFER_MEMBER(mount, mnt) + SDXFER_MEMBER(vfsmount, mnt_root))

/* The walk moves into a mount: what crossing its root takes. */
static __always_inline void sdxfer_path_enter(struct sdxfer_path_buf *buf, const char *mount)
{
    struct sdxfer_window *window = &buf->mount_window;

    sdxfer_window_read(window, mount, SDXFER_MOUNT_WINDOW);
    buf->mount = (__u64)mount;
    buf->mnt_parent = sdxfer_window_u64(window, mount, SDXFER_MOUNT_WINDOW, SDXFER_MEMBER(mount, mnt_parent));
    buf->mnt_mountpoint = sdxfer_window_u64(window, mount, SDXFER_MOUNT_WINDOW, SDXFER_MEMBER(mount, mnt_mountpoint));
    buf->mnt_root = sdxfer_window_u64(window, mount, SDXFER_MOUNT_WINDOW, SDXFER_MOUNT_ROOT);
}

/* Reads a dentry's window, unless it holds that dentry already (CO-RE: under
 * BCC, the branch at every loop step would take its verifier past 1M
 * instructions). */
static __always_inline void sdxfer_dentry_window(struct sdxfer_path_buf *buf, const char *dentry)
{
#ifdef SDXFER_CORE
    if (buf->window_dentry == (__u64)dentry)
        return;
#endif
    sdxfer_window_read(&buf->window, dentry, SDXFER_DENTRY_WINDOW);
    buf->window_dentry = (__u64)dentry;
}

/* Collects the name of the dentry in the window as the depth-th component:
 * its address, and its bytes when they lie inside the window (a short
 * name, NUL included). */
static __always_inline void sdxfer_path_collect(struct sdxfer_path_buf *buf, const char *dentry, __u32 depth)
{
    const struct sdxfer_window *window = &buf->window;
    __u64 name = sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_NAME);
    __u64 seq = sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_SEQ & ~7u) >>
                (8 * (SDXFER_DENTRY_SEQ & 7));  /* little-endian: the sequence's bytes at the bottom */
    __u32 k = depth & (SDXFER_PATH_DEPTH - 1);

    /* an odd d_seq: a rename is rewriting this dentry's name and parent as
     * the window is read (the copy reads d_seq first); the walk then says
     * unknown rather than a name that never was (no branch: under BCC each
     * would multiply the verifier's work on the loop) */
    buf->renaming |= seq & 1;
    buf->names[k] = name;
#ifdef SDXFER_CORE
    /* (not under BCC, whose verifier walks every loop step by step: its
     * exec program would pass the verifier's 1M instructions) */
    __u32 len = sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_HASH_LEN) >> 32;
    __u64 at = name - (__u64)dentry - SDXFER_DENTRY_BASE;  /* the name's offset in the window */

    buf->short_len[k] = 0;
    if (at < SDXFER_DENTRY_SIZE && !(at & 7) && len && len < 8 * SDXFER_PATH_SHORT_WORDS &&
        at + len < SDXFER_DENTRY_SIZE) {
        __u32 word = at / 8;
        __u64 zero_byte = 0;
#pragma unroll
        for (int j = 0; j < SDXFER_PATH_SHORT_WORDS; j++) {
            __u64 bytes = window->word[(word + j) & (SDXFER_WINDOW_WORDS - 1)];
            __s64 left = (__s64)len - 8 * j;  /* the name's bytes in this word (little-endian: the low ones) */
            __u64 past = left >= 8 ? 0 : left <= 0 ? ~0ULL : ~0ULL << (8 * left);
            buf->short_names[k][j] = bytes;
            bytes |= past;
            zero_byte |= (bytes - 0x0101010101010101ULL) & ~bytes & 0x8080808080808080ULL;
        }
        /* a NUL inside the length: a name read while a rename rewrote it,
         * which would cut the whole path short; read again instead */
        if (!zero_byte)
            buf->short_len[k] = len;
    }
#endif
}

/* One step up: to the parent dentry (its name collected), or across a
 * mount's root to its mountpoint; done at the task's root or a mount with
 * no parent. */
static long sdxfer_path_up(__u32 i, void *state)
{
    struct sdxfer_path_buf *buf = *(struct sdxfer_path_buf **)state;
    const char *dentry = (const char *)buf->dentry;
    struct sdxfer_window *window = &buf->window;

    if (buf->dentry == buf->root_dentry && buf->mount == buf->root_mount) {
        buf->walk = SDXFER_PATH_DONE;
        return 1;
    }
    if (buf->dentry == buf->mnt_root) {
        const char *parent = (const char *)buf->mnt_parent;
        if (!parent || buf->mnt_parent == buf->mount) {
            buf->walk = SDXFER_PATH_DONE;
            return 1;
        }
        buf->dentry = buf->mnt_mountpoint;
        sdxfer_path_enter(buf, parent);
        return 0;
    }
    sdxfer_dentry_window(buf, dentry);
    __u64 parent = sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_PARENT);
    __u32 depth = buf->depth;
    /* a dentry that is its own parent below a mount's root has escaped it
     * (d_path shows "/" for it); a deeper path than the array holds does not fit */
    if (!parent || parent == buf->dentry || depth >= SDXFER_PATH_DEPTH) {
        buf->walk = SDXFER_PATH_FAILED;
        return 1;
    }
    sdxfer_path_collect(buf, dentry, depth);
    buf->depth = depth + 1;
    buf->dentry = parent;
    return 0;
}

/* An 8-byte store at any byte offset (the text's components are not
 * aligned): x86-64 and arm64, whose verifier allows it; clang would split a
 * store it cannot prove aligned into bytes. */
static __always_inline void sdxfer_store_u64(char *to, __u64 value)
{
    asm volatile("*(u64 *)(%0 + 0) = %1" : : "r"(to), "r"(value) : "memory");
}

/* Copies the i-th component from the root: '/' and its name (a short one
 * by stores of the bytes kept, with its NUL). */
static long sdxfer_path_down(__u32 i, void *state)
{
    struct sdxfer_path_buf *buf = *(struct sdxfer_path_buf **)state;
    __u32 k = (buf->depth - 1 - i) & (SDXFER_PATH_DEPTH - 1);
    __u32 at = sdxfer_path_at(buf->len);
    long n;

    buf->text[at] = '/';
#ifdef SDXFER_CORE
    __u32 len = buf->short_len[k];
    if (len) {
#pragma unroll
        for (int j = 0; j < SDXFER_PATH_SHORT_WORDS; j++)
            sdxfer_store_u64(buf->text + at + 1 + 8 * j, buf->short_names[k][j]);
        buf->text[(at + 1 + len) & (2 * SDXFER_PATH_MAX - 1)] = '\0';
        n = len + 1;
    } else
#endif
        n = bpf_probe_read_kernel_str(buf->text + at + 1, SDXFER_PATH_NAME_SIZE, (const char *)buf->names[k]);
    if (n <= 1) {
        buf->walk = SDXFER_PATH_FAILED;
        return 1;
    }
    buf->len += n;  /* the '/' and n - 1 bytes of name */
    if (buf->len > SDXFER_PATH_MAX) {
        buf->walk = SDXFER_PATH_FAILED;
        return 1;
    }
    return 0;
}

/* Appends a string literal (size: with its NUL) to buf's text; the copy
 * is stores of constants. */
static __always_inline void sdxfer_path_append(struct sdxfer_path_buf *buf, const char *text, __u32 size)
{
    if (buf->len + size - 1 > SDXFER_PATH_MAX) {
        buf->walk = SDXFER_PATH_FAILED;
        return;
    }
    __builtin_memcpy(buf->text + sdxfer_path_at(buf->len), text, size);
    buf->len += size - 1;
}

/* Nine decimal digits of chunk (below 10^9) into to[0..8]: a quotient by 10
 * as a multiply and a shift (exact for any 32-bit value), not a division,
 * which costs ten times as much. */
static __always_inline void sdxfer_path_nine_digits(char *to, __u32 chunk)
{
#pragma unroll
    for (int i = 8; i >= 0; i--) {
        __u32 quotient = ((__u64)chunk * 0xCCCCCCCDULL) >> 35;
        to[i] = '0' + (chunk - quotient * 10);
        chunk = quotient;
    }
}

/* The decimal digits of value (below 2^63: an inode number), appended.
 * Branch-free: every digit is written right-aligned into `digits` (two
 * divisions split value into chunks of nine digits), their count is a sum
 * of 0/1 terms ((10^k - 1 - value) >> 63 is 1 when value >= 10^k), and one
 * copy takes the significant ones, so the verifier sees one path where a
 * loop that stops at the last digit gave it one per length. */
static __always_inline void sdxfer_path_append_decimal(struct sdxfer_path_buf *buf, __u64 value)
{
    const __u64 billion = 1000000000;
    __u64 count = 1, power = 10;

#pragma unroll
    for (int k = 1; k < SDXFER_PATH_DIGITS; k++) {
        count += (power - 1 - value) >> 63;
        power *= 10;
    }
    __u64 high = value / billion, top = high / billion;
    buf->digits[0] = '0' + top;
    sdxfer_path_nine_digits(buf->digits + 1, high - top * billion);
    sdxfer_path_nine_digits(buf->digits + 10, value - high * billion);
    sdxfer_bound(count, SDXFER_PATH_DIGITS);
    bpf_probe_read_kernel(buf->text + sdxfer_path_at(buf->len), count, buf->digits + SDXFER_PATH_DIGITS - count);
    buf->len += count;
}

/* A file with a d_dname, as d_path names it; its dentry's window read. */
static __always_inline void sdxfer_path_pseudo(const char *dentry, struct sdxfer_path_buf *buf)
{
    const struct sdxfer_window *window = &buf->window;
    const char *sb = (const char *)sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_MEMBER(dentry, d_sb));
    const char *inode =
        (const char *)sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_MEMBER(dentry, d_inode));
    const char *name = (const char *)sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_NAME);
    __u64 magic = sdxfer_kernel_u64(sb + SDXFER_MEMBER(super_block, s_magic));
    long n;

    buf->walk = SDXFER_PATH_DONE;
    buf->magic = magic;
    switch (magic) {
    case SDXFER_PIPEFS_MAGIC:
        sdxfer_path_append(buf, "pipe:[", sizeof("pipe:["));
        break;
    case SDXFER_SOCKFS_MAGIC:
        sdxfer_path_append(buf, "socket:[", sizeof("socket:["));
        break;
    case SDXFER_PIDFS_MAGIC:
        sdxfer_path_append(buf, "anon_inode:[pidfd]", sizeof("anon_inode:[pidfd]"));
        return;
    case SDXFER_ANON_INODE_FS_MAGIC:
        sdxfer_path_append(buf, "anon_inode:", sizeof("anon_inode:"));
        n = bpf_probe_read_kernel_str(buf->text + sizeof("anon_inode:") - 1, SDXFER_PATH_NAME_SIZE, name);
        buf->len += n - 1;
        if (n <= 1)
            buf->walk = SDXFER_PATH_FAILED;
        return;
    case SDXFER_TMPFS_MAGIC:
    case SDXFER_HUGETLBFS_MAGIC:
    case SDXFER_SECRETMEM_MAGIC:
        buf->text[0] = '/';
        n = bpf_probe_read_kernel_str(buf->text + 1, SDXFER_PATH_NAME_SIZE, name);
        buf->len = n;
        if (n <= 1)
            buf->walk = SDXFER_PATH_FAILED;
        sdxfer_path_append(buf, " (deleted)", sizeof(" (deleted)"));
        return;
    default:
        buf->walk = SDXFER_PATH_FAILED;
        return;
    }
    /* pipe:[INO], socket:[INO] */
    sdxfer_path_append_decimal(buf, sdxfer_kernel_u64(inode + SDXFER_MEMBER(inode, i_ino)));
    sdxfer_path_append(buf, "]", sizeof("]"));
}

/* Walks a struct path (kernel address) into buf, as d_path shows it to the
 * current task (see the top of this file); sdxfer_path_result(buf) is the
 * outcome. Every outcome leaves the same registers behind: a probe that
 * walks two paths for one record walks both, then takes both results (a
 * result held across the second walk would have the verifier check that
 * walk once per outcome of the first, under BCC). */
static __always_inline void sdxfer_path_walk(const void *path, struct sdxfer_path_buf *buf)
{
    struct sdxfer_window *window = &buf->window;

    buf->len = 0;
    buf->walk = SDXFER_PATH_NONE;
    buf->magic = 0;
    if (!path)
        return;
    buf->walk = SDXFER_PATH_FAILED;
    sdxfer_window_read(window, path, SDXFER_PATH_WINDOW);
    buf->window_dentry = 0;
    const char *dentry = (const char *)sdxfer_window_u64(window, path, SDXFER_PATH_WINDOW, SDXFER_MEMBER(path, dentry));
    const char *vfsmnt = (const char *)sdxfer_window_u64(window, path, SDXFER_PATH_WINDOW, SDXFER_MEMBER(path, mnt));
    if (!dentry || !vfsmnt)
        return;
    /* the leaf's window, which the walk's first step takes too */
    sdxfer_dentry_window(buf, dentry);
    __u64 parent = sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_PARENT);
    __u64 hashed = sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_DENTRY_HASHED);

    /* d_path's test: a d_dname, unless the dentry is its mount's root */
    const char *ops = (const char *)sdxfer_window_u64(window, dentry, SDXFER_DENTRY_WINDOW, SDXFER_MEMBER(dentry, d_op));
    sdxfer_path_enter(buf, vfsmnt - SDXFER_MEMBER(mount, mnt));
    if (ops && sdxfer_kernel_u64(ops + SDXFER_MEMBER(dentry_operations, d_dname)) &&
        (parent != (__u64)dentry || (__u64)dentry != buf->mnt_root)) {
        sdxfer_path_pseudo(dentry, buf);
        return;
    }

    /* the walking task's root: its fs through the task's BTF pointer, loads
     * and no helper call */
    const char *fs = (const char *)sdxfer_member_u64(sdxfer_task(), SDXFER_MEMBER(task_struct, fs));
    buf->root_dentry = fs ? sdxfer_member_u64(fs, SDXFER_MEMBER(fs_struct, root) + SDXFER_MEMBER(path, dentry)) : 0;
    buf->root_mount = fs ? sdxfer_member_u64(fs, SDXFER_MEMBER(fs_struct, root) + SDXFER_MEMBER(path, mnt)) -
                               SDXFER_MEMBER(mount, mnt)
                         : 0;
    buf->dentry = (__u64)dentry;
    buf->depth = 0;
    buf->renaming = 0;
    buf->walk = SDXFER_PATH_WALKING;
    SDXFER_LOOP(SDXFER_PATH_DEPTH + SDXFER_PATH_MOUNTS, SDXFER_PATH_DEPTH + SDXFER_PATH_MOUNTS,
                sdxfer_path_up, &buf);
    if (buf->walk != SDXFER_PATH_DONE || buf->renaming) {
        buf->walk = SDXFER_PATH_FAILED;  /* too deep, too many mounts, escaped, or renamed meanwhile */
        return;
    }
    SDXFER_LOOP(buf->depth, SDXFER_PATH_DEPTH, sdxfer_path_down, &buf);
    if (!buf->depth) {
        sdxfer_path_append(buf, "/", sizeof("/"));
        return;
    }
    /* d_unlinked: unhashed and not a root */
    if (!hashed && parent != (__u64)dentry)
        sdxfer_path_append(buf, " (deleted)", sizeof(" (deleted)"));
}

/* Makes a path the caller gave, already absolute, buf's outcome: its
 * address, in user memory or in the probe's (a ustr field reads either). */
static __always_inline void sdxfer_path_given(struct sdxfer_path_buf *buf, const char *path)
{
    buf->walk = SDXFER_PATH_GIVEN;
    buf->result = (__u64)path;
}

/* A walk's outcome: the NUL-terminated text inside buf (or the path
 * sdxfer_path_given named), NULL where there was no path, SDXFER_UNKNOWN
 * where it did not fit the bounds or could not be read. It passes through
 * map memory, so every outcome is the same unknown value to the verifier,
 * which checks the code after it once, not once per outcome. */
static __always_inline const char *sdxfer_path_result(struct sdxfer_path_buf *buf)
{
    __u32 walk = buf->walk;

    if (walk == SDXFER_PATH_DONE)
        buf->result = (__u64)buf->text;
    else if (walk != SDXFER_PATH_GIVEN)
        buf->result = walk == SDXFER_PATH_NONE ? 0 : (__u64)SDXFER_UNKNOWN;
    return (const char *)*(volatile __u64 *)&buf->result;
}

/* The path of a struct path: sdxfer_path_walk, then its result. */
static __always_inline const char *sdxfer_path_text(const void *path, struct sdxfer_path_buf *buf)
{
    sdxfer_path_walk(path, buf);
    return sdxfer_path_result(buf);
}

/* A struct file's struct path (&file->f_path), or NULL for no file. */
static __always_inline const void *sdxfer_file_path(const void *file)
{
    return file ? (const char *)file + SDXFER_MEMBER(file, f_path) : NULL;
}

/* Walks a struct file's path; no file: no path. */
static __always_inline void sdxfer_file_path_walk(const void *file, struct sdxfer_path_buf *buf)
{
    sdxfer_path_walk(sdxfer_file_path(file), buf);
}

static __always_inline const char *sdxfer_file_path_text(const void *file, struct sdxfer_path_buf *buf)
{
    sdxfer_file_path_walk(file, buf);
    return sdxfer_path_result(buf);
}

/* fds[fd] of a file table whose fd array is fds, below max_fds; or NULL.
 * The index varies, so the entry is a probe read. */
static __always_inline const void *sdxfer_fd_entry(__u64 fds, __u32 max_fds, int fd)
{
    if (fd < 0 || !fds || (__u32)fd >= max_fds)
        return NULL;
    return (const void *)sdxfer_kernel_u64((const char *)fds + 8 * (__u64)fd);
}

/* A task's struct file for fd (task->files->fdt->fd[fd], fd below
 * max_fds), or NULL. Another thread may close or replace it meanwhile. */
static __always_inline const void *sdxfer_task_file(const void *task, int fd)
{
    const char *files = (const char *)sdxfer_kernel_u64((const char *)task + SDXFER_MEMBER(task_struct, files));
    const char *fdt = (const char *)sdxfer_kernel_u64(files + SDXFER_MEMBER(files_struct, fdt));
    if (!task || !files || !fdt)
        return NULL;
    return sdxfer_fd_entry(sdxfer_kernel_u64(fdt + SDXFER_MEMBER(fdtable, fd)),
                           sdxfer_kernel_u32(fdt + SDXFER_MEMBER(fdtable, max_fds)), fd);
}

/* The current task's fd table (task->files->fdt) through its BTF pointer:
 * loads, not helper calls; NULL without one. */
static __always_inline const char *sdxfer_current_fdt(void)
{
    const char *files = (const char *)sdxfer_member_u64(sdxfer_task(), SDXFER_MEMBER(task_struct, files));
    return files ? (const char *)sdxfer_member_u64(files, SDXFER_MEMBER(files_struct, fdt)) : NULL;
}

/* The current task's struct file for fd, as sdxfer_task_file. */
static __always_inline const void *sdxfer_current_file(int fd)
{
    const char *fdt = sdxfer_current_fdt();
    if (!fdt)
        return NULL;
    return sdxfer_fd_entry(sdxfer_member_u64(fdt, SDXFER_MEMBER(fdtable, fd)),
                           sdxfer_member_u32(fdt, SDXFER_MEMBER(fdtable, max_fds)), fd);
}

/* A task's working directory (&task->fs->pwd, a struct path), or NULL. */
static __always_inline const void *sdxfer_task_cwd(const void *task)
{
    const char *fs = (const char *)sdxfer_kernel_u64((const char *)task + SDXFER_MEMBER(task_struct, fs));
    return fs ? fs + SDXFER_MEMBER(fs_struct, pwd) : NULL;
}

/* The current task's, through its BTF pointer. */
static __always_inline const void *sdxfer_current_cwd(void)
{
    const char *fs = (const char *)sdxfer_member_u64(sdxfer_task(), SDXFER_MEMBER(task_struct, fs));
    return fs ? fs + SDXFER_MEMBER(fs_struct, pwd) : NULL;
}

/* Where a relative path joins a walk's text (a directory's): after a '/'
 * put in place ("DIR/REL"; "/REL" for the root, whose text is the '/'); 0
 * where it cannot (no text, or a full one), the walk then failed. The
 * join's result (sdxfer_path_joined) makes the walk done again. */
static __always_inline __u32 sdxfer_path_join_at(struct sdxfer_path_buf *buf)
{
    __u32 len = buf->len;

    if (buf->walk != SDXFER_PATH_DONE)
        return 0;
    buf->walk = SDXFER_PATH_FAILED;
    if (len > SDXFER_PATH_MAX - 1)
        return 0;
    buf->text[sdxfer_path_at(len)] = '/';
    return len == 1 ? 1 : len + 1;
}

/* A join's outcome, given the size of the relative path put at `at` (with
 * its NUL, as a string read returns it): an empty one names the directory
 * itself; one that ends beyond SDXFER_PATH_MAX bytes, or a failed read,
 * leaves the walk failed. */
static __always_inline void sdxfer_path_joined(struct sdxfer_path_buf *buf, __u32 at, long size)
{
    if (size == 1) {
        buf->text[sdxfer_path_at(buf->len)] = '\0';
        buf->walk = SDXFER_PATH_DONE;
    } else if (size > 1 && at + size - 1 <= SDXFER_PATH_MAX) {
        buf->len = at + size - 1;
        buf->walk = SDXFER_PATH_DONE;
    }
}

/* Joins a relative path in user memory to a walk's text (a directory's):
 * "DIR/REL" ("/REL" for the root, "DIR" for an empty REL), as given (. and
 * .. stay). Fails (SDXFER_UNKNOWN) when the whole does not fit in
 * SDXFER_PATH_MAX bytes or REL cannot be read; a walk without text is left
 * as it was. */
static __always_inline void sdxfer_path_append_user(struct sdxfer_path_buf *buf, const char *rel)
{
    char first = 1;
    long n = -1;

    if (bpf_probe_read_user(&first, 1, rel) == 0 && !first)
        return;  /* empty: the directory itself, whatever its length */
    __u32 at = sdxfer_path_join_at(buf);
    if (!at)
        return;
    if (at < SDXFER_PATH_MAX)  /* after a text of SDXFER_PATH_MAX - 1 bytes nothing fits */
        n = bpf_probe_read_user_str(buf->text + sdxfer_path_at(at), SDXFER_PATH_MAX + 1, rel);
    sdxfer_path_joined(buf, at, n);
}

/* sdxfer_path_append_user for a relative path the probe has read already
 * (into BPF memory): `size` bytes with its NUL, as the string read that
 * took it returned (<= 0: it could not be read). */
static __always_inline void sdxfer_path_append_copy(struct sdxfer_path_buf *buf, const char *rel, long size)
{
    if (size == 1)
        return;  /* empty: the directory itself, whatever its length */
    __u32 at = sdxfer_path_join_at(buf);

    if (!at)
        return;
    if (size > 1 && at + size - 1 <= SDXFER_PATH_MAX) {
        __u32 bytes = size - 1;  /* the NUL is stored apart */
        sdxfer_bound(bytes, SDXFER_PATH_MAX);
        bpf_probe_read_kernel(buf->text + sdxfer_path_at(at), bytes, rel);
        buf->text[(at + bytes) & (2 * SDXFER_PATH_MAX - 1)] = '\0';
    }
    sdxfer_path_joined(buf, at, size);
}

#endif /* !SDXFER_HOST */

#endif /* SDXFER_PATH_H */
