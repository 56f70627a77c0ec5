"""Kernel cost of execmon's probe per exec, and what it does to the exec rate.

A C loop fork+execs /bin/true with 10 arguments of 40 bytes. Phases run in
rounds: nothing attached (baseline), the sdxfer probe on each transport (with a
reader thread draining it), and libbpf-tools' execsnoop. Kernel time comes
from bpf_stats (run_time_ns over every program of the tool, divided by the
number of execs its once-per-exec program saw); the rate ratio is the loop's
exec rate with the tool over the baseline's median.

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

BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")
EXECSNOOP = "/usr/sbin/execsnoop"


def build_exec_loop(workdir: Path) -> Path:
    source = workdir / "exec_loop.c"
    binary = workdir / "exec_loop"
    source.write_text(EXEC_LOOP_C)
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def start_loop(binary: Path, seconds: float, args=TEN_ARGS_OF_40) -> subprocess.Popen:
    return subprocess.Popen([str(binary), str(seconds), *args], stdout=subprocess.PIPE, text=True)


def loop_result(loop: subprocess.Popen) -> tuple[int, float]:
    """(execs, elapsed seconds) of a finished loop."""
    execs, elapsed = loop.communicate()[0].split()
    return int(execs), float(elapsed)


def run_loop(binary: Path, seconds: float) -> float:
    execs, elapsed = loop_result(start_loop(binary, seconds))
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
    """Kernel ns per exec: all programs' time over the once-per-exec program's count."""
    time_ns = sum(after[p][0] - before[p][0] for p in before)
    runs = max(after[p][1] - before[p][1] for p in before)
    return time_ns / runs if runs else float("nan")


def measure_sdxfer(binary: Path, seconds: float, transport: str) -> tuple[float, float]:
    with ExecProbe(transport=transport) as probe:
        stop = threading.Event()
        reader = threading.Thread(target=lambda: [None for _ in probe.records(stop.is_set)], daemon=True)
        reader.start()
        before = prog_stats(os.getpid())
        rate = run_loop(binary, seconds)
        after = prog_stats(os.getpid())
        stop.set()
        reader.join()
    return per_exec_ns(before, after), rate


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
    baseline: list[float] = []
    results: dict[str, list[tuple[float, float]]] = {phase: [] for phase in phases}
    stats_were = BPF_STATS.read_text().strip()
    BPF_STATS.write_text("1")
    try:
        with tempfile.TemporaryDirectory() as workdir:
            binary = build_exec_loop(Path(workdir))
            for round_number in range(1, args.rounds + 1):
                baseline.append(run_loop(binary, args.seconds))
                for phase in phases:
                    if phase == "execsnoop":
                        results[phase].append(measure_execsnoop(binary, args.seconds))
                    else:
                        results[phase].append(measure_sdxfer(binary, args.seconds, phase.split()[1]))
                print(f"round {round_number}/{args.rounds} done", file=sys.stderr)
    finally:
        BPF_STATS.write_text(stats_were)

    base_rate = statistics.median(baseline)
    print(f"exec loop: /bin/true + 10 x 40-byte arguments, {args.seconds:g} s x {args.rounds} rounds")
    print(f"{'tool':<16} {'kernel ns/exec':>15} {'execs/s':>9} {'rate ratio':>11}")
    print(f"{'(none)':<16} {'-':>15} {base_rate:>9.0f} {1.0:>11.3f}")
    medians = {}
    for phase, rows in results.items():
        cost = statistics.median(r[0] for r in rows)
        rate = statistics.median(r[1] for r in rows)
        medians[phase] = cost
        print(f"{phase:<16} {cost:>15.0f} {rate:>9.0f} {rate / base_rate:>11.3f}")
    if "execsnoop" in medians:
        for phase in ("sdxfer perf", "sdxfer ringbuf"):
            print(f"execsnoop / {phase}: {medians['execsnoop'] / medians[phase]:.1f}x kernel time per exec")
    print("goals: <= 2000 ns/exec, rate ratio >= 0.98, >= 5x cheaper than execsnoop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
