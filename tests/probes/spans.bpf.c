/* The spans test schema's `big` event from write(BAD_FD, buf, len) calls of
 * TARGET_PID: both spanning fields hold the buffer. With SPAN_BY_TAIL_CALL
 * the probe is an SDXFER_RAW_TRACEPOINT_PROBE (the rest goes in continuation
 * records); otherwise BCC's own macro (the record and a last continuation
 * saying how much was left out). It builds both ways: BCC, and CO-RE
 * (tests/test_core_build.py). */
#include "xfer.h"

#define NR_WRITE 1  /* x86-64 */

#ifdef SPAN_BY_TAIL_CALL
SDXFER_RAW_TRACEPOINT_PROBE(sys_enter)
#else
RAW_TRACEPOINT_PROBE(sys_enter)
#endif
{
    if (ctx->args[1] != NR_WRITE || (bpf_get_current_pid_tgid() >> 32) != TARGET_PID)
        return 0;
    const char *regs = (const char *)ctx->args[0];
    if (sdxfer_kernel_u64(regs + SDXFER_MEMBER(pt_regs, di)) != BAD_FD)
        return 0;
    const char *buf = (const char *)sdxfer_kernel_u64(regs + SDXFER_MEMBER(pt_regs, si));
    __u32 len = (__u32)sdxfer_kernel_u64(regs + SDXFER_MEMBER(pt_regs, dx));
    big_print(ctx, len, buf, len, buf, len);
    return 0;
}
