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
static __always_inline const char *sdxfer_source_comm(const struct sdxfer_current *now)
{
    return now->task + SDXFER_MEMBER(task_struct, comm);
}
#endif

#if defined(SDXFER_SOURCE_START_NS) || defined(SDXFER_SOURCE_EXE_PATH)
/* The thread group leader's start_boottime, ns since boot: /proc/PID/stat's
 * field 22 is it in clock ticks (a time namespace's offset aside). With the
 * tgid, a key never reused. */
static __always_inline __u64 sdxfer_process_start_ns(const char *task)
{
    const char *leader = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, group_leader));
    return sdxfer_member_u64(leader, SDXFER_MEMBER(task_struct, start_boottime));
}
#endif

#ifdef SDXFER_SOURCE_START_NS
static __always_inline __u64 sdxfer_source_start_ns(const struct sdxfer_current *now)
{
    return sdxfer_process_start_ns(now->task);
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

/* Walks the executable and keeps the text for the process; SDXFER_UNKNOWN
 * when this CPU's walk area is busy (a nested program). */
static __always_inline const char *sdxfer_exe_walk(__u32 tgid, __u64 file, __u64 start_ns)
{
    struct sdxfer_exe_walk *walk = sdxfer_exe_walk_area();

    if (!walk || __sync_fetch_and_or(&walk->busy, 1))
        return (const char *)SDXFER_UNKNOWN;
    sdxfer_file_path_walk((const void *)file, &walk->buf);
    walk->kept.file = file;
    walk->kept.start_ns = start_ns;
    walk->kept.state = walk->buf.walk;
    if (walk->buf.walk == SDXFER_PATH_DONE) {
        __u32 size = walk->buf.len + 1;  /* the text and its NUL */
        sdxfer_bound(size, SDXFER_PATH_MAX + 1);
        bpf_probe_read_kernel(walk->kept.text, size, walk->buf.text);
    }
    walk->kept.tgid = tgid;
    sdxfer_exe_keep(&walk->kept, walk->buf.walk == SDXFER_PATH_DONE ? walk->buf.len : 0);
    walk->busy = 0;
    struct sdxfer_exe_kept *kept = sdxfer_exe_kept(tgid);
    return kept ? sdxfer_exe_kept_text(kept) : (const char *)SDXFER_UNKNOWN;
}

/* mm->exe_file's absolute path (sdxfer_path.h), kept per process: walked
 * when the process is first seen and when its mm has another exe_file
 * (after an exec), not once per event. A forked child that has not exec'd
 * runs its parent's very file (alive, held by this mm: an address not
 * reused), and the parent's path of it serves the child: looked up first,
 * since such a child has none of its own, and kept once for the parent and
 * its children alike. Late in exit the mm is gone: the path kept is still
 * the process's. NULL for a task that never had one (a kernel thread). */
static __always_inline const char *sdxfer_source_exe_path(const struct sdxfer_current *now)
{
    __u32 tgid = sdxfer_member_u32(now->task, SDXFER_MEMBER(task_struct, tgid));
    const char *mm = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, mm));
    __u64 file = mm ? sdxfer_member_u64(mm, SDXFER_MEMBER(mm_struct, exe_file)) : 0;
    __u64 start_ns = sdxfer_process_start_ns(now->task);
    const char *parent = (const char *)sdxfer_member_u64(now->task, SDXFER_MEMBER(task_struct, real_parent));
    const char *parent_mm = (const char *)sdxfer_member_u64(parent, SDXFER_MEMBER(task_struct, mm));
    int parents_file = file && parent_mm && sdxfer_member_u64(parent_mm, SDXFER_MEMBER(mm_struct, exe_file)) == file;
    __u32 parent_tgid = sdxfer_member_u32(parent, SDXFER_MEMBER(task_struct, tgid));
    __u64 parent_start_ns = parents_file ? sdxfer_process_start_ns(parent) : 0;

    if (parents_file) {
        struct sdxfer_exe_kept *inherited = sdxfer_exe_kept(parent_tgid);
        if (inherited && inherited->file == file && inherited->start_ns == parent_start_ns)
            return sdxfer_exe_kept_text(inherited);
    }
    struct sdxfer_exe_kept *kept = sdxfer_exe_kept(tgid);
    if (kept && kept->start_ns == start_ns && (kept->file == file || !file))
        return sdxfer_exe_kept_text(kept);
    if (!file)
        return NULL;
    if (parents_file) {
        tgid = parent_tgid;
        start_ns = parent_start_ns;
    }
    return sdxfer_exe_walk(tgid, file, start_ns);
}
#endif

#endif /* SDXFER_SOURCES_H */
