"""Kernel cost of execmon's probe per exec, against a floor probe, and what the
probe does to the exec rate.

A C loop fork+execs /bin/true with 10 arguments of 40 bytes (and one
environment entry), and for the continuation records' cost with a 1 MiB argv
(1,024 arguments). Each round runs, on each transport (perf, ringbuf), with a
reader thread draining records:

- floor: bench/exec_floor.bpf.c, the least a probe can do for the same exec
  record: the generated struct sdxfer_exec filled by hand, without the
  packer, at the same raw tracepoint (sched_process_exec), in the one slot it
  sends from: the ids and common fields straight from the task, comm, exe
  (bprm->filename), argv in one bpf_probe_read_user of
  mm->arg_start..arg_end (up to the schema's max), ssh_connection and
  ld_preload by bpf/environ.h's scan, the ancestors walked straight into the
  record, issue 18's common fields (start_ns, loginuid, sessionid, pidns,
  nodename) by the runtime's own source readers; one send through the runtime's slot claim and sdxfer_emit (same
  transport code, batched wake-ups). Its records carry the same values as
  the probe's, but for issue 18's program and context (FLOOR_LEAVES_OUT:
  exe_path, the file run, cwd, tty, fds 0-2), which it does not read;
- bare floor: the floor without what the issue's list leaves out (ids, comm,
  exe, argv only: no environment scan, no ancestors, no pgid, sid, euid,
  cgroup_id, mntns);
- sdxfer: execmon's probe (bpf/hids.bpf.c, exec only) compiled by BCC;
- sdxfer CO-RE: the same probe and defines built by clang into a CO-RE
  object and loaded through libbpf (issue 17: no worse than the BCC build);
- before, before CO-RE: the probe as it was at --before REV (default
  2ebd1f3, the last commit before issue 18's fields; bench/probe_at.py: its
  files and its committed generated xfer.h from git), built and loaded as
  sdxfer and sdxfer CO-RE are. Issue 18's goal (the exec probe at most 1.3x
  its cost before the issue) is judged build against the same build: BCC
  now / BCC before and CO-RE now / CO-RE before, as each pair shares its
  compiler, loader and verifier (a BCC build against a CO-RE one would
  measure the backends, which issue 17 compares);
- the breakdown: execmon's probe built without one part at a time (a
  stand-in from bench/exec_without/ shadowing the probe's header of that
  name, its sdxfer_sources.h with five sources reading 0, or
  -DHIDS_WITHOUT_FAILED_EXECS), and without all of them.

then libbpf-tools' execsnoop, and the 1 MiB argv on both transports. A
baseline run (nothing attached) comes before and after the floors, the probe,
execsnoop and the 1 MiB runs. The floor's and the probe's records are decoded
once per run to check they carry the loop's exec; the CO-RE build's must give
the BCC build's values, and the before builds' records (decoded by their own
schema, which today's Decoder also reads: docs/evolution.md) the same values
in the fields they have. The floor's are compared too; where they differ (a
field added to exec that the floor does not fill yet) it is printed, and
probe / floor is then not of the same record. The floors and the breakdown
are compiled by BCC, as the probe they are measured against.

The verifier: for each program of each build of the probe, the instructions
the kernel's verifier processed to accept it (Sensor.verifier_processed, its
log's "processed N insns") and what is left of its 1,000,000.

Kernel time comes from bpf_stats (run_time_ns over every program of the
tool, divided by the number of execs its once-per-exec program saw; a
tail-called program's time counts in its caller's), held on by a
BPF_ENABLE_STATS fd of the bench's own for the whole run; the rate
ratio is the loop's exec rate with the tool over the mean of the baseline runs
just before and after it, which cancels slow drift on a shared machine.
probe/floor is the median of each round's own ratio; a part's cost is the
median over rounds of the probe minus the probe without that part, in the
same round; CO-RE / BCC is the median of each round's ratio of the two
builds of the probe; "the rest" is the probe without every part minus the bare floor
(the packer, its slots and reads the bare floor does not make).

    sudo .venv/bin/python bench/kernel_cost.py [--seconds 3] [--rounds 3] [--before REV] [--before-only]
                                               [--no-breakdown] [--markdown]

Goals: <= 2000 ns per exec, rate ratio >= 0.98, >= 5x cheaper than
execsnoop (issue 3); probe within 1.2x of the floor on both transports
(issue 10); the CO-RE build at most 1.0x the BCC build's kernel time per exec
(issue 17); each build at most 1.3x its build at 2ebd1f3 (issue 18). Prints
figures; does not assert them. --markdown ends with the issue 18 figures as
a Markdown table.
"""

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from c_program import compile_c
from probe_at import BEFORE_ISSUE_18, ProbeAt, probe_at
from sdxfer import C_INCLUDE_DIR, Sensor, default_decoder
from sdxfer.kernel import libbpf
from sdxfer.kernel.sensor import VERIFIER_LIMIT
from sdxfer.loader import EXEC_ONLY, PROGRAM, probe_source_path

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

BPF_STATS_RUN_TIME = 0  # enum bpf_stats_type
EXECSNOOP = "/usr/sbin/execsnoop"
FLOOR_PROGRAM = Path(__file__).resolve().parent / "exec_floor.bpf.c"
# the floor (the same record) and the bare floor (ids, comm, exe, argv only)
FLOORS = {"floor": {}, "bare floor": {"FLOOR_BARE": None}}
# execmon's probe, by the backend that builds and loads it
PROBES = {"sdxfer": "bcc", "sdxfer CO-RE": "libbpf"}
# the same at --before (bench/probe_at.py), each against today's build by the same backend
BEFORE = {"before": "sdxfer", "before CO-RE": "sdxfer CO-RE"}
BEFORE_GOAL = 1.3  # issue 18: the exec probe at most 1.3x its cost before the issue
TRANSPORTS = ("perf", "ringbuf")
# The breakdown: each part of execmon's probe and what builds the probe
# without it: a stand-in header (bench/exec_without/) shadowing the probe's
# own of that name, sdxfer_sources.h with EXTRA_SOURCES reading 0, or a -D.
WITHOUT_DIR = Path(__file__).resolve().parent / "exec_without"
EXTRA_SOURCES = ("pgid", "sid", "euid", "cgroup_id", "mntns")
PARTS = {
    "environment scan (SSH_CONNECTION, LD_PRELOAD)": "exec_part_env.h",
    "ancestors walk": "exec_part_ancestors.h",
    "common fields pgid sid euid cgroup_id mntns": "sdxfer_sources.h",
    "failed-exec tracepoints (sys_exit_execve*)": "-DHIDS_WITHOUT_FAILED_EXECS",
    "continuation-job bookkeeping": "exec_part_rest.h",
}
WITHOUT_ALL = "without all parts"
RECORDS_KEPT = 64  # of each run, the newest, to check one is the loop's exec


@contextlib.contextmanager
def bpf_stats():
    """Every BPF program's run time counted while the block runs, held on by a
    BPF_ENABLE_STATS fd of this process: the sysctl kernel.bpf_stats_enabled
    is one switch for the machine, which another bench ending turns off."""
    fd = ctypes.CDLL(libbpf.LIBRARY, use_errno=True).bpf_enable_stats(BPF_STATS_RUN_TIME)
    if fd < 0:
        sys.exit(f"cannot turn bpf_stats on: {os.strerror(-fd)}")
    try:
        yield
    finally:
        os.close(fd)


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


def open_sensor(variant: str, transport: str, before: ProbeAt | None = None) -> Sensor:
    """The floor, execmon's probe (a PROBES key) or the probe at `before`
    (a BEFORE key, built as its PROBES counterpart), or the probe without one
    part (a PARTS key) or without them all (WITHOUT_ALL); all but the CO-RE
    builds compiled by BCC."""
    if variant in BEFORE:
        return Sensor(before.text, schema=before.schema, transport=transport, defines=EXEC_ONLY,
                      backend=PROBES[BEFORE[variant]], quiet=True)
    if variant in FLOORS:
        exec_event = default_decoder().events["exec"]
        defines = {"FLOOR_FINGERPRINT": exec_event.fingerprint, "FLOOR_VERSION": len(exec_event.versions),
                   "FLOOR_FIXED_SIZE": exec_event.versions[-1].payload_off}
        return Sensor(FLOOR_PROGRAM, transport=transport, defines={**defines, **FLOORS[variant]}, backend="bcc")
    if variant in PROBES:
        return Sensor(PROGRAM, transport=transport, defines=EXEC_ONLY, backend=PROBES[variant], quiet=True)
    parts = list(PARTS.values()) if variant == WITHOUT_ALL else [PARTS[variant]]
    defines = {**EXEC_ONLY, **{part[2:]: None for part in parts if part.startswith("-D")}}
    with tempfile.TemporaryDirectory(prefix="kernel_cost-") as folder:
        return Sensor(probe_without(Path(folder), parts), transport=transport, defines=defines, backend="bcc")


def probe_without(folder: Path, parts: list[str]) -> Path:
    """execmon's probe, from a folder whose headers shadow the probe's own of
    the same name (a program's folder comes first on its include path)."""
    for part in parts:
        if part == "sdxfer_sources.h":
            (folder / part).write_text(sources_reading_zero())
        elif not part.startswith("-D"):
            shutil.copy(WITHOUT_DIR / part, folder / part)
    program = folder / "exec_without.bpf.c"
    program.write_text(f'#include "{probe_source_path().name}"\n')
    return program


def sources_reading_zero() -> str:
    """The runtime's sdxfer_sources.h with each of EXTRA_SOURCES returning 0."""
    text = (C_INCLUDE_DIR / "sdxfer_sources.h").read_text()
    for name in EXTRA_SOURCES:
        text, found = re.subn(rf"(sdxfer_source_{name}\(const struct sdxfer_current \*now\)\n\{{\n).*?\n\}}",
                              r"\1    (void)now;\n    return 0;\n}", text, flags=re.DOTALL)
        if found != 1:
            sys.exit(f"kernel_cost: sdxfer_source_{name} not found in sdxfer_sources.h")
    return text


def loop_exec(sensor: Sensor, raw: deque, args: list[str], name: str):
    """The newest record that decodes as the loop's exec; exits if none does."""
    wanted = ["/bin/true", *args]
    for event in reversed(list(sensor.decoded(list(raw)))):
        if event.argv == wanted and event.exe == "/bin/true":
            return event
    sys.exit(f"kernel_cost: {name} sent no exec record with the loop's exe and argv")


# an exec record's values that depend on which exec of which loop run sent it
PER_EXEC = ("timestamp_ns", "seq", "cpu", "pid", "tid", "ppid", "start_ns",
            "stdout")  # each loop run writes its count to a pipe of its own
# What the floor leaves out of the record: issue 18's program and context
# (path walks, the terminal, fds 0-2), whose cost is the probe's against
# itself before issue 18, not against issue 10's floor.
FLOOR_LEAVES_OUT = ("exe_path", "exe_ino", "exe_dev", "exe_memfd", "exe_deleted", "stdio_remote", "stdio_local",
                    "cwd", "tty", "stdin", "stdout", "stderr")


def same_record_values(event) -> dict:
    """What the floor's record and the probe's must agree on."""
    values = {key: value for key, value in event.to_dict().items() if key not in PER_EXEC}
    values["ancestors"] = [{**ancestor, "pid": None} if i == 0 else ancestor  # the loop run itself
                           for i, ancestor in enumerate(values["ancestors"] or [])]
    return values


def measure_sdxfer(binary: Path, seconds: float, variant: str, transport: str, args=TEN_ARGS_OF_40,
                   before: ProbeAt | None = None) -> tuple[float, float, float, dict | None, dict[str, int]]:
    """(kernel ns per exec, execs/s, share of records lost, the loop exec's
    same_record_values or None for 1 MiB runs, instructions the verifier
    processed per program): a probe that drops records (a full buffer) costs
    less than one that sends them all."""
    with open_sensor(variant, transport, before) as sensor:
        processed = sensor.verifier_processed()
        stop = threading.Event()
        raw = deque(maxlen=RECORDS_KEPT)
        reader = threading.Thread(target=lambda: raw.extend(r for r in sensor.records(stop.is_set) if r.data),
                                  daemon=True)
        reader.start()
        stats_before = prog_stats(os.getpid())
        rate = run_loop(binary, seconds, args)
        stats_after = prog_stats(os.getpid())
        stop.set()
        reader.join()
        values = None
        if args is TEN_ARGS_OF_40:  # 1 MiB records need their continuations
            values = same_record_values(loop_exec(sensor, raw, args, f"{variant} {transport}"))
        sensor.drain()
        lost = sensor.stats.lost + sensor.stats.continuations_lost
        sequenced = sensor.records_sequenced()
    return per_exec_ns(stats_before, stats_after), rate, lost / sequenced if sequenced else 0.0, values, processed


def differing_values(values: dict[tuple, dict | None], other: str, transport: str, keys=None) -> str:
    """Where `other`'s exec record differs from the BCC build's (on `keys`, else
    every field of the BCC build's), as one line; "" where it does not."""
    probe, theirs = values[("sdxfer", transport, "")], values[(other, transport, "")]
    return ", ".join(f"{key} {theirs.get(key)!r} != {probe.get(key)!r}"
                     for key in sorted(keys or probe) if theirs.get(key) != probe.get(key))


def check_record_values(values: dict[tuple, dict | None]) -> str:
    """Exits unless the CO-RE build's record carries the BCC build's values
    and the records of the probe at --before those of its fields (decoded by
    its own schema); on each transport. Returns where the floor's differs (a
    field it does not fill: probe / floor is then not of the same record)."""
    floor = []
    for transport in TRANSPORTS:
        for other in ("sdxfer CO-RE", *BEFORE):
            fields = values[(other, transport, "")] if other in BEFORE else None
            differing = differing_values(values, other, transport, fields)
            if differing:
                sys.exit(f"kernel_cost: the {other} exec record differs from the probe's ({transport}) in: {differing}")
        probe_keys = set(values[("sdxfer", transport, "")]) - set(FLOOR_LEAVES_OUT)
        differing = differing_values(values, "floor", transport, probe_keys) if ("floor", transport, "") in values else ""
        if differing:
            floor.append(f"{transport}: {differing}")
    return "; ".join(floor)


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


def median_of(rows, column: int) -> float:
    return statistics.median(row[column] for row in rows)


def build_name(variant: str) -> str:
    return "CO-RE" if PROBES[BEFORE.get(variant, variant)] == "libbpf" else "BCC"


def print_verifier(processed: dict[tuple, dict[str, int]], revision: str) -> None:
    """Per program of the exec probe, per build (ring buffer), what the verifier
    processed and what is left of its budget."""
    builds = [*PROBES, *BEFORE]
    names = sorted({name for build in builds for name in processed.get((build, "ringbuf"), {})})
    print(f"verifier: instructions processed per program (ring buffer builds; before: at {revision}), "
          f"and the budget left of {VERIFIER_LIMIT:,}")
    print(f"{'program':<42} " + " ".join(f"{build:>22}" for build in builds))
    for name in names:
        cells = []
        for build in builds:
            n = processed.get((build, "ringbuf"), {}).get(name)
            cells.append("-" if n is None else f"{n:,} ({VERIFIER_LIMIT - n:,} left)")
        print(f"{name:<42} " + " ".join(f"{cell:>22}" for cell in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each exec loop")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases")
    parser.add_argument("--before", default=BEFORE_ISSUE_18, metavar="REV",
                        help=f"the git revision whose probe the before variants load (default {BEFORE_ISSUE_18}: "
                             "the last before issue 18)")
    parser.add_argument("--no-breakdown", action="store_true", help="leave out the breakdown by part (faster)")
    parser.add_argument("--before-only", action="store_true",
                        help="only issue 18's comparison: today's builds and those at --before (no floors, "
                             "execsnoop, 1 MiB runs or breakdown)")
    parser.add_argument("--markdown", action="store_true",
                        help="end with the exec costs now and at --before as a Markdown table")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("kernel_cost: run as root (sudo)", file=sys.stderr)
        return 1
    # (variant, transport, argv size): the first ones with baseline runs on either side
    compared = [(v, t, "") for t in TRANSPORTS for v in (*PROBES, *BEFORE)]
    breakdown = []
    if not args.before_only:
        compared = [(v, t, "") for t in TRANSPORTS for v in (*FLOORS, *PROBES, *BEFORE)]
        compared += [("execsnoop", "", "")] if shutil.which(EXECSNOOP) else []
        compared += [("sdxfer", t, "1MiB") for t in TRANSPORTS]
        if not args.no_breakdown:
            breakdown = [(v, t, "") for t in TRANSPORTS for v in (*PARTS, WITHOUT_ALL)]
    baselines: dict[str, list[float]] = {"": [], "1MiB": []}
    # phase -> per round (kernel ns per exec, execs/s, rate over the baselines just before and after or None,
    # share of records lost)
    results: dict[tuple, list[tuple[float, float, float | None, float]]] = {p: [] for p in compared + breakdown}
    values: dict[tuple, dict | None] = {}  # phase -> the loop exec's same_record_values
    processed: dict[tuple, dict[str, int]] = {}  # (variant, transport) -> program -> verifier's instructions
    with bpf_stats(), tempfile.TemporaryDirectory() as workdir:
        binary = build_exec_loop(Path(workdir))
        then = probe_at(args.before, Path(workdir))
        for round_number in range(1, args.rounds + 1):
            for phase in compared + breakdown:
                variant, transport, size = phase
                loop_args = ONE_MIB if size else TEN_ARGS_OF_40
                before = run_loop(binary, args.seconds, loop_args) if phase in compared else None
                if variant == "execsnoop":
                    cost, rate = measure_execsnoop(binary, args.seconds)
                    lost = float("nan")
                else:
                    cost, rate, lost, values[phase], processed[(variant, transport)] = measure_sdxfer(
                        binary, args.seconds, variant, transport, loop_args, then)
                ratio = None
                if before is not None:
                    after = run_loop(binary, args.seconds, loop_args)
                    baselines[size] += [before, after]
                    ratio = rate / ((before + after) / 2)
                results[phase].append((cost, rate, ratio, lost))
            floor_differs = check_record_values(values)
            print(f"round {round_number}/{args.rounds} done", file=sys.stderr)

    print(f"exec loop: /bin/true + 10 x 40-byte arguments (1MiB: a 1 MiB argv), {args.seconds:g} s per run, "
          f"{args.rounds} rounds; medians; rate ratio against the baseline runs on either side")
    print(f"{'tool':<20} {'kernel ns/exec':>15} {'execs/s':>9} {'rate ratio':>11} {'records lost':>13}")
    print(f"{'(none)':<20} {'-':>15} {statistics.median(baselines['']):>9.0f} {1.0:>11.3f}")
    if baselines["1MiB"]:
        print(f"{'(none) 1MiB':<20} {'-':>15} {statistics.median(baselines['1MiB']):>9.0f} {1.0:>11.3f}")
    for phase in compared:
        rows = results[phase]
        name = " ".join(part for part in phase if part)
        print(f"{name:<20} {median_of(rows, 0):>15.0f} {median_of(rows, 1):>9.0f} {median_of(rows, 2):>11.3f}"
              f" {median_of(rows, 3):>13.1%}")
    def per_round(variant: str, transport: str) -> list[float]:
        return [row[0] for row in results[(variant, transport, "")]]

    def median_difference(minuend: str, subtrahend: str, transport: str) -> float:
        return statistics.median(a - b for a, b in zip(per_round(minuend, transport), per_round(subtrahend, transport)))

    def median_ratio(floor: str, transport: str, probe: str = "sdxfer") -> float:
        return statistics.median(p / f for p, f in zip(per_round(probe, transport), per_round(floor, transport)))

    if not args.before_only:  # issues 3, 10 and 17
        if ("execsnoop", "", "") in results:
            execsnoop = median_of(results[("execsnoop", "", "")], 0)
            for transport in TRANSPORTS:
                times = execsnoop / median_of(results[("sdxfer", transport, "")], 0)
                print(f"execsnoop / sdxfer {transport}: {times:.1f}x kernel time per exec")
        print("probe / floor (median of each round's ratio; goal <= 1.2): "
              + ", ".join(f"{t} {median_ratio('floor', t):.2f}" for t in TRANSPORTS))
        print("CO-RE / BCC build of the probe, kernel time per exec (median of each round's ratio; goal <= 1.0): "
              + ", ".join(f"{t} {median_ratio('sdxfer', t, 'sdxfer CO-RE'):.2f}" for t in TRANSPORTS))
        if floor_differs:
            print(f"(the floor's record differs from the probe's, so probe / floor is not of the same record: "
                  f"{floor_differs})")
        print("probe / bare floor (ids, comm, exe, argv only; not the same record): "
              + ", ".join(f"{t} {median_ratio('bare floor', t):.2f}" for t in TRANSPORTS))
        print("where the probe's time beyond the bare floor goes, ns per exec (median over rounds of the probe minus "
              "the probe without the part, same round):")
        if not breakdown:
            print("(no breakdown: --no-breakdown)")
        print(f"{'part':<58} " + " ".join(f"{t:>8}" for t in TRANSPORTS))
        rows = []
        if breakdown:
            rows = [(part, [median_difference("sdxfer", part, t) for t in TRANSPORTS]) for part in PARTS]
            rows.append(("all of them at once", [median_difference("sdxfer", WITHOUT_ALL, t) for t in TRANSPORTS]))
            rows.append(("the rest (probe without them all - bare floor)",
                         [median_difference(WITHOUT_ALL, "bare floor", t) for t in TRANSPORTS]))
        rows.append(("floor - bare floor (the same record's parts, floor's way)",
                     [median_difference("floor", "bare floor", t) for t in TRANSPORTS]))
        rows.append(("probe - floor", [median_difference("sdxfer", "floor", t) for t in TRANSPORTS]))
        for name, costs in rows:
            print(f"{name:<58} " + " ".join(f"{v:>8.0f}" for v in costs))
        print("goals: <= 2000 ns/exec, rate ratio >= 0.98, >= 5x cheaper than execsnoop, probe / floor <= 1.2, "
              "CO-RE / BCC <= 1.0")
    print()
    before_rows = [(then_variant, now_variant, transport, statistics.median(per_round(now_variant, transport)),
                    statistics.median(per_round(then_variant, transport)),
                    median_ratio(then_variant, transport, now_variant))
                   for transport in TRANSPORTS for then_variant, now_variant in BEFORE.items()]
    print(f"issue 18: the exec probe now against at {args.before} (bench/probe_at.py), each built and loaded the "
          f"same way; kernel ns per exec, medians; ratio: median of each round's; goal <= {BEFORE_GOAL}")
    print(f"{'build':<6} {'transport':<9} {'ns now':>8} {'ns before':>10} {'ratio':>6}  goal")
    for _, now_variant, transport, now_ns, then_ns, ratio in before_rows:
        print(f"{build_name(now_variant):<6} {transport:<9} {now_ns:>8.0f} {then_ns:>10.0f} {ratio:>6.2f}  "
              f"{'met' if ratio <= BEFORE_GOAL else 'not met'}")
    print()
    print_verifier(processed, args.before)
    if args.markdown:
        print()
        print(f"| exec probe (build, transport) | ns per exec | before issue 18 ({args.before}) "
              f"| ratio (goal <= {BEFORE_GOAL}) |")
        print("|---|---:|---:|---:|")
        for _, now_variant, transport, now_ns, then_ns, ratio in before_rows:
            print(f"| {build_name(now_variant)}, {transport} | {now_ns:,.0f} | {then_ns:,.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
