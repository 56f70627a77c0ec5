"""Kernel cost per record of the nesting-safe scratch.

A C loop calls getppid(); a probe on sys_enter_getppid, filtered to the loop,
packs a small record (a counter and the command name) through each
transport. Three probes, loaded one after another in each round:

    packer          tick_print(): claims a scratch slot, packs, sends, gives it back
    packer+locals   the same inside SDXFER_LOCAL (a probe with large locals)
    bare slot       the least a probe can do for the same bytes: slot 0 looked
                    up directly, no depth, the same send (what the packer cost
                    before slots became a stack)

Kernel ns per record come from bpf_stats (run_time_ns / run_cnt of the
program), a reader thread draining the buffer. Medians of several rounds.

    sudo .venv/bin/python bench/nesting.py [--calls 200000] [--rounds 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from c_program import compile_c  # bench/, beside this file
from kernel_cost import bpf_stats, prog_stats
from sdxfer import Sensor

SCHEMA = """\
version: 1
slot_size: 1024
events:
  - name: tick
    id: 1
    fields:
      - {name: n, type: u64}
      - {name: comm, type: str, max: 16}
"""

PACKER = """
#include "xfer.h"
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    char comm[16];
    bpf_get_current_comm(comm, sizeof(comm));
    tick_print(args, bpf_ktime_get_ns(), comm);
    return 0;
}
"""

WITH_LOCALS = """
#include "xfer.h"
struct area { char comm[16]; };
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    SDXFER_LOCAL(struct area, area);
    if (!area)
        return 0;
    bpf_get_current_comm(area->comm, sizeof(area->comm));
    tick_print(args, bpf_ktime_get_ns(), area->comm);
    return 0;
}
"""

# The same record by hand, in slot 0 with no claim: the floor the packer is held to.
BARE_SLOT = """
#include "xfer.h"
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if (bpf_get_current_pid_tgid() >> 32 != TARGET_PID)
        return 0;
    struct sdxfer_tick *rec = sdxfer_scratch_slot(0);
    struct sdxfer_cpu_state *cpu = sdxfer_this_cpu();
    if (!rec || !cpu)
        return 0;
    char comm[16];
    bpf_get_current_comm(comm, sizeof(comm));
    __u32 cursor = sizeof(*rec);
    rec->n = bpf_ktime_get_ns();
    cursor = sdxfer_put_str(rec, cursor, cursor, &rec->comm, comm, SDXFER_MAX_TICK_COMM, 0);
    struct sdxfer_head *head = &rec->head;
    head->timestamp_ns = bpf_ktime_get_ns();
    head->seq = cpu->seq++;
    head->size = cursor & 0x7f;
    head->fingerprint = 0;
    head->id = SDXFER_EVENT_TICK;
    head->payload_off = sizeof(*rec);
    head->cpu = bpf_get_smp_processor_id();
    if (sdxfer_output(args, head, cursor & 0x7f, head->seq) < 0)
        sdxfer_count_drop(SDXFER_INDEX_TICK);
    return 0;
}
"""

LOOP_C = r"""
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 100000;
    for (long i = 0; i < calls; i++)
        syscall(SYS_getppid);
    return 0;
}
"""
def prog_totals(pid: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over the BPF programs the process holds open."""
    stats = prog_stats(pid).values()
    return sum(t for t, _ in stats), sum(n for _, n in stats)


def measure(loop: Path, schema: Path, text: str, transport: str, calls: int) -> float:
    child = subprocess.Popen(["/bin/sh", "-c", f"read go; exec {loop} {calls}"], stdin=subprocess.PIPE, text=True)
    try:
        with Sensor(text, schema=schema, transport=transport, defines={"TARGET_PID": child.pid}) as sensor:
            stop = threading.Event()
            reader = threading.Thread(target=lambda: [None for _ in sensor.records(stop.is_set)], daemon=True)
            reader.start()
            before = prog_totals(os.getpid())
            child.communicate("go\n")
            after = prog_totals(os.getpid())
            stop.set()
            reader.join()
    finally:
        child.kill()
        child.wait()
    # every program sees every getppid on the host; only the loop's are packed, and they dominate
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("nesting: run as root (sudo)", file=sys.stderr)
        return 1
    probes = {"packer": PACKER, "packer+locals": WITH_LOCALS, "bare slot": BARE_SLOT}
    results = {(name, transport): [] for transport in ("perf", "ringbuf") for name in probes}
    with bpf_stats(), tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        compile_c(LOOP_C, work, "loop")
        schema = work / "tick.yaml"
        schema.write_text(SCHEMA)
        for round_number in range(1, args.rounds + 1):
            for (name, transport), rows in results.items():
                rows.append(measure(work / "loop", schema, probes[name], transport, args.calls))
            print(f"round {round_number}/{args.rounds} done", file=sys.stderr)
    print(f"getppid loop, {args.calls} calls per run, {args.rounds} rounds; kernel ns per record, medians")
    print(f"{'probe':<15} {'perf':>8} {'ringbuf':>8}")
    medians = {key: statistics.median(rows) for key, rows in results.items()}
    for name in probes:
        print(f"{name:<15} {medians[(name, 'perf')]:>8.0f} {medians[(name, 'ringbuf')]:>8.0f}")
    for transport in ("perf", "ringbuf"):
        extra = medians[("packer", transport)] - medians[("bare slot", transport)]
        print(f"{transport}: nesting-safe packer costs {extra:+.0f} ns per record over the bare slot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
