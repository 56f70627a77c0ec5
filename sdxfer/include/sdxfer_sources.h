/*
 * Where common fields come from in a BPF program: the current task, read
 * through offsets from the running kernel's BTF. The generated xfer.h
 * defines SDXFER_SOURCE_<NAME> for each source its schema uses and includes
 * this file (a host build takes its values from sdxfer_host_sources).
 */
#ifndef SDXFER_SOURCES_H
#define SDXFER_SOURCES_H

#define SDXFER_PIDTYPE_PGID 2 /* enum pid_type: PID, TGID, PGID, SID */
#define SDXFER_PIDTYPE_SID 3

#if defined(SDXFER_SOURCE_PPID) || defined(SDXFER_SOURCE_PGID) || defined(SDXFER_SOURCE_SID) || \
    defined(SDXFER_SOURCE_EUID) || defined(SDXFER_SOURCE_EGID) || defined(SDXFER_SOURCE_MNTNS) ||  \
    defined(SDXFER_SOURCE_COMM) || defined(SDXFER_SOURCE_START_NS) || defined(SDXFER_SOURCE_LOGINUID) ||       \
    defined(SDXFER_SOURCE_SESSIONID) || defined(SDXFER_SOURCE_PIDNS) || defined(SDXFER_SOURCE_NODENAME) ||     \
    defined(SDXFER_SOURCE_EXE_PATH)
#define SDXFER_SOURCES_READ_TASK 1
#endif

/* What a record's sources read, fetched once per record: helper calls are
 * opaque to clang, which would call one again for every source that needs it. */
struct sdxfer_current {
    const char *task;
    __u64 pid_tgid;
    __u64 uid_gid;
};

static __always_inline void sdxfer_current_read(struct sdxfer_current *now)
{
#ifdef SDXFER_SOURCES_READ_TASK
    now->task = sdxfer_task();
#endif
#if defined(SDXFER_SOURCE_PID) || defined(SDXFER_SOURCE_TID)
    now->pid_tgid = bpf_get_current_pid_tgid();
#endif
#if defined(SDXFER_SOURCE_UID) || defined(SDXFER_SOURCE_GID)
    now->uid_gid = bpf_get_current_uid_gid();
#endif
}

#if defined(SDXFER_SOURCE_PGID) || defined(SDXFER_SOURCE_SID)
/* task->signal->pids[type], as a pid number of the initial namespace */
static __always_inline __u32 sdxfer_task_pid_of_type(const char *task, __u32 type)
{
    const char *signal = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, signal));
    const char *pid = (const char *)sdxfer_member_u64(signal, SDXFER_MEMBER(signal_struct, pids) + 8 * type);
    return pid ? sdxfer_member_u32(pid, SDXFER_MEMBER(pid, numbers) + SDXFER_MEMBER(upid, nr)) : 0;
}
#endif

#if defined(SDXFER_SOURCE_EUID) || defined(SDXFER_SOURCE_EGID)
static __always_inline const char *sdxfer_task_cred(const char *task)
{
    return (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, cred));
}
#endif

#ifdef SDXFER_SOURCE_PID
static __always_inline __u32 sdxfer_source_pid(const struct sdxfer_current *now)
{
    return now->pid_tgid >> 32;
}
#endif

#ifdef SDXFER_SOURCE_TID
static __always_inline __u32 sdxfer_source_tid(const struct sdxfer_current *now)
{
    return (__u32)now->pid_tgid;
}
#endif

#ifdef SDXFER_SOURCE_PPID
static __always_inline __u32 sdxfer_source_ppid(const struct sdxfer_current *now)
{
    const char *parent = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, real_parent));
    return sdxfer_member_u32(parent, SDXFER_MEMBER(task_struct, tgid));
}
#endif

#ifdef SDXFER_SOURCE_PGID
static __always_inline __u32 sdxfer_source_pgid(const struct sdxfer_current *now)
{
    return sdxfer_task_pid_of_type(now->task, SDXFER_PIDTYPE_PGID);
}
#endif

#ifdef SDXFER_SOURCE_SID
static __always_inline __u32 sdxfer_source_sid(const struct sdxfer_current *now)
{
    return sdxfer_task_pid_of_type(now->task, SDXFER_PIDTYPE_SID);
}
#endif

#ifdef SDXFER_SOURCE_UID
static __always_inline __u32 sdxfer_source_uid(const struct sdxfer_current *now)
{
    return (__u32)now->uid_gid;
}
#endif

#ifdef SDXFER_SOURCE_GID
static __always_inline __u32 sdxfer_source_gid(const struct sdxfer_current *now)
{
    return now->uid_gid >> 32;
}
#endif

#ifdef SDXFER_SOURCE_EUID
static __always_inline __u32 sdxfer_source_euid(const struct sdxfer_current *now)
{
    return sdxfer_member_u32(sdxfer_task_cred(now->task), SDXFER_MEMBER(cred, euid));
}
#endif

#ifdef SDXFER_SOURCE_EGID
static __always_inline __u32 sdxfer_source_egid(const struct sdxfer_current *now)
{
    return sdxfer_member_u32(sdxfer_task_cred(now->task), SDXFER_MEMBER(cred, egid));
}
#endif

#ifdef SDXFER_SOURCE_CGROUP_ID
static __always_inline __u64 sdxfer_source_cgroup_id(const struct sdxfer_current *now)
{
    (void)now;
    return bpf_get_current_cgroup_id();
}
#endif

#ifdef SDXFER_SOURCE_MNTNS
/* sdxfer_task_mntns: sdxfer_filter.h */
static __always_inline __u32 sdxfer_source_mntns(const struct sdxfer_current *now)
{
    return sdxfer_task_mntns(now->task);
}
#endif

#ifdef SDXFER_SOURCE_COMM
#define SDXFER_COMM_SIZE 16  /* TASK_COMM_LEN: the NUL always within */
#define SDXFER_BYTES_01 0x0101010101010101ULL
#define SDXFER_BYTES_80 0x8080808080808080ULL

static __always_inline const char *sdxfer_source_comm(const struct sdxfer_current *now)
{
    return now->task + SDXFER_MEMBER(task_struct, comm);
}

/* Word i of the task's comm, stored at to + 8 * i and counted: `len` grows
 * by its bytes before the first NUL while `open` (no NUL yet) is 1. No
 * branch per byte: a word's first NUL is the lowest bit of the classic
 * zero-byte mask (exact there; only bits above it can be false), and the
 * count of bytes up to it a multiply that sums a one per byte. */
static __always_inline void sdxfer_comm_word(char *to, const char *task, const __u32 i, __u64 *len, __u64 *open)
{
    __u64 word = sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, comm) + 8 * i);
    __u64 zero = (word - SDXFER_BYTES_01) & ~word & SDXFER_BYTES_80;
    __u64 found = (zero | -zero) >> 63;
    __u64 upto = ((((zero & -zero) - 1) & SDXFER_BYTES_01) * SDXFER_BYTES_01) >> 56;  /* NUL's index + 1, or 8 */

    sdxfer_store_u64(to + 8 * i, word);
    *len += *open * (upto - found);
    *open &= 1 - found;
}

/* A packer's comm field, put as sdxfer_put_str would put it: two loads and
 * stores of 8 bytes through the task's BTF pointer where the helper copies
 * byte by byte (a comm without a NUL, which the kernel never leaves, is
 * flagged cut). The bytes the stores carry past the NUL lie past the
 * field's length: the next field or the record's end covers them. A
 * schema's max shorter than the array: sdxfer_put_str, whose room the
 * stores would pass. Called once per word with a constant i: BCC's clang
 * made a loop's addresses of one that the verifier refused. (The nodename,
 * 65 bytes, stays a helper's copy: eight words in every packer grew
 * sendmmsg's loop of eight packers past what clang unrolls, and the
 * verifier's walk of the loop past 1M instructions.) */
static __always_inline __u32 sdxfer_put_source_comm(void *rec, __u32 cursor, __u32 cursor_max,
                                                   struct sdxfer_var *var, const struct sdxfer_current *now,
                                                   __u32 max)
{
    if (max < SDXFER_COMM_SIZE)
        return sdxfer_put_str(rec, cursor, cursor_max, var, sdxfer_source_comm(now), max, 0);
    cursor = sdxfer_cursor_blurred(rec, cursor);
    var->off = 0;
    var->len = 0;
    var->lost = 0;
    if (cursor > cursor_max) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    char *to = (char *)rec + cursor;
    __u64 len = 0, open = 1;
    sdxfer_comm_word(to, now->task, 0, &len, &open);
    sdxfer_comm_word(to, now->task, 1, &len, &open);
    var->lost = (__u32)-open & SDXFER_LOST_UNKNOWN;
    var->off = cursor;
    var->len = len;
    /* through map memory, as the next field's cursor: the length's
     * arithmetic stays out of the verifier's states */
    return sdxfer_cursor_blurred(rec, cursor + len);
}
#endif

#ifdef SDXFER_SOURCE_START_NS
/* The thread group leader's start_boottime, ns since boot: /proc/PID/stat's
 * field 22 is it in clock ticks (a time namespace's offset aside). With the
 * tgid, a key never reused (sdxfer_exe_owner_of reads it too, beside the
 * leader's exec count). */
static __always_inline __u64 sdxfer_source_start_ns(const struct sdxfer_current *now)
{
    const char *leader = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, group_leader));
    return sdxfer_member_u64(leader, SDXFER_MEMBER(task_struct, start_boottime));
}
#endif

/* task->loginuid and task->sessionid exist only in a kernel built with
 * CONFIG_AUDIT: without it, a probe with these sources does not load (BCC:
 * sdxfer.kernel.offsets refuses the member this kernel lacks, in one line; a
 * CO-RE object: libbpf fails the member's relocation). */
#ifdef SDXFER_SOURCE_LOGINUID
static __always_inline __u32 sdxfer_source_loginuid(const struct sdxfer_current *now)
{
    return sdxfer_member_u32(now->task, SDXFER_MEMBER(task_struct, loginuid)); /* kuid_t: one __u32 */
}
#endif

#ifdef SDXFER_SOURCE_SESSIONID
static __always_inline __u32 sdxfer_source_sessionid(const struct sdxfer_current *now)
{
    return sdxfer_member_u32(now->task, SDXFER_MEMBER(task_struct, sessionid));
}
#endif

#ifdef SDXFER_SOURCE_PIDNS
/* task->thread_pid->numbers[level].ns->ns.inum: the namespace the task's pid
 * was made in, its own (what /proc/PID/ns/pid links to; nsproxy's
 * pid_ns_for_children is its children's). The verifier lets a load take a
 * constant index only: levels 0 and 1 (the initial namespace, a container's)
 * are loads, a deeper one's entry two probe reads. */
static __always_inline __u32 sdxfer_source_pidns(const struct sdxfer_current *now)
{
    const char *pid = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, thread_pid));
    __u32 level = sdxfer_member_u32(pid, SDXFER_MEMBER(pid, level));
    const char *ns = NULL;
    if (level == 0)
        ns = (const char *)sdxfer_member_u64(pid, SDXFER_MEMBER(pid, numbers) + SDXFER_MEMBER(upid, ns));
    else if (level == 1)  /* a container's */
        ns = (const char *)sdxfer_member_u64(pid, SDXFER_MEMBER(pid, numbers) + SDXFER_SIZE(upid) +
                                                      SDXFER_MEMBER(upid, ns));
    if (level <= 1)
        return ns ? sdxfer_member_u32(ns, SDXFER_MEMBER(pid_namespace, ns) + SDXFER_MEMBER(ns_common, inum)) : 0;
    ns = (const char *)sdxfer_kernel_u64(pid + SDXFER_MEMBER(pid, numbers) + level * SDXFER_SIZE(upid) +
                                         SDXFER_MEMBER(upid, ns));
    return ns ? sdxfer_kernel_u32(ns + SDXFER_MEMBER(pid_namespace, ns) + SDXFER_MEMBER(ns_common, inum)) : 0;
}
#endif

#ifdef SDXFER_SOURCE_NODENAME
/* task->nsproxy->uts_ns->name.nodename; none once the task has let go of
 * its namespaces (late in exit) */
static __always_inline const char *sdxfer_source_nodename(const struct sdxfer_current *now)
{
    const char *nsproxy = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, nsproxy));
    const char *uts = nsproxy ? (const char *)sdxfer_member_u64(nsproxy, SDXFER_MEMBER(nsproxy, uts_ns)) : NULL;
    return uts ? uts + SDXFER_MEMBER(uts_namespace, name) + SDXFER_MEMBER(new_utsname, nodename) : NULL;
}
#endif

#ifdef SDXFER_SOURCE_EXE_PATH
/* What a kept path says: its text, NULL (none) or SDXFER_UNKNOWN (did not fit). */
static __always_inline const char *sdxfer_exe_kept_text(const struct sdxfer_exe_kept *kept)
{
    if (kept->state == SDXFER_PATH_DONE)
        return kept->text;
    return kept->state == SDXFER_PATH_NONE ? NULL : (const char *)SDXFER_UNKNOWN;
}

/* A kept path's owner: the process (tgid and start) and the image the path
 * is of: the mm's exe_file, and the leader's self_exec_id, which each exec
 * counts up. The file's address alone can come back in a later exec of the
 * same process, once an earlier image's file is freed. */
struct sdxfer_exe_owner {
    __u64 file;      /* 0 once the mm is gone, late in exit */
    __u64 start_ns;
    __u64 exec_id;
    __u64 stamp;
    __u32 tgid;
};

/* The executable's name and place now: its dentry's name hash and length
 * (the dcache salts the hash with the parent dentry: a move to another
 * directory changes it too), or 0 once the file is unlinked (its dentry
 * unhashed). A path kept with another stamp is walked again, so a program
 * removed or renamed while it runs shows as readlink /proc/PID/exe does
 * (" (deleted)", the new name); a rename of a directory above it is not seen. */
static __always_inline __u64 sdxfer_exe_stamp(const char *file)
{
    /* loads through BTF pointers: a NULL one (no file) reads 0, with no
     * branch for the verifier to check each packer's rest under twice */
    const char *dentry =
        (const char *)sdxfer_member_u64(file, SDXFER_MEMBER(file, f_path) + SDXFER_MEMBER(path, dentry));
    __u64 hashed = sdxfer_member_u64(dentry, SDXFER_DENTRY_HASHED);
    /* the hash and the length apart: a verifier before 6.6 refuses an 8-byte
     * load of qstr.hash_len, a union's second member over the first's 4 bytes */
    __u32 name = SDXFER_MEMBER(dentry, d_name);
    __u64 hash_len = (__u64)sdxfer_member_u32(dentry, name + SDXFER_MEMBER(qstr, len)) << 32 |
                     sdxfer_member_u32(dentry, name + SDXFER_MEMBER(qstr, hash));

    return hashed ? hash_len : 0;
}

/* Whether two tasks walk paths from the same root (fs->root): a child that
 * chrooted or pivoted its root sees another path of the same file. */
static __always_inline int sdxfer_same_root(const char *task, const char *other)
{
    const char *fs = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, fs));
    const char *other_fs = (const char *)sdxfer_member_u64(other, SDXFER_MEMBER(task_struct, fs));
    __u32 root = SDXFER_MEMBER(fs_struct, root);

    return sdxfer_member_u64(fs, root + SDXFER_MEMBER(path, dentry)) ==
               sdxfer_member_u64(other_fs, root + SDXFER_MEMBER(path, dentry)) &&
           sdxfer_member_u64(fs, root + SDXFER_MEMBER(path, mnt)) ==
               sdxfer_member_u64(other_fs, root + SDXFER_MEMBER(path, mnt));
}

static __always_inline void sdxfer_exe_owner_of(const char *task, __u64 file, __u64 stamp,
                                               struct sdxfer_exe_owner *owner)
{
    const char *leader = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, group_leader));

    owner->file = file;
    owner->stamp = stamp;
    owner->tgid = sdxfer_member_u32(task, SDXFER_MEMBER(task_struct, tgid));
    owner->start_ns = sdxfer_member_u64(leader, SDXFER_MEMBER(task_struct, start_boottime));
    owner->exec_id = sdxfer_member_u64(leader, SDXFER_MEMBER(task_struct, self_exec_id));
}

/* Whether a kept path (or this CPU's copy of one) is the owner's, of its
 * file as named now: late in exit, without a file, the process's last one is. */
static __always_inline int sdxfer_exe_owns(const struct sdxfer_exe_kept *kept, const struct sdxfer_exe_owner *owner)
{
    return kept->tgid == owner->tgid && kept->start_ns == owner->start_ns && kept->exec_id == owner->exec_id &&
           ((kept->file == owner->file && kept->stamp == owner->stamp) || !owner->file);
}

/* This CPU's copy of the last kept path its packers took (the process's, or
 * the parent's that serves it), so a process's next events on this CPU take
 * it without a lookup. A program may interrupt (or, where the kernel allows
 * it, preempt) another on its CPU: a copy is written under `recent_busy` (an
 * atomic or: a writer cut short is not written over), with `recent_seq` odd
 * meanwhile, and a packer that took the copy checks `recent_seq` again after
 * (sdxfer_put_source_exe_path). Another CPU may reuse the kept entry for
 * another process while it is copied (an LRU map frees at once): its owner
 * is read again after the copy, and a copy of a changed one is not used. The
 * compiler barriers keep the loads and stores between the two counts. */
#define SDXFER_COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")

static __always_inline void sdxfer_exe_remember(const struct sdxfer_exe_kept *kept,
                                                const struct sdxfer_exe_owner *owner)
{
    struct sdxfer_exe_walk *area = sdxfer_exe_walk_area();

    if (!area || !owner->file || kept->state != SDXFER_PATH_DONE || __sync_fetch_and_or(&area->recent_busy, 1))
        return;
    area->recent_seq++;
    SDXFER_COMPILER_BARRIER();
    long n = bpf_probe_read_kernel_str(area->recent.text, sizeof(area->recent.text), kept->text);
    SDXFER_COMPILER_BARRIER();
    /* a long path (its own map) does not fit: no copy then */
    int whole = n > 0 && n <= SDXFER_EXE_SHORT_TEXT && kept->state == SDXFER_PATH_DONE && sdxfer_exe_owns(kept, owner);
    area->recent.start_ns = owner->start_ns;
    area->recent.exec_id = owner->exec_id;
    area->recent.stamp = owner->stamp;
    area->recent.tgid = owner->tgid;
    area->recent.file = whole ? owner->file : 0;
    SDXFER_COMPILER_BARRIER();
    area->recent_seq++;
    area->recent_busy = 0;
}

/* Walks the executable and keeps the text for its owner; SDXFER_UNKNOWN
 * when this CPU's walk area is busy (a nested program). */
static __always_inline const char *sdxfer_exe_walk(const struct sdxfer_exe_owner *owner)
{
    struct sdxfer_exe_walk *walk = sdxfer_exe_walk_area();

    if (!walk || __sync_fetch_and_or(&walk->busy, 1))
        return (const char *)SDXFER_UNKNOWN;
    sdxfer_file_path_walk((const void *)owner->file, &walk->buf);
    walk->kept.file = owner->file;
    walk->kept.start_ns = owner->start_ns;
    walk->kept.exec_id = owner->exec_id;
    walk->kept.stamp = owner->stamp;
    walk->kept.state = walk->buf.walk;
    if (walk->buf.walk == SDXFER_PATH_DONE) {
        __u32 size = walk->buf.len + 1;  /* the text and its NUL */
        sdxfer_bound(size, SDXFER_PATH_MAX + 1);
        bpf_probe_read_kernel(walk->kept.text, size, walk->buf.text);
    }
    walk->kept.tgid = owner->tgid;
    sdxfer_exe_keep(&walk->kept, walk->buf.walk == SDXFER_PATH_DONE ? walk->buf.len : 0);
    walk->busy = 0;
    struct sdxfer_exe_kept *kept = sdxfer_exe_kept(owner->tgid);
    return kept ? sdxfer_exe_kept_text(kept) : (const char *)SDXFER_UNKNOWN;
}

/* Whose kept path serves the current process. A forked child that has not
 * exec'd runs its parent's very file (alive, held by this mm: an address
 * not reused), and the parent's path of it serves the child: kept once for
 * the parent and its children alike, unless the child changed its root
 * (it sees another path of the file: its own is walked and kept). Only
 * such a child (its leader PF_FORKNOEXEC) can: an exec opens a file of its
 * own, so no other process needs its parent's loads. */
struct sdxfer_exe_whose {
    struct sdxfer_exe_owner own;
    struct sdxfer_exe_owner shown;  /* the serving parent, else the process itself */
    int kernel_thread;              /* no program at all */
};

static __always_inline void sdxfer_exe_whose(const struct sdxfer_current *now, struct sdxfer_exe_whose *whose)
{
    const char *mm = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, mm));
    const char *leader = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, group_leader));
    /* a load through a NULL mm (a kernel thread's, or late in exit) reads 0 */
    const char *exe = (const char *)sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, exe_file));
    __u64 file = (__u64)exe;
    const char *parent = NULL;

    if (file && (sdxfer_member_u32(leader, SDXFER_MEMBER(task_struct, flags)) & SDXFER_PF_FORKNOEXEC)) {
        parent = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, real_parent));
        const char *parent_mm = (const char *)sdxfer_member_u64(parent, SDXFER_MEMBER(task_struct, mm));
        if (!parent_mm || sdxfer_member_u64(parent_mm, SDXFER_MEMBER(mm_struct, exe_file)) != file ||
            !sdxfer_same_root(now->task, parent))
            parent = NULL;
    }
    __u64 stamp = sdxfer_exe_stamp(exe);

    sdxfer_exe_owner_of(now->task, file, stamp, &whose->own);
    whose->shown = whose->own;
    whose->kernel_thread = !mm && (sdxfer_member_u32(now->task, SDXFER_MEMBER(task_struct, flags)) & SDXFER_PF_KTHREAD);
    if (parent)
        sdxfer_exe_owner_of(parent, file, stamp, &whose->shown);
}

/* The text the process's kept path gives (its parent's where that serves),
 * walked first where none is kept: NULL for a kernel thread, which has no
 * program, SDXFER_UNKNOWN where it did not fit. Late in exit the mm is
 * gone: the path kept (or this CPU's copy, once the keeper has run) is
 * still the process's, and where there is none it is unknown. Each step
 * once in the code where it can be: a program that inlines many packers
 * would outgrow its jumps' range, and a walk reached with the owner in
 * either of two places would be checked twice by the verifier. */
static __always_inline const char *sdxfer_exe_path_of(struct sdxfer_exe_whose *whose)
{
    if (whose->shown.tgid != whose->own.tgid) {
        struct sdxfer_exe_kept *inherited = sdxfer_exe_kept(whose->shown.tgid);
        if (inherited && sdxfer_exe_owns(inherited, &whose->shown)) {
            sdxfer_exe_remember(inherited, &whose->shown);
            return sdxfer_exe_kept_text(inherited);
        }
    }
    struct sdxfer_exe_kept *kept = sdxfer_exe_kept(whose->own.tgid);
    if (kept && sdxfer_exe_owns(kept, &whose->own)) {
        sdxfer_exe_remember(kept, &whose->own);
        return sdxfer_exe_kept_text(kept);
    }
    if (!whose->own.file)
        return whose->kernel_thread ? NULL : (const char *)SDXFER_UNKNOWN;
    return sdxfer_exe_walk(&whose->shown);
}

/* A packer's exe_path field: mm->exe_file's absolute path (sdxfer_path.h),
 * kept per process, walked when the process is first seen and when it runs
 * another image (after an exec), not once per event. Taken from this CPU's
 * copy when that is of this process's (or serving parent's) image. A copy a
 * writer changed while the packer read it is not kept in the record: the
 * field says unknown, not a mix of two texts (a program that interrupts
 * this one between two loads and copies another path: rare enough not to
 * read the path again, which would have the verifier check the walk once
 * more per outcome of the first copy). */
static __always_inline __u32 sdxfer_put_source_exe_path(void *rec, __u32 cursor, __u32 cursor_max,
                                                       struct sdxfer_var *var, const struct sdxfer_current *now,
                                                       __u32 max)
{
    struct sdxfer_exe_walk *area = sdxfer_exe_walk_area();
    struct sdxfer_exe_whose whose;
    __u64 seq = 0;
    int copied = 0;

    sdxfer_exe_whose(now, &whose);
    if (area) {
        seq = *(volatile __u64 *)&area->recent_seq;
        SDXFER_COMPILER_BARRIER();
        copied = !(seq & 1) && area->recent.file && sdxfer_exe_owns(&area->recent, &whose.shown);
    }
    const char *text = copied ? area->recent.text : sdxfer_exe_path_of(&whose);
    __u32 end = sdxfer_put_str(rec, cursor, cursor_max, var, text, max, 0);

    SDXFER_COMPILER_BARRIER();
    if (copied && *(volatile __u64 *)&area->recent_seq != seq) {
        var->off = 0;
        var->len = 0;
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    return end;
}
#endif

#endif /* SDXFER_SOURCES_H */
