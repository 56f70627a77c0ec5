"""End-to-end throughput: a high-rate stream read and decoded through Sensor,
beside BCC's bare callback on the same tracepoint, in the same run.

A C loop calls getppid() as fast as it can for --seconds, pinned to one CPU;
this process reads on the other. Per run and transport:

- sdxfer: a probe on syscalls:sys_enter_getppid, filtered to the loop's pid
  (-D TARGET_PID), packs the event of bench/throughput.yaml (a few integers
  and the comm); this process decodes it through Sensor.events().
- bare:   BCC alone on the same tracepoint and filter sends a struct of the
  same size, a wake-up every record.WAKEUP_EVERY records (forced on the ring
  buffer), read by bcc's poll and consume; its callback only counts.

Printed per transport and reader, medians of --runs runs: events/s the probe
numbered (produced), that arrived (delivered), that were decoded, and lost
(the probe's drop counters); the reader's CPU (process time over the same
window, % of a core) and events decoded per second of it (what one core
takes, whatever else runs on the machine); whether delivered + lost equals
what the probe numbered in every run; then the ratio decoded / bare of each
run, per second and per CPU-second (medians). The two readers alternate.

    sudo .venv/bin/python bench/throughput.py [--seconds 2] [--runs 5]

Goals (issue 10): >= 500,000 decoded events/s on one core, >= 0.5x the bare
ceiling, and delivered + lost == produced when the producer outruns the reader.
Prints figures; does not assert them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from c_program import compile_c  # bench/, beside this file
from sdxfer import Sensor, record
from sdxfer.sensor import PERF_PAGES, PERF_WAKEUP_EVENTS, check_environment

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "throughput.yaml"
PRODUCER_CPU, READER_CPU = 0, 1

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* getppid_loop SECONDS: once a line arrives on stdin, call getppid() until
 * SECONDS have passed; print "<calls> <elapsed seconds>". */
int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    char go[8];
    if (!fgets(go, sizeof(go), stdin))
        return 1;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long calls = 0;
    double elapsed = 0;
    do {
        for (int i = 0; i < 1024; i++)
            syscall(SYS_getppid);  /* glibc's getppid() may not enter the kernel */
        calls += 1024;
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    } while (elapsed < seconds);
    printf("%ld %.6f\n", calls, elapsed);
    return 0;
}
"""

SDXFER_PROBE = r"""
#include "xfer.h"

TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32 != TARGET_PID)
        return 0;
    char comm[16];
    bpf_get_current_comm(comm, sizeof(comm));
    getppid_call_print(args, pid_tgid >> 32, (__u32)pid_tgid, (__u32)bpf_get_current_uid_gid(),
                       args->__syscall_nr, pid_tgid, comm);
    return 0;
}
"""

# The same tracepoint, filter, record size and wake-up batching, without sdxfer.
BARE_PROBE = r"""
struct bare_event {
    __u64 timestamp_ns;
    __u64 pid_tgid;
    __u32 uid;
    __s32 nr;
    char comm[16];
    __u8 rest[RECORD_SIZE - 40];
};

BPF_PERCPU_ARRAY(bare_scratch, struct bare_event, 1);
BPF_PERCPU_ARRAY(bare_seq, __u64, 1);
#ifdef BARE_RINGBUF
BPF_RINGBUF_OUTPUT(bare_events, RINGBUF_PAGES);
#else
BPF_PERF_OUTPUT(bare_events);
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32 != TARGET_PID)
        return 0;
    __u32 zero = 0;
    struct bare_event *event = bare_scratch.lookup(&zero);
    __u64 *seq = bare_seq.lookup(&zero);
    if (!event || !seq)
        return 0;
    event->timestamp_ns = bpf_ktime_get_ns();
    event->pid_tgid = pid_tgid;
    event->uid = bpf_get_current_uid_gid();
    event->nr = args->__syscall_nr;
    bpf_get_current_comm(event->comm, sizeof(event->comm));
#ifdef BARE_RINGBUF
    /* a forced wake-up: without it the kernel wakes the reader only when it has caught up */
    bare_events.ringbuf_output(event, sizeof(*event), (*seq)++ % WAKEUP_EVERY ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP);
#else
    bare_events.perf_submit(args, event, sizeof(*event));
#endif
    return 0;
}
"""


class Loop:
    """The producer: started waiting, pinned, its pid known before any probe loads."""

    def __init__(self, binary: Path, seconds: float):
        self.proc = subprocess.Popen([str(binary), str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        os.sched_setaffinity(self.proc.pid, {PRODUCER_CPU})
        self.pid = self.proc.pid

    def go(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self) -> tuple[int, float]:
        """(calls, elapsed seconds)."""
        calls, elapsed = self.proc.communicate()[0].split()
        return int(calls), float(elapsed)


def record_size() -> int:
    """Bytes of one sdxfer record of the bench event (its comm is the loop's name, 12 bytes)."""
    from sdxfer.program import schema_code

    cls = schema_code(SCHEMA).decoder.events["getppid_call"]
    return cls.payload_off + len("getppid_loop")


def run_sdxfer(binary: Path, seconds: float, transport: str) -> dict:
    loop = Loop(binary, seconds)
    with Sensor(SDXFER_PROBE, schema=SCHEMA, transport=transport, defines={"TARGET_PID": loop.pid}) as sensor:
        decoded = 0
        cpu_before = time.process_time()
        started = loop.go()
        for _ in sensor.events(stop=lambda: not loop.running()):
            decoded += 1
        window = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        _, elapsed = loop.result()
        decoded_in_window = decoded
        decoded += sum(1 for _ in sensor.decoded(sensor.drain()))
        sequenced = sensor.records_sequenced()
        stats = sensor.stats
    delivered = stats.delivered + stats.undecodable
    return {"elapsed": elapsed, "produced": sequenced / elapsed, "delivered": delivered / elapsed,
            "decoded": decoded_in_window / window, "lost": stats.lost / elapsed, "cpu": cpu / window,
            "per_cpu_second": decoded_in_window / cpu,
            "accounted": delivered + stats.lost == sequenced + stats.nesting_drops}


def run_bare(binary: Path, seconds: float, transport: str, size: int) -> dict:
    from bcc import BPF

    loop = Loop(binary, seconds)
    cflags = [f"-DTARGET_PID={loop.pid}", f"-DRECORD_SIZE={size}", f"-DWAKEUP_EVERY={record.WAKEUP_EVERY}",
              f"-DRINGBUF_PAGES={record.RINGBUF_PAGES}"] + (["-DBARE_RINGBUF"] if transport == "ringbuf" else [])
    bpf = BPF(text=BARE_PROBE, cflags=cflags)
    count = 0

    def counted(*_):
        nonlocal count
        count += 1
        return 0

    table = bpf[b"bare_events"]
    if transport == "ringbuf":
        table.open_ring_buffer(counted)
        poll, consume = bpf.ring_buffer_poll, bpf.ring_buffer_consume
    else:
        # loss is counted as calls not delivered; without lost_cb bcc prints each
        table.open_perf_buffer(counted, page_cnt=PERF_PAGES, wakeup_events=PERF_WAKEUP_EVENTS,
                               lost_cb=lambda _count: None)
        poll, consume = bpf.perf_buffer_poll, bpf.perf_buffer_consume
    cpu_before = time.process_time()
    started = loop.go()
    while loop.running():
        poll(100)
        consume()  # what came without a wake-up (as sdxfer's reader took it before)
    window = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    counted_in_window = count
    calls, elapsed = loop.result()
    consume()  # the rest, as sdxfer's reader drains
    del table  # before cleanup, or bcc's table finalizer trips over the closed map
    bpf.cleanup()
    # every call fires the probe once: what did not arrive was lost
    return {"elapsed": elapsed, "produced": calls / elapsed, "delivered": count / elapsed,
            "decoded": counted_in_window / window, "lost": (calls - count) / elapsed, "cpu": cpu / window,
            "per_cpu_second": counted_in_window / cpu, "accounted": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="of each loop run")
    parser.add_argument("--runs", type=int, default=5, help="per transport and reader (medians are printed)")
    parser.add_argument("--transports", default="perf,ringbuf")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("throughput: run as root (sudo)", file=sys.stderr)
        return 1
    if len(os.sched_getaffinity(0)) < 2:
        print("throughput: needs two CPUs (the loop on one, the reader on the other)", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {READER_CPU})
    os.environ["BCC_KERNEL_SOURCE"] = str(check_environment())  # the bare probe compiles with BCC alone
    size = record_size()
    transports = args.transports.split(",")
    results = {t: {"sdxfer": [], "bare": []} for t in transports}
    with tempfile.TemporaryDirectory() as workdir:
        binary = compile_c(LOOP_C, Path(workdir), "getppid_loop")
        for _ in range(args.runs):
            for transport in transports:  # the two readers alternate, so drift hits both alike
                results[transport]["sdxfer"].append(run_sdxfer(binary, args.seconds, transport))
                results[transport]["bare"].append(run_bare(binary, args.seconds, transport, size))

    print(f"getppid loop on CPU {PRODUCER_CPU}, reader on CPU {READER_CPU}; {size}-byte records; "
          f"{args.seconds:g} s x {args.runs} runs per transport and reader, medians")
    print(f"{'transport':<9} {'reader':<7} {'produced/s':>11} {'delivered/s':>11} {'decoded/s':>10} {'lost/s':>10} "
          f"{'reader CPU':>10} {'per CPU-s':>10}  accounted")
    for transport in transports:
        for reader, runs in results[transport].items():
            def median(key, runs=runs):
                return statistics.median(r[key] for r in runs)

            accounted = "-" if reader == "bare" else "yes" if all(r["accounted"] for r in runs) else "NO"
            decoded = f"{median('decoded'):>10,.0f}" if reader == "sdxfer" else f"{'-':>10}"
            print(f"{transport:<9} {reader:<7} {median('produced'):>11,.0f} {median('delivered'):>11,.0f} {decoded} "
                  f"{median('lost'):>10,.0f} {median('cpu'):>10.0%} {median('per_cpu_second'):>10,.0f}  {accounted}")
    for transport in transports:
        pairs = list(zip(results[transport]["sdxfer"], results[transport]["bare"]))
        wall = statistics.median(ours["decoded"] / bare["delivered"] for ours, bare in pairs)
        per_cpu = statistics.median(ours["per_cpu_second"] / bare["per_cpu_second"] for ours, bare in pairs)
        print(f"{transport}: decoded / bare {wall:.2f}x per second, {per_cpu:.2f}x per CPU-second "
              "(medians of each run's ratio)")
    print("produced: records the probe numbered (bare: the loop's calls); delivered: arrived at the reader; "
          "lost: the\nprobe's drop counters (bare: calls not delivered); per CPU-s: events decoded (bare: "
          "counted) per second of the\nreader's CPU; accounted: delivered + lost == produced in every run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
