"""Kernel cost of execmon's probe per exec, and what it does to the exec rate.

A C loop fork+execs /bin/true with 10 arguments of 40 bytes, and for the
continuation records' cost with a 1 MiB argv (1,024 arguments). Each round runs
the sdxfer probe on each transport (with a reader thread draining it) and
libbpf-tools' execsnoop, with a baseline run (nothing attached) between any
two. Kernel time comes from bpf_stats (run_time_ns over every program of the
tool, divided by the number of execs its once-per-exec program saw; a
tail-called program's time counts in its caller's); the rate
ratio is the loop's exec rate with the tool over the mean of the baseline runs
just before and after it, which cancels slow drift on a shared machine.

    sudo .venv/bin/python bench/kernel_cost.py [--seconds 3] [--rounds 3]

Goals (issue 3): <= 2000 ns per exec, rate ratio >= 0.98, >= 5x cheaper than
execsnoop. Prints figures; does not assert them.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from c_program import compile_c
from sdxfer.loader import ExecProbe

EXEC_LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* exec_loop SECONDS [ARG...]: fork+exec /bin/true ARG... until SECONDS have
 * passed; print "<execs> <elapsed seconds>". */
int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    char **child_argv = argc > 1 ? argv + 1 : argv;
    child_argv[0] = "/bin/true";
    char *child_env[] = {"PATH=/usr/bin:/bin", NULL};

    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long execs = 0;
    double elapsed = 0;
    do {
        pid_t pid = fork();
        if (pid == 0) {
            execve("/bin/true", child_argv, child_env);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
        execs++;
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    } while (elapsed < seconds);
    printf("%ld %.6f\n", execs, elapsed);
    return 0;
}
"""
TEN_ARGS_OF_40 = [("abcdefghijklmnopqrstuvwxyz" * 2)[:40]] * 10
# 1 MiB with /bin/true and the NULs: 16 KiB in the record, the rest in continuations
ONE_MIB = [f"{i:04d}".ljust(1023, "m") for i in range(1023)] + ["m" * 1013]
assert len("/bin/true") + 1 + sum(len(a) + 1 for a in ONE_MIB) == 1 << 20

BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
EXECSNOOP = "/usr/sbin/execsnoop"


def build_exec_loop(workdir: Path) -> Path:
    return compile_c(EXEC_LOOP_C, workdir, "exec_loop")


def start_loop(binary: Path, seconds: float, args=TEN_ARGS_OF_40) -> subprocess.Popen:
    return subprocess.Popen([str(binary), str(seconds), *args], stdout=subprocess.PIPE, text=True)


def loop_result(loop: subprocess.Popen) -> tuple[int, float]:
    """(execs, elapsed seconds) of a finished loop."""
    execs, elapsed = loop.communicate()[0].split()
    return int(execs), float(elapsed)


def run_loop(binary: Path, seconds: float, args=TEN_ARGS_OF_40) -> float:
    execs, elapsed = loop_result(start_loop(binary, seconds, args))
    return execs / elapsed


def prog_stats(pid: int) -> dict[int, tuple[int, int]]:
    """prog_id -> (run_time_ns, run_cnt) for every BPF program the process holds open."""
    stats = {}
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if "prog_id" in fields and "run_time_ns" in fields:
            stats[int(fields["prog_id"])] = (int(fields["run_time_ns"]), int(fields["run_cnt"]))
    return stats


def per_exec_ns(before, after) -> float:
    """Kernel ns per exec: all programs' time over the once-per-exec program's
    count (the fewest runs of any that ran: the continuation sender runs
    several times for a long argv)."""
    time_ns = sum(after[p][0] - before[p][0] for p in before)
    runs = [after[p][1] - before[p][1] for p in before if after[p][1] > before[p][1]]
    return time_ns / min(runs) if runs else float("nan")


def measure_sdxfer(binary: Path, seconds: float, transport: str, args=TEN_ARGS_OF_40) -> tuple[float, float, float]:
    """(kernel ns per exec, execs/s, share of records lost): a probe that
    drops records (a full buffer) costs less than one that sends them all."""
    with ExecProbe(transport=transport) as probe:
        stop = threading.Event()
        reader = threading.Thread(target=lambda: [None for _ in probe.records(stop.is_set)], daemon=True)
        reader.start()
        before = prog_stats(os.getpid())
        rate = run_loop(binary, seconds, args)
        after = prog_stats(os.getpid())
        stop.set()
        reader.join()
        probe.drain()
        lost = probe.stats.lost + probe.stats.continuations_lost
        sequenced = probe.records_sequenced()
    return per_exec_ns(before, after), rate, lost / sequenced if sequenced else 0.0


def measure_execsnoop(binary: Path, seconds: float) -> tuple[float, float]:
    tool = subprocess.Popen([EXECSNOOP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not prog_stats(tool.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # attached after its programs are loaded
        before = prog_stats(tool.pid)
        rate = run_loop(binary, seconds)
        after = prog_stats(tool.pid)
    finally:
        tool.terminate()
        tool.wait()
    return per_exec_ns(before, after), rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each exec loop")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("kernel_cost: run as root (sudo)", file=sys.stderr)
        return 1
    phases = ["sdxfer perf", "sdxfer ringbuf"] + (["execsnoop"] if shutil.which(EXECSNOOP) else [])
    phases += ["sdxfer perf 1MiB", "sdxfer ringbuf 1MiB"]
    baselines: dict[str, list[float]] = {"": [], "1MiB": []}
    # phase -> [(kernel ns per exec, execs/s, rate over the baselines run just before and after, records lost)]
    results: dict[str, list[tuple[float, float, float]]] = {phase: [] for phase in phases}
    stats_were = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    try:
        with tempfile.TemporaryDirectory() as workdir:
            binary = build_exec_loop(Path(workdir))
            for round_number in range(1, args.rounds + 1):
                for phase in phases:
                    size = "1MiB" if phase.endswith("1MiB") else ""
                    loop_args = ONE_MIB if size else TEN_ARGS_OF_40
                    before = run_loop(binary, args.seconds, loop_args)
                    if phase == "execsnoop":
                        cost, rate = measure_execsnoop(binary, args.seconds)
                        lost = float("nan")
                    else:
                        cost, rate, lost = measure_sdxfer(binary, args.seconds, phase.split()[1], loop_args)
                    after = run_loop(binary, args.seconds, loop_args)
                    baselines[size] += [before, after]
                    results[phase].append((cost, rate, rate / ((before + after) / 2), lost))
                print(f"round {round_number}/{args.rounds} done", file=sys.stderr)
    finally:
        BPF_STATS.write_text(stats_were)

    print(f"exec loop: /bin/true + 10 x 40-byte arguments (1MiB: a 1 MiB argv), {args.seconds:g} s per run, "
          f"{args.rounds} rounds; medians; rate ratio against the baseline runs on either side")
    print(f"{'tool':<20} {'kernel ns/exec':>15} {'execs/s':>9} {'rate ratio':>11} {'records lost':>13}")
    print(f"{'(none)':<20} {'-':>15} {statistics.median(baselines['']):>9.0f} {1.0:>11.3f}")
    print(f"{'(none) 1MiB':<20} {'-':>15} {statistics.median(baselines['1MiB']):>9.0f} {1.0:>11.3f}")
    costs = {}
    for phase, rows in results.items():
        costs[phase] = statistics.median(r[0] for r in rows)
        rate = statistics.median(r[1] for r in rows)
        ratio = statistics.median(r[2] for r in rows)
        lost = statistics.median(r[3] for r in rows)
        print(f"{phase:<20} {costs[phase]:>15.0f} {rate:>9.0f} {ratio:>11.3f} {lost:>13.1%}")
    if "execsnoop" in costs:
        for phase in ("sdxfer perf", "sdxfer ringbuf"):
            print(f"execsnoop / {phase}: {costs['execsnoop'] / costs[phase]:.1f}x kernel time per exec")
    print("goals: <= 2000 ns/exec, rate ratio >= 0.98, >= 5x cheaper than execsnoop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
