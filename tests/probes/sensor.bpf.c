/* The live Sensor tests' probe: values the test can predict exactly. */
#include "xfer.h"
#include "helpers.h"

/* Kernel values the test compares with BTF: offsets from BTF_OFF_ names under
 * BCC, CO-RE relocations in an object clang built. */
#ifdef SDXFER_CORE
#define TGID_OFFSET bpf_core_field_offset(struct task_struct, tgid)
#define DPORT_OFFSET bpf_core_field_offset(struct sock, __sk_common.skc_dport)
#define ARG_START_OFFSET bpf_core_field_offset(struct mm_struct, arg_start)
#define TASK_SIZE bpf_core_type_size(struct task_struct)
#else
#define TGID_OFFSET BTF_OFF_TASK_STRUCT_TGID
#define DPORT_OFFSET BTF_OFF_SOCK___SK_COMMON_SKC_DPORT
#define ARG_START_OFFSET BTF_OFF_MM_STRUCT_ARG_START
#define TASK_SIZE BTF_SIZE_TASK_STRUCT
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_getpgid)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    const char *task = (const char *)bpf_get_current_task();
    getpgid_call_print(args, TARGET_PID, args->pid, TEST_MARKER, TGID_OFFSET, DPORT_OFFSET, ARG_START_OFFSET,
                       TASK_SIZE, task_comm(task), parent_tgid(task));
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_write)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID || args->fd != BAD_FD)
        return 0;
    write_call_print(args, args->fd, args->buf, args->count);
    return 0;
}

#ifdef WATCH_INTERRUPTS
/* Raw tracepoints in interrupt context: they may run while the programs
 * above are halfway through a record on the same CPU. */
struct fill_area {
    __u8 fill[SDXFER_MAX_INTERRUPT_FILL];
};

static __always_inline int report_interrupt(void *ctx, __u8 kind)
{
    struct sdxfer_cpu_state *cpu = sdxfer_this_cpu();
    __u64 busy_seen = cpu ? cpu->busy : 0;
    SDXFER_LOCAL(struct fill_area, area);  /* locals in a slot of their own, too */
    if (!area)
        return 0;
    __builtin_memset(area->fill, kind, sizeof(area->fill));
    interrupt_print(ctx, kind, busy_seen, area->fill, sizeof(area->fill));
    return 0;
}

RAW_TRACEPOINT_PROBE(hrtimer_expire_entry)
{
    return report_interrupt(ctx, 1);
}

RAW_TRACEPOINT_PROBE(softirq_entry)
{
    return report_interrupt(ctx, 2);
}
#endif
