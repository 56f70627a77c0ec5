"""Start-up of execmon and hidsmon (every event), libbpf against BCC, side by
side in one run (issue 17).

Tools: each round starts the real tool (the console script beside this
Python) with --json and --backend libbpf or bcc, waits for its banner on
stderr ("... Ctrl+C to stop"), runs /bin/true MARKER (again every 0.5 s
until seen: a full buffer on a busy host may drop one), and takes the time
from just before Popen to the first stdout line holding MARKER (first event); then
sends SIGINT and takes the time until the tool has exited. A tool without
--backend (before the prebuilt objects landed) is run once per round on its
own default path, said so in the table, and the ratio and goals are taken
from the in-process runs.

In-process, the same probe and defines as each tool (bpf/hids.bpf.c: exec
only without failed execs for execmon, every event for hidsmon) through
Sensor(..., backend=...): its phases (open: BCC's assembly and compile, or
libbpf's open of the clang-built object; load and verify; attach), then the
first event of /bin/true MARKER run after it returned, and close.

Backends alternate within each round, so slow drift of this shared machine
falls on both. One round of each, not counted, comes first, so both start
warm: the clang-built object in the user's cache folder (where the tool
builds from C text), the kernel headers, the page cache. --cold gives every
libbpf run an empty object cache instead (a fresh XDG_CACHE_HOME: clang
builds the object again; the per-kernel vmlinux.h from bpftool stays).

    sudo .venv/bin/python bench/startup.py [--rounds 5] [--cold] [--tools execmon,hidsmon] [--bin DIR]

Goals: from process start to the first event, execmon <= 0.5 s and hidsmon
(every event) <= 1 s, each >= 5x faster than BCC; Ctrl+C to exit <= 0.5 s.
Prints whether each is met; exits non-zero only when a run fails (a tool
that errors, no banner or no event within the deadline, no exit after
Ctrl+C), never for a goal missed.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from sdxfer import ProbeError, Sensor, default_decoder
from sdxfer.kernel.probes import PROGRAM, defines_for

BACKENDS = ("libbpf", "bcc")
DEADLINE_S = 120  # for a banner, an event or an exit: BCC compiles take seconds on a busy machine
BANNER_END = b"Ctrl+C to stop"
# goals (issue 17): first event at most this many seconds, with every event for hidsmon
FIRST_EVENT_GOAL_S = {"execmon": 0.5, "hidsmon": 1.0}
SPEED_UP_GOAL = 5.0  # BCC / libbpf, first event
EXIT_GOAL_S = 0.5


class Failure(Exception):
    """A run that did not work (as opposed to a goal missed)."""


def tool_events(tool: str) -> list[str]:
    return ["exec"] if tool == "execmon" else list(default_decoder().events)


def tool_defines(tool: str) -> dict:
    """What each tool compiles by default: execmon leaves out the failed-exec programs without -x."""
    return defines_for(tool_events(tool), failed_execs=tool != "execmon")


TOOLS_DIR = Path(sys.executable).parent  # where the console scripts are (--bin)


def tool_command(tool: str) -> list[str]:
    script = TOOLS_DIR / tool
    return [str(script)] if script.exists() else [sys.executable, "-m", f"sdxfer.tools.{tool}"]


def accepts_backend(tool: str) -> bool:
    shown = subprocess.run([*tool_command(tool), "--help"], capture_output=True, text=True, timeout=DEADLINE_S)
    return "--backend" in shown.stdout


class Action:
    """/bin/true MARKER, run now and again every RETRY_S until its event is
    seen: on a busy host a full buffer may drop one (the wait then counts)."""

    RETRY_S = 0.5

    def __init__(self, marker: str):
        self.marker = marker
        self.deadline = time.monotonic() + DEADLINE_S
        self.run()

    def run(self) -> None:
        self.ran_at = time.monotonic()
        subprocess.run(["/bin/true", self.marker], check=True)

    def again_if_due(self) -> bool:
        """Runs it again if RETRY_S have passed; False once past the deadline."""
        if time.monotonic() - self.ran_at >= self.RETRY_S:
            self.run()
        return time.monotonic() < self.deadline


@contextmanager
def object_cache(cold: bool):
    """With cold, an empty object cache for this process and the tools it starts."""
    if not cold:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="startup-cache-") as folder, mock.patch.dict(os.environ,
                                                                                       XDG_CACHE_HOME=folder):
        yield


class Lines(threading.Thread):
    """Reads a pipe to its end, line by line, noting when the first line holding `wanted` came."""

    def __init__(self, pipe, wanted: bytes):
        super().__init__(daemon=True)
        self.pipe, self.wanted = pipe, wanted
        self.kept: list[bytes] = []  # the first lines, for messages
        self.seen_at: float | None = None
        self.seen = threading.Event()
        self.start()

    def run(self):
        for line in self.pipe:
            if len(self.kept) < 20:
                self.kept.append(line)
            if self.seen_at is None and self.wanted in line:
                self.seen_at = time.monotonic()
                self.seen.set()
        self.seen.set()  # the end: whoever waits looks at seen_at

    def wait(self, timeout: float = DEADLINE_S) -> float | None:
        """When the wanted line came, or None (not yet, or the pipe ended without it)."""
        self.seen.wait(timeout)
        return self.seen_at

    def text(self) -> str:
        return b"".join(self.kept).decode(errors="replace").strip()


def tool_run(tool: str, backend: str | None, marker: str) -> dict:
    """Seconds from process start to the banner and to MARKER's event, and from SIGINT to exit."""
    command = [*tool_command(tool), "--json", *(["--backend", backend] if backend else [])]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = Lines(process.stdout, marker.encode()), Lines(process.stderr, BANNER_END)
    try:
        banner_at = stderr.wait()
        if banner_at is None:
            raise Failure(f"{' '.join(command)}: no banner within {DEADLINE_S} s: {stderr.text()}")
        action = Action(marker)
        while (event_at := stdout.wait(Action.RETRY_S)) is None:
            if process.poll() is not None or not action.again_if_due():
                break
        if event_at is None:
            raise Failure(f"{' '.join(command)}: no event of /bin/true {marker} within {DEADLINE_S} s:"
                          f" {stderr.text()}")
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        status = process.wait(DEADLINE_S)
        exited = time.monotonic()
        if status != 0:
            raise Failure(f"{' '.join(command)}: exit status {status} after Ctrl+C: {stderr.text()}")
    except subprocess.TimeoutExpired:
        raise Failure(f"{' '.join(command)}: still running {DEADLINE_S} s after Ctrl+C") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout.join(), stderr.join()
    return {"banner": banner_at - started, "first event": event_at - started, "exit": exited - interrupted,
            "stderr": stderr.text()}


def in_process_run(tool: str, backend: str, marker: str) -> dict:
    """The Sensor's phases, the first event of MARKER after it returned, and close."""
    started = time.monotonic()
    with Sensor(PROGRAM, defines=tool_defines(tool), backend=backend, quiet=True) as sensor:
        action = Action(marker)
        for event in sensor.events(lambda: not action.again_if_due()):
            if event.name == "exec" and marker in (event.argv or ()):
                break
        else:
            raise Failure(f"in-process {tool} ({backend}): no event of /bin/true {marker} within {DEADLINE_S} s")
        first_event = time.monotonic() - started
        programs = sensor.programs_attached
        closing = time.monotonic()
    return {**sensor.phases, "first event": first_event, "close": time.monotonic() - closing, "programs": programs}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


HEADINGS = {"load": "load+verify"}  # Sensor.phases["load"]: relocation and the verifier


def print_table(title: str, columns: list[str], runs: dict[tuple, list[dict]], tools: list[str]) -> None:
    """Medians by tool and backend (None: the tool's default, it has no --backend), and bcc/libbpf."""
    print(title)
    print(f"{'tool':<9} {'backend':<10} " + " ".join(f"{HEADINGS.get(c, c):>12}" for c in columns))
    for tool in tools:
        backends = [backend for backend in (*BACKENDS, None) if (tool, backend) in runs]
        for backend in backends:
            rows = runs[(tool, backend)]
            print(f"{tool:<9} {backend or 'default':<10} " + " ".join(f"{median(rows, c):>11.3f}s" for c in columns))
        if backends == list(BACKENDS):
            print(f"{tool:<9} {'bcc/libbpf':<10} " + " ".join(ratio(runs, tool, c) for c in columns))


def ratio(runs: dict[tuple, list[dict]], tool: str, column: str) -> str:
    """bcc/libbpf, or - where either took under a millisecond (BCC loads as it attaches)."""
    bcc, libbpf = median(runs[(tool, "bcc")], column), median(runs[(tool, "libbpf")], column)
    return f"{bcc / libbpf:>11.1f}x" if min(bcc, libbpf) >= 0.001 else f"{'-':>12}"


def judge(tool: str, runs: dict[tuple, list[dict]], exit_key: str) -> list[tuple[str, bool]]:
    """(goal, met) for one tool, from runs of both backends."""
    first = median(runs[(tool, "libbpf")], "first event")
    speed_up = median(runs[(tool, "bcc")], "first event") / first
    leaving = median(runs[(tool, "libbpf")], exit_key)
    return [(f"{tool} first event {first:.3f} s <= {FIRST_EVENT_GOAL_S[tool]} s", first <= FIRST_EVENT_GOAL_S[tool]),
            (f"{tool} {speed_up:.1f}x faster than BCC to its first event, >= {SPEED_UP_GOAL:g}x",
             speed_up >= SPEED_UP_GOAL),
            (f"{tool} {exit_key} {leaving:.3f} s <= {EXIT_GOAL_S} s", leaving <= EXIT_GOAL_S)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (medians are printed)")
    parser.add_argument("--cold", action="store_true", help="every libbpf run with an empty object cache")
    parser.add_argument("--tools", default="execmon,hidsmon", help="comma-separated: execmon, hidsmon")
    parser.add_argument("--bin", type=Path, metavar="DIR",
                        help="the folder of the execmon and hidsmon to run (default: beside this Python)")
    args = parser.parse_args()
    global TOOLS_DIR
    TOOLS_DIR = args.bin or TOOLS_DIR
    tools = [tool for tool in args.tools.split(",") if tool]
    if args.rounds < 1:
        parser.error("--rounds takes 1 or more")
    if os.geteuid() != 0:
        print("startup: run as root (sudo)", file=sys.stderr)
        return 1
    if not tools or set(tools) - set(FIRST_EVENT_GOAL_S):
        print(f"startup: --tools takes {', '.join(FIRST_EVENT_GOAL_S)}", file=sys.stderr)
        return 2
    flagged = {tool: accepts_backend(tool) for tool in tools}
    tool_runs: dict[tuple, list[dict]] = {}
    sensor_runs: dict[tuple, list[dict]] = {}
    origins: dict[tuple, str] = {}
    try:
        for round_number in range(0, args.rounds + 1):  # round 0 warms up, not counted
            for tool in tools:
                for backend in BACKENDS:
                    marker = f"sdxfer-startup-{os.getpid()}-{round_number}-{tool}-{backend}"
                    tool_backend = backend if flagged[tool] else None
                    with object_cache(args.cold and backend == "libbpf"):
                        if tool_backend or backend == BACKENDS[0]:  # without the flag: the default once
                            run = tool_run(tool, tool_backend, marker + "-tool")
                            origins[(tool, tool_backend)] = run.pop("stderr")
                            if round_number:
                                tool_runs.setdefault((tool, tool_backend), []).append(run)
                        run = in_process_run(tool, backend, marker + "-sensor")
                    if round_number:
                        sensor_runs.setdefault((tool, backend), []).append(run)
            print(f"round {round_number}/{args.rounds} done{' (warm-up)' if not round_number else ''}",
                  file=sys.stderr)
    except (Failure, ProbeError) as exc:
        print(f"startup: {exc}", file=sys.stderr)
        return 1

    cache = "cold (an empty object cache each libbpf run)" if args.cold else "warm (after one run not counted)"
    print(f"start-up, {args.rounds} rounds, medians; object cache {cache}; events: execmon exec, "
          f"hidsmon all {len(tool_events('hidsmon'))}; tools from {TOOLS_DIR}")
    for (tool, backend), stderr in origins.items():
        print(f"  {tool} {backend or '(no --backend flag)'}: {' / '.join(stderr.splitlines()[:2])}")
    for tool in tools:
        if not flagged[tool]:
            print(f"  {tool} has no --backend flag: run on its default path only; goals from the in-process runs")
    print_table("tools (from just before Popen; exit: from SIGINT):", ["banner", "first event", "exit"],
                tool_runs, tools)
    print_table("in-process Sensor, same probe and defines (first event: from before Sensor(); close: its close()):",
                ["open", "load", "attach", "first event", "close"], sensor_runs, tools)
    print("  programs attached: " + ", ".join(f"{tool} {backend} {sensor_runs[(tool, backend)][0]['programs']}"
                                              for tool in tools for backend in BACKENDS))
    goals = []
    for tool in tools:
        goals += judge(tool, tool_runs, "exit") if flagged[tool] else judge(tool, sensor_runs, "close")
    for goal, met in goals:
        print(f"goal {'met' if met else 'NOT met'}: {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
