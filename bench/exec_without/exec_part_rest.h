/* bench/kernel_cost.py's stand-in for bpf/exec_part_rest.h: BCC's own probe, so no
 * continuation jobs: argv beyond the record is only said lost. */
#ifndef SDXFER_BPF_EXEC_PART_REST_H
#define SDXFER_BPF_EXEC_PART_REST_H

#define EXEC_RAW_TRACEPOINT_PROBE RAW_TRACEPOINT_PROBE

#endif
