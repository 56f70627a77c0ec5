/*
 * In-kernel event filters, chosen per run by -D (sdxfer.kernel.filters
 * writes them): every generated packer asks sdxfer_wanted() before it
 * claims a slot, and a probe may ask earlier to skip work of its own.
 *
 *   SDXFER_FILTER_PID=N       only thread group N ...
 *   SDXFER_FILTER_CHILDREN    ... and its descendants, followed as they fork
 *                             (the loader seeds the followed map with N and
 *                             the descendants it has at start)
 *   SDXFER_FILTER_UID=N       only tasks whose real uid is N
 *   SDXFER_FILTER_CGROUP      only tasks in the cgroup v2 the loader puts in
 *                             the cgroup array, or in one below it
 *   SDXFER_FILTER_MNTNS=N     only tasks in mount namespace N (inode number)
 *   SDXFER_FILTER_NOT_TGID=N  never thread group N (the sensor itself: its
 *                             spool and file writes would feed on themselves)
 *
 * With none of them, sdxfer_wanted() is the constant 1 and costs nothing.
 *
 * In a CO-RE object (SDXFER_CORE) the pid, uid, mount namespace and the
 * process left out are read-only globals sdxfer_filter_pid/_uid/_mntns/
 * _not_tgid instead, which a loader
 * sets before load (a -D gives their initial value; SDXFER_FILTER_ANY: no
 * filter), so one object serves every run: the verifier drops the tests of
 * the filters left off. There SDXFER_FILTER_CHILDREN and SDXFER_FILTER_CGROUP
 * only make their maps (and the fork/free programs) exist; whether they filter
 * is the read-only global sdxfer_filter_children / sdxfer_filter_cgroup
 * (default 0, off), so one object with both serves runs with and without them
 * (the loader leaves the fork/free programs unloaded when off).
 */
#ifndef SDXFER_FILTER_H
#define SDXFER_FILTER_H

#ifdef SDXFER_HOST
#define sdxfer_wanted() 1
#else

#ifdef SDXFER_CORE
#define SDXFER_FILTER_ANY 0xffffffffffffffffULL
#ifndef SDXFER_FILTER_PID
#define SDXFER_FILTER_PID SDXFER_FILTER_ANY
#endif
#ifndef SDXFER_FILTER_UID
#define SDXFER_FILTER_UID SDXFER_FILTER_ANY
#endif
#ifndef SDXFER_FILTER_MNTNS
#define SDXFER_FILTER_MNTNS SDXFER_FILTER_ANY
#endif
#ifndef SDXFER_FILTER_NOT_TGID
#define SDXFER_FILTER_NOT_TGID SDXFER_FILTER_ANY
#endif
const volatile __u64 sdxfer_filter_pid = SDXFER_FILTER_PID;
const volatile __u64 sdxfer_filter_uid = SDXFER_FILTER_UID;
const volatile __u64 sdxfer_filter_mntns = SDXFER_FILTER_MNTNS;
const volatile __u64 sdxfer_filter_not_tgid = SDXFER_FILTER_NOT_TGID;
#undef SDXFER_FILTER_PID
#undef SDXFER_FILTER_UID
#undef SDXFER_FILTER_MNTNS
#undef SDXFER_FILTER_NOT_TGID
#define SDXFER_FILTER_PID sdxfer_filter_pid
#define SDXFER_FILTER_UID sdxfer_filter_uid
#define SDXFER_FILTER_MNTNS sdxfer_filter_mntns
#define SDXFER_FILTER_NOT_TGID sdxfer_filter_not_tgid
/* A value filter the loader left off passes everything. */
#define sdxfer_filter_refuses(wanted, value) ((wanted) != SDXFER_FILTER_ANY && (value) != (__u32)(wanted))
#define sdxfer_filter_excludes(unwanted, value) ((unwanted) != SDXFER_FILTER_ANY && (value) == (__u32)(unwanted))
#ifdef SDXFER_FILTER_CHILDREN
const volatile __u32 sdxfer_filter_children = 0;
#define SDXFER_FILTER_CHILDREN_ON sdxfer_filter_children
#endif
#ifdef SDXFER_FILTER_CGROUP
const volatile __u32 sdxfer_filter_cgroup = 0;
#define SDXFER_FILTER_CGROUP_ON sdxfer_filter_cgroup
#endif
#else
/* BCC: a filter's -D turns it on. */
#define SDXFER_FILTER_CHILDREN_ON 1
#define SDXFER_FILTER_CGROUP_ON 1
#define sdxfer_filter_refuses(wanted, value) ((value) != (__u32)(wanted))
#define sdxfer_filter_excludes(unwanted, value) ((value) == (__u32)(unwanted))
#endif

/* task->nsproxy->mnt_ns->ns.inum: the task's mount namespace */
static __always_inline __u32 sdxfer_task_mntns(const char *task)
{
    const char *nsproxy = (const char *)sdxfer_member_u64(task, SDXFER_MEMBER(task_struct, nsproxy));
    const char *mnt_ns = nsproxy ? (const char *)sdxfer_member_u64(nsproxy, SDXFER_MEMBER(nsproxy, mnt_ns)) : NULL;
    return mnt_ns ? sdxfer_member_u32(mnt_ns, SDXFER_MEMBER(mnt_namespace, ns) + SDXFER_MEMBER(ns_common, inum)) : 0;
}

static __always_inline int sdxfer_wanted(void)
{
#ifdef SDXFER_FILTER_NOT_TGID
    if (sdxfer_filter_excludes(SDXFER_FILTER_NOT_TGID, bpf_get_current_pid_tgid() >> 32))
        return 0;
#endif
#ifdef SDXFER_FILTER_PID
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
#ifdef SDXFER_FILTER_CHILDREN
    if (SDXFER_FILTER_CHILDREN_ON) {
        if (!sdxfer_is_followed(tgid))
            return 0;
    } else
#endif
    if (sdxfer_filter_refuses(SDXFER_FILTER_PID, tgid))
        return 0;
#endif
#ifdef SDXFER_FILTER_UID
    if (sdxfer_filter_refuses(SDXFER_FILTER_UID, (__u32)bpf_get_current_uid_gid()))
        return 0;
#endif
#ifdef SDXFER_FILTER_CGROUP
    if (SDXFER_FILTER_CGROUP_ON && !sdxfer_under_cgroup())
        return 0;
#endif
#ifdef SDXFER_FILTER_MNTNS
    if (sdxfer_filter_refuses(SDXFER_FILTER_MNTNS, sdxfer_task_mntns(sdxfer_task())))
        return 0;
#endif
    return 1;
}

#endif /* SDXFER_HOST */
#endif /* SDXFER_FILTER_H */
