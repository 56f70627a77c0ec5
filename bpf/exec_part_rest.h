/*
 * A part of exec.bpf.h: how a successful exec's probe is declared:
 * through SDXFER_RAW_TRACEPOINT_PROBE, so argv beyond the record goes out
 * in continuation records.
 * bench/exec_without/ has a stand-in of the same name without it (BCC's
 * RAW_TRACEPOINT_PROBE: that argv is only said lost).
 */
#ifndef SDXFER_BPF_EXEC_PART_REST_H
#define SDXFER_BPF_EXEC_PART_REST_H

#define EXEC_RAW_TRACEPOINT_PROBE SDXFER_RAW_TRACEPOINT_PROBE

#endif /* SDXFER_BPF_EXEC_PART_REST_H */
