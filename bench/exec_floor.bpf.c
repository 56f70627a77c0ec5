/*
 * bench/kernel_cost.py's floor: the least a probe can do for execmon's exec
 * record, measured beside execmon's probe in the same run.
 *
 * At the same raw tracepoint (sched_process_exec) it fills the generated
 * struct sdxfer_exec by hand, without the packer, in the one scratch slot it
 * sends from: every field execmon's probe fills, with the same values
 * (common fields straight from the task, exe from bprm->filename, argv as
 * mm->arg_start..arg_end in one bpf_probe_read_user of at most the schema's
 * max, ssh_connection and ld_preload found by bpf/environ.h's scan, the
 * ancestors walked by bpf/exec_image.h straight into the record); then sends it
 * with the runtime's slot claim and sdxfer_emit (header, sequence number,
 * transport, batched wake-ups). It sends no continuation record (its argv
 * must fit the record) and reports no failed exec.
 *
 * Built with FLOOR_BARE it is the bare floor: ids, comm, exe and argv only;
 * pgid, sid, euid, cgroup_id, mntns stay 0 and ssh_connection, ld_preload and
 * ancestors absent.
 *
 * The bench passes FLOOR_FINGERPRINT, FLOOR_VERSION and FLOOR_FIXED_SIZE (the
 * exec decoder's: where the variable part starts, which the struct's own
 * size rounds up), so the records decode as exec events.
 */
#include "xfer.h"
#include "exec_image.h"
#include "environ.h"

#define FLOOR_COMM_MAX SDXFER_MAX_EXEC_COMM
#define FLOOR_EXE_MAX SDXFER_MAX_EXEC_EXE
#define FLOOR_ARGV_MAX SDXFER_MAX_EXEC_ARGV
#define FLOOR_ANCESTORS_BYTES (SDXFER_MAX_EXEC_ANCESTORS * sizeof(struct sdxfer_exec_ancestors_entry))
#ifdef SDXFER_MAX_EXEC_NODENAME
#define FLOOR_NODENAME_MAX SDXFER_MAX_EXEC_NODENAME
#else
#define FLOOR_NODENAME_MAX 0
#endif
/* The record's largest size: its fixed part and every variable field full. */
#define FLOOR_RECORD_MAX (sizeof(struct sdxfer_exec) + FLOOR_COMM_MAX + FLOOR_EXE_MAX + FLOOR_ARGV_MAX + \
                          SDXFER_MAX_EXEC_SSH_CONNECTION + SDXFER_MAX_EXEC_LD_PRELOAD + FLOOR_ANCESTORS_BYTES + \
                          FLOOR_NODENAME_MAX)

/* The slot: the record, and past its largest size the environment scan
 * (done before the record's variable fields are written). */
struct floor_slot {
    char record[SDXFER_SLOT_SIZE - sizeof(struct env_scan) - sizeof(struct env_values)];
    struct env_values found;
    struct env_scan scan;
};
_Static_assert(sizeof(struct floor_slot) == SDXFER_SLOT_SIZE, "the floor's locals fill its slot");
_Static_assert(FLOOR_RECORD_MAX <= sizeof(((struct floor_slot *)0)->record), "the record never reaches the scan");

/* A NUL-terminated string of user memory at `cursor`, as the packer stores
 * it: NULL absent, SDXFER_UNKNOWN or unreadable lost unknown, cut at max. */
static __always_inline __u32 floor_put_user_str(char *rec, __u32 cursor, struct sdxfer_var *var, const char *src,
                                                const __u32 max)
{
    if (!src)
        return cursor;
    var->lost = SDXFER_LOST_UNKNOWN;
    if (src == SDXFER_UNKNOWN || cursor > FLOOR_RECORD_MAX - max)
        return cursor;
    sdxfer_bound(cursor, FLOOR_RECORD_MAX);
    long n = bpf_probe_read_user_str(rec + cursor, max + SDXFER_STR_READ_SLACK, src);
    if (n <= 0)
        return cursor;
    n -= 1;
    if (n > max)
        n = max;
    else
        var->lost = 0;
    var->off = cursor;
    var->len = n;
    return cursor + n;
}

RAW_TRACEPOINT_PROBE(sched_process_exec)
{
    struct sdxfer_claim claim;
    struct floor_slot *slot = sdxfer_begin_record(&claim, SDXFER_INDEX_EXEC);
    if (!slot)
        return 0;
    struct sdxfer_exec *rec = (struct sdxfer_exec *)slot->record;
    const char *task = sdxfer_task();
    const char *parent = (const char *)sdxfer_member_u64(task, BTF_OFF_TASK_STRUCT_REAL_PARENT);
    struct exec_image image;
    read_exec_image((const char *)ctx->args[2], &image);
    struct mm_bounds mm;
    read_mm_bounds((const char *)sdxfer_member_u64(task, BTF_OFF_TASK_STRUCT_MM), &mm);
    clear_env_values(&slot->found);
#ifndef FLOOR_BARE
    if (!find_env_of_new_image(&slot->scan, &mm, &image, &slot->found))
        mark_unexamined(&slot->found);
#endif
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u64 uid_gid = bpf_get_current_uid_gid();

    __builtin_memset(&rec->pid, 0, sizeof(*rec) - sizeof(rec->head));
    rec->pid = pid_tgid >> 32;
    rec->tid = (__u32)ctx->args[1];
    rec->ppid = sdxfer_member_u32(parent, BTF_OFF_TASK_STRUCT_TGID);
    rec->uid = (__u32)uid_gid;
    rec->gid = uid_gid >> 32;
#ifndef FLOOR_BARE
    /* the sources' own task readers: inline loads, nothing a hand-written probe could skip */
    rec->pgid = sdxfer_task_pid_of_type(task, SDXFER_PIDTYPE_PGID);
    rec->sid = sdxfer_task_pid_of_type(task, SDXFER_PIDTYPE_SID);
    rec->euid = sdxfer_member_u32(sdxfer_task_cred(task), BTF_OFF_CRED_EUID);
    rec->cgroup_id = bpf_get_current_cgroup_id();
    rec->mntns = sdxfer_task_mntns(task);
    /* issue 18's common fields, where the schema has them: the sources' own readers */
    struct sdxfer_current now = {.task = task};
#ifdef SDXFER_SOURCE_START_NS
    rec->start_ns = sdxfer_source_start_ns(&now);
#endif
#ifdef SDXFER_SOURCE_LOGINUID
    rec->loginuid = sdxfer_source_loginuid(&now);
#endif
#ifdef SDXFER_SOURCE_SESSIONID
    rec->sessionid = sdxfer_source_sessionid(&now);
#endif
#ifdef SDXFER_SOURCE_PIDNS
    rec->pidns = sdxfer_source_pidns(&now);
#endif
    (void)now;
#endif

    __u32 cursor = FLOOR_FIXED_SIZE;
    long n = bpf_probe_read_kernel_str((char *)rec + cursor, FLOOR_COMM_MAX, task + BTF_OFF_TASK_STRUCT_COMM);
    if (n > 0) {
        n = (n - 1) & (FLOOR_COMM_MAX - 1);
        rec->comm.off = cursor;
        rec->comm.len = n;
        cursor += n;
    }
    /* two bytes over max, as the packer reads: a longer path shows as cut */
    n = bpf_probe_read_kernel_str((char *)rec + cursor, FLOOR_EXE_MAX + 2, image.filename);
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
    __u64 argv_len = mm.arg_end - mm.arg_start;
    if (argv_len > FLOOR_ARGV_MAX) {
        rec->argv.lost = argv_len - FLOOR_ARGV_MAX;
        argv_len = FLOOR_ARGV_MAX;
    }
    sdxfer_bound(argv_len, FLOOR_ARGV_MAX);
    if (argv_len && bpf_probe_read_user((char *)rec + cursor, argv_len, (const void *)mm.arg_start) == 0) {
        rec->argv.off = cursor;
        rec->argv.len = argv_len;
        cursor += argv_len;
    }
#ifndef FLOOR_BARE
    cursor = floor_put_user_str((char *)rec, cursor, &rec->ssh_connection, slot->found.ssh_connection,
                                SDXFER_MAX_EXEC_SSH_CONNECTION);
    cursor = floor_put_user_str((char *)rec, cursor, &rec->ld_preload, slot->found.ld_preload,
                                SDXFER_MAX_EXEC_LD_PRELOAD);
    if (cursor <= FLOOR_RECORD_MAX - FLOOR_ANCESTORS_BYTES) {
        sdxfer_bound(cursor, FLOOR_RECORD_MAX - FLOOR_ANCESTORS_BYTES);
        __u32 ancestors = walk_ancestors((struct sdxfer_exec_ancestors_entry *)((char *)rec + cursor));
        __u32 bytes = (ancestors & ~SDXFER_LEN_TRUNCATED) * sizeof(struct sdxfer_exec_ancestors_entry);
        rec->ancestors.off = cursor;
        rec->ancestors.len = bytes;
        rec->ancestors.lost = ancestors & SDXFER_LEN_TRUNCATED ? SDXFER_LOST_UNKNOWN : 0;
        cursor += bytes;
    }
#if FLOOR_NODENAME_MAX
    const char *nodename = sdxfer_source_nodename(&now);
    if (nodename && cursor <= FLOOR_RECORD_MAX - FLOOR_NODENAME_MAX) {
        sdxfer_bound(cursor, FLOOR_RECORD_MAX - FLOOR_NODENAME_MAX);
        n = bpf_probe_read_kernel_str((char *)rec + cursor, FLOOR_NODENAME_MAX, nodename);
        if (n > 0) {
            n = (n - 1) & (FLOOR_NODENAME_MAX - 1);
            rec->nodename.off = cursor;
            rec->nodename.len = n;
            cursor += n;
        }
    }
#endif
#endif
    rec->head.version = FLOOR_VERSION;
    sdxfer_emit(ctx, &claim, &rec->head, cursor & (SDXFER_SLOT_SIZE - 1), SDXFER_EVENT_EXEC, FLOOR_FINGERPRINT,
                FLOOR_FIXED_SIZE, SDXFER_INDEX_EXEC);
    sdxfer_release_slot(&claim);
    return 0;
}
