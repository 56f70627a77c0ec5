/*
 * bench/kernel_cost.py's floor: the least a probe can do for execmon's exec
 * record, measured beside execmon's probe in the same run.
 *
 * At the same raw tracepoint (sched_process_exec) it fills the generated
 * struct sdxfer_exec by hand, without the packer: pid, tid (old_pid), ppid,
 * uid, gid, comm, exe (bprm->filename) and argv, mm->arg_start..arg_end in
 * one bpf_probe_read_user of at most the schema's max; then sends it with the
 * runtime's own slot claim and sdxfer_emit (header, sequence number,
 * transport, batched wake-ups). What it leaves out stays 0 or absent: pgid,
 * sid, euid, cgroup_id, mntns, ssh_connection, ld_preload, ancestors; no
 * failed execs, no continuation records. The bench passes FLOOR_FINGERPRINT
 * and FLOOR_VERSION (the exec decoder's), so the records decode as exec events.
 */
#include "xfer.h"

#define FLOOR_COMM_MAX SDXFER_MAX_EXEC_COMM
#define FLOOR_EXE_MAX SDXFER_MAX_EXEC_EXE
#define FLOOR_ARGV_MAX SDXFER_MAX_EXEC_ARGV

/* A BTF pointer's member: a plain load (a faulting one reads 0). */
#define FLOOR_MEMBER(type, base, offset) (*(const volatile type *)((const char *)(base) + (offset)))

RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    struct sdxfer_claim claim;
    struct sdxfer_exec *rec = sdxfer_begin_record(&claim, SDXFER_INDEX_EXEC);
    if (!rec)
        return 0;
    const char *task = (const char *)bpf_get_current_task_btf();
    const char *parent = (const char *)FLOOR_MEMBER(__u64, task, BTF_OFF_TASK_STRUCT_REAL_PARENT);
    const char *mm = (const char *)FLOOR_MEMBER(__u64, task, BTF_OFF_TASK_STRUCT_MM);
    __u64 arg_start = FLOOR_MEMBER(__u64, mm, BTF_OFF_MM_STRUCT_ARG_START);
    __u64 arg_end = FLOOR_MEMBER(__u64, mm, BTF_OFF_MM_STRUCT_ARG_END);
    const char *exe = NULL;  /* bprm is no BTF pointer at a plain raw tracepoint */
    bpf_probe_read_kernel(&exe, sizeof(exe), (const char *)ctx->args[2] + BTF_OFF_LINUX_BINPRM_FILENAME);
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();

    __builtin_memset(&rec->pid, 0, sizeof(*rec) - sizeof(rec->head));
    rec->pid = pid_tgid >> 32;
    rec->tid = (__u32)ctx->args[1];
    rec->ppid = FLOOR_MEMBER(__u32, parent, BTF_OFF_TASK_STRUCT_TGID);
    rec->uid = (__u32)uid_gid;
    rec->gid = uid_gid >> 32;

    __u32 cursor = sizeof(*rec);
    long n = bpf_probe_read_kernel_str((char *)rec + cursor, FLOOR_COMM_MAX, task + BTF_OFF_TASK_STRUCT_COMM);
    if (n > 0) {
        n = (n - 1) & (FLOOR_COMM_MAX - 1);
        rec->comm.off = cursor;
        rec->comm.len = n;
        cursor += n;
    }
    /* two bytes over max, as the packer reads: a longer path shows as cut */
    n = bpf_probe_read_kernel_str((char *)rec + cursor, FLOOR_EXE_MAX + 2, exe);
    if (n > 0) {
        n -= 1;
        if (n > FLOOR_EXE_MAX) {
            n = FLOOR_EXE_MAX;
            rec->exe.lost = SDXFER_LOST_UNKNOWN;
        }
        sdxfer_bound(n, FLOOR_EXE_MAX);
        rec->exe.off = cursor;
        rec->exe.len = n;
        cursor += n;
    }
    __u64 argv_len = arg_end - arg_start;
    if (argv_len > FLOOR_ARGV_MAX) {
        rec->argv.lost = argv_len - FLOOR_ARGV_MAX;
        argv_len = FLOOR_ARGV_MAX;
    }
    sdxfer_bound(argv_len, FLOOR_ARGV_MAX);
    if (argv_len && bpf_probe_read_user((char *)rec + cursor, argv_len, (const void *)arg_start) == 0) {
        rec->argv.off = cursor;
        rec->argv.len = argv_len;
        cursor += argv_len;
    }
    rec->head.version = FLOOR_VERSION;
    sdxfer_emit(ctx, &claim, &rec->head, cursor & (SDXFER_SLOT_SIZE - 1), SDXFER_EVENT_EXEC, FLOOR_FINGERPRINT,
                sizeof(*rec), SDXFER_INDEX_EXEC);
    sdxfer_release_slot(&claim);
    return 0;
}
