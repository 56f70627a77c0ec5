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
 */
#ifndef SDXFER_FILTER_H
#define SDXFER_FILTER_H

#ifdef SDXFER_HOST
#define sdxfer_wanted() 1
#else

/* task->nsproxy->mnt_ns->ns.inum: the task's mount namespace */
static __always_inline __u32 sdxfer_task_mntns(const char *task)
{
    const char *nsproxy = (const char *)sdxfer_member_u64(task, BTF_OFF_TASK_STRUCT_NSPROXY);
    const char *mnt_ns = nsproxy ? (const char *)sdxfer_member_u64(nsproxy, BTF_OFF_NSPROXY_MNT_NS) : NULL;
    return mnt_ns ? sdxfer_member_u32(mnt_ns, BTF_OFF_MNT_NAMESPACE_NS_INUM) : 0;
}

static __always_inline int sdxfer_wanted(void)
{
#ifdef SDXFER_FILTER_NOT_TGID
    if ((__u32)(bpf_get_current_pid_tgid() >> 32) == (__u32)(SDXFER_FILTER_NOT_TGID))
        return 0;
#endif
#ifdef SDXFER_FILTER_PID
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
#ifdef SDXFER_FILTER_CHILDREN
    if (!sdxfer_is_followed(tgid))
        return 0;
#else
    if (tgid != (__u32)(SDXFER_FILTER_PID))
        return 0;
#endif
#endif
#ifdef SDXFER_FILTER_UID
    if ((__u32)bpf_get_current_uid_gid() != (__u32)(SDXFER_FILTER_UID))
        return 0;
#endif
#ifdef SDXFER_FILTER_CGROUP
    if (!sdxfer_under_cgroup())
        return 0;
#endif
#ifdef SDXFER_FILTER_MNTNS
    if (sdxfer_task_mntns(sdxfer_task()) != (__u32)(SDXFER_FILTER_MNTNS))
        return 0;
#endif
    return 1;
}

#ifdef SDXFER_FILTER_CHILDREN
/* A followed process's children are followed from their fork on (the
 * tracepoint fires in the parent); a thread group leaves the map when its
 * leader's task is freed, after every event of its exit was sent. */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    if (sdxfer_is_followed(bpf_get_current_pid_tgid() >> 32))
        sdxfer_follow(sdxfer_kernel_u32((const char *)ctx->args[1] + BTF_OFF_TASK_STRUCT_TGID));
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_process_free)
{
    const char *task = (const char *)ctx->args[0];
    __u32 tgid = sdxfer_kernel_u32(task + BTF_OFF_TASK_STRUCT_TGID);
    if (sdxfer_kernel_u32(task + BTF_OFF_TASK_STRUCT_PID) == tgid)
        sdxfer_unfollow(tgid);
    return 0;
}
#endif

#endif /* SDXFER_HOST */
#endif /* SDXFER_FILTER_H */
