"""The one driver behind execmon, hidsmon and `sdxfer run`.

A tool is a probe choice (Probe: program, schema, -D flags, events wanted;
the shipped probe comes from its prebuilt object, sdxfer.kernel.objects,
unless --backend bcc) and a formatter (Formatter: an event to a line, which
events to show, a header). The driver owns everything else, once: the shared options
(add_probe_arguments), the in-kernel filters they select, opening the probe
and the --output, the follow loop, loss and stats lines on stderr, the exit
summary, Ctrl+C and SIGTERM, and a reader that goes away (... | head).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

from ..errors import ProbeError
from ..kernel.filters import EventFilter, cgroup_dir
from ..kernel.program import TRANSPORTS
from ..kernel.sensor import BACKENDS
from ..paths import SHIPPED_SCHEMA
from .text import regex, silence_stdout, stop_on_signals, user_id

LOSS_LINE_EVERY_S = 1.0  # at most one loss line a second per tool


class Probe(NamedTuple):
    """What a tool loads."""

    program: Path
    schema: Path | None = None  # None: the shipped schema
    defines: dict = {}
    events: tuple[str, ...] | None = None  # the events shown; None: every event of the schema
    # bpf/hids.bpf.c on the shipped schema, `defines` only what BCC needs for `events`:
    # the prebuilt object serves it (only the programs of `events` loaded)
    shipped: bool = False
    failed_execs: bool = True  # shipped: the failed-exec programs loaded too


class Formatter(NamedTuple):
    """How a tool shows events: render(event) -> line, accept(event) -> shown?,
    and a header for standard output (text, not JSON, not --output)."""

    render: Callable
    accept: Callable = lambda event: True
    header: str | None = None


# ---- options ------------------------------------------------------------------


class _Version(argparse.Action):
    """--version: the package, the shipped schema's major version and digest (read only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text(parser.prog.split()[0]))
        parser.exit()


def version_text(prog: str) -> str:
    from .. import __version__, default_decoder
    from ..fleet.output import schema_major

    return (f"{prog} {__version__} (schema {SHIPPED_SCHEMA.name}: major {schema_major(SHIPPED_SCHEMA)}, "
            f"digest {default_decoder().schema_digest})")


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action=_Version, help="print the version, the schema's major version and digest")


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) == 0 or int(text) > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return int(text)


def _mntns(text: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"not a mount namespace inode number: {text!r} (see ls -l /proc/PID/ns/mnt)")
    return int(text)


def _cgroup(text: str) -> Path:
    try:
        return cgroup_dir(text)
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _stats_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds > 0: {text!r}")
    return value


def add_probe_arguments(parser: argparse.ArgumentParser, *, what: str = "events") -> None:
    """The options every probe-loading tool has (execmon, hidsmon, sdxfer run)."""
    from ..fleet.output import add_output_arguments

    parser.add_argument("--transport", choices=TRANSPORTS, default=None,
                        help="BPF ring buffer (default where the kernel has it, 5.8+) or perf buffer"
                        " (a built .bpf.o: the one it was built for)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="libbpf: a CO-RE object (execmon, hidsmon and the shipped probe: the prebuilt one, the"
                        " default), or bcc: the C text compiled by BCC at start")
    parser.add_argument("--json", action="store_true", help="one JSON object per line: to_dict(), time, timestamp_ns")
    parser.add_argument("--ebpf", action="store_true", help="print the final BPF program text and exit")
    select = parser.add_argument_group("which processes (in the kernel, except -n)")
    select.add_argument("-p", "--pid", type=_pid, metavar="PID", help=f"only {what} of this process")
    select.add_argument("--children", action="store_true",
                        help="with -p: its descendants too, followed as they fork")
    select.add_argument("-u", "--uid", type=user_id, metavar="USER", help=f"only {what} of this user (name or UID)")
    select.add_argument("-n", "--name", type=regex, metavar="REGEX", help="only commands whose name matches REGEX")
    select.add_argument("--cgroup", type=_cgroup, metavar="PATH|ID",
                        help="only processes in this cgroup v2 (a path, or below /sys/fs/cgroup, or its id) or below")
    select.add_argument("--mntns", type=_mntns, metavar="ID", help="only processes in this mount namespace (inode number)")
    select.add_argument("--include-self", action="store_true",
                        help="report this tool's own process too (by default it is left out in the kernel: its"
                        " spool and file writes would be events that make more writes)")
    parser.add_argument("--btf", metavar="FILE", help="relocate a built object against this kernel BTF file, for"
                        " kernels without /sys/kernel/btf/vmlinux (libbpf only)")
    parser.add_argument("--stats", type=_stats_interval, metavar="SECONDS",
                        help="every SECONDS, a stderr line of events delivered and lost, per event")
    add_version_argument(parser)
    add_output_arguments(parser)


def event_filter(args) -> EventFilter:
    return EventFilter(pid=args.pid, children=args.children, uid=args.uid, cgroup=args.cgroup, mntns=args.mntns,
                       not_tgid=None if args.include_self else os.getpid())


def check_arguments(parser: argparse.ArgumentParser, args) -> None:
    if args.children and args.pid is None:
        parser.error("--children needs -p PID")


def name_matches(args) -> Callable:
    """-n, the one filter the kernel cannot apply (a regular expression)."""
    if args.name is None:
        return lambda event: True
    return lambda event: bool(args.name.search(event.value("comm") or "")) if "comm" in event.fields else False


# ---- the follow loop ------------------------------------------------------------


def summary_line(tool: str, stats) -> str:
    """The exit summary: one loss figure, per event where there was loss."""
    undecodable = f", {stats.undecodable} undecodable" if stats.undecodable else ""
    lost = [f"{name} {c.lost}" for name, c in stats.per_event.items() if c.lost]
    per_event = f" ({', '.join(lost)})" if lost else ""
    return f"{tool}: {stats.delivered} events received, {stats.lost} lost{per_event}{undecodable}"


class LossLines:
    """Loss on stderr: at most one line every LOSS_LINE_EVERY_S, with the
    counts per event since the last line; what is left goes out at the end."""

    def __init__(self, tool: str, transport: str, stats, stderr, clock: Callable[[], float] = time.monotonic):
        self.tool, self.transport, self.stats, self.stderr, self.clock = tool, transport, stats, stderr, clock
        self._reported: dict[str, int] = {}
        self._continuations = 0
        self._last_line = float("-inf")

    def note(self, final: bool = False) -> None:
        now = self.clock()
        if not final and now - self._last_line < LOSS_LINE_EVERY_S:
            return
        new = {name: counts.lost - self._reported.get(name, 0) for name, counts in self.stats.per_event.items()}
        new = {name: count for name, count in new.items() if count > 0}
        continuations = self.stats.continuations_lost - self._continuations
        if not new and continuations <= 0:
            return
        self._reported.update({name: self.stats.per_event[name].lost for name in new})
        self._continuations = self.stats.continuations_lost
        self._last_line = now
        parts = [f"{name} {count}" for name, count in new.items()]
        if continuations > 0:
            parts.append(f"continuation records {continuations}")
        print(f"{self.tool}: {sum(new.values())} events lost ({', '.join(parts)}): the {self.transport} buffer was"
              " full, or every scratch slot was taken", file=self.stderr, flush=True)


class StatsLines:
    """--stats: every interval, one stderr line of delivered/lost per event so far."""

    def __init__(self, tool: str, stats, interval_s: float | None, stderr, clock: Callable[[], float] = time.monotonic):
        self.tool, self.stats, self.interval_s, self.stderr, self.clock = tool, stats, interval_s, stderr, clock
        self._next = clock() + interval_s if interval_s else float("inf")

    def note(self) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval_s
        stats = self.stats
        per_event = ", ".join(f"{name} {c.delivered}/{c.lost}" for name, c in stats.per_event.items()
                              if c.delivered or c.lost)
        print(f"{self.tool}: stats: {stats.delivered} delivered, {stats.lost} lost"
              f"{f' (delivered/lost: {per_event})' if per_event else ''}", file=self.stderr, flush=True)


class Follower:
    """Each batch of records: the accepted events rendered to stdout (or handed,
    with their raw records, to an --output), loss and stats lines on stderr."""

    def __init__(self, sensor, tool: str, formatter: Formatter, stdout, stderr, output=None,
                 stats_interval_s: float | None = None):
        self.sensor, self.tool, self.formatter = sensor, tool, formatter
        self.stdout, self.stderr, self.output = stdout, stderr, output
        self.loss = LossLines(tool, sensor.transport, sensor.stats, stderr)
        self.stats = StatsLines(tool, sensor.stats, stats_interval_s, stderr)

    def emit(self, records) -> None:
        from ..fleet.output import deliver

        sensor, accept = self.sensor, self.formatter.accept
        if self.output is not None:
            deliver(self.output, [(raw, event) for raw, event in sensor.decoded_records(records) if accept(event)],
                    self.tool, self.stderr)
        else:
            # Per-CPU buffers are read one CPU after another: order each batch by time.
            events = sorted(sensor.decoded(records), key=lambda event: event.timestamp_ns)
            render = self.formatter.render
            lines = [render(event) for event in events if accept(event)]
            if lines:
                self.stdout.write("\n".join(lines) + "\n")
                self.stdout.flush()
        self.loss.note()
        self.stats.note()

    def run(self, stop: Callable[[], bool]) -> None:
        """Until stop(): then the probe is detached and what it had sent is read."""
        while not stop():
            self.emit(self.sensor.read())
        self.sensor.detach()
        self.emit(self.sensor.drain())
        self.loss.note(final=True)


def follow(sensor, tool: str, formatter: Formatter, stdout, stderr, output=None,
           stats_interval_s: float | None = None) -> None:
    """Shows every accepted event until Ctrl+C or SIGTERM, then the summary;
    closes the sensor and the output."""
    follower = Follower(sensor, tool, formatter, stdout, stderr, output, stats_interval_s)
    try:
        with stop_on_signals() as stop:
            follower.run(stop)
    except BrokenPipeError:
        silence_stdout(stdout)
    finally:
        sensor.close()
        if output is not None:
            print(f"{tool}: {output.close()}", file=stderr)
    print(summary_line(tool, sensor.stats), file=stderr)


# ---- one tool, start to end -----------------------------------------------------


def _closed(output, status: int) -> int:
    """Stops an output the tool will not use (the probe did not load)."""
    if output is not None:
        output.close()
    return status


def _sensor(tool: str, probe: Probe, args, selection: EventFilter, stderr):
    """The shipped probe from its prebuilt object (unless --backend bcc), any other as given."""
    from ..kernel.sensor import Sensor

    if probe.shipped and args.backend != "bcc":
        from ..kernel.host import default_transport
        from ..kernel.objects import shipped

        objects = shipped(notice=lambda line: print(f"{tool}: {line}", file=stderr, flush=True))
        transport = args.transport or default_transport()
        return Sensor(objects.object(transport), transport=transport, event_filter=selection, backend="libbpf",
                      programs=objects.programs(probe.events, probe.failed_execs), btf=args.btf, detach_waits=False)
    return Sensor(probe.program, schema=probe.schema, transport=args.transport, defines=probe.defines,
                  event_filter=selection, backend=args.backend, btf=args.btf, quiet=True, detach_waits=False)


def drive(tool: str, args, probe: Probe, formatter: Formatter, stdout=None, stderr=None) -> int:
    """Opens the probe and the --output, follows until Ctrl+C or SIGTERM; --ebpf
    prints the program instead. Errors are one line on stderr."""
    from ..fleet.nats_io import FleetError, redacted
    from ..fleet.output import open_output
    from ..kernel.core import is_object
    from ..kernel.host import default_transport
    from ..kernel.program import schema_code
    from ..kernel.sensor import program_text

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    started = time.monotonic()
    selection = event_filter(args)
    built = is_object(probe.program)
    options = {"schema": probe.schema, "transport": args.transport or default_transport(),
               "defines": {**probe.defines, **selection.defines()}}
    output = None
    try:
        if args.ebpf and built:
            raise ProbeError(f"--ebpf prints C text: {probe.program} is a built object (sdxfer build wrote it)")
        if args.ebpf:
            print(program_text(probe.program, **options), file=stdout)
            return 0
        code = schema_code(probe.schema)
        unknown = sorted(set(probe.events or ()) - set(code.event_names))
        if unknown:
            print(f"{tool}: no event {', '.join(unknown)} in the schema (its events: {', '.join(code.event_names)})",
                  file=stderr)
            return 2
        output = open_output(args, code.decoder, probe.schema or SHIPPED_SCHEMA)
        sensor = _sensor(tool, probe, args, selection, stderr)
    except (ProbeError, FleetError) as exc:
        print(f"{tool}: {exc}", file=stderr)
        return _closed(output, 1)
    except KeyboardInterrupt:  # Ctrl+C while BCC compiles
        return _closed(output, 130)
    wanted = frozenset(probe.events or sensor.event_names)
    accept, matches = formatter.accept, name_matches(args)
    shown = formatter._replace(accept=lambda event: event.name in wanted and matches(event) and accept(event))
    target = f", out to {redacted(args.output)}" if output is not None else ""
    print(f"{tool}: {len(wanted)} events, {sensor.programs_attached} programs attached in"
          f" {time.monotonic() - started:.1f} s ({sensor.transport}, {sensor.backend}{target}); Ctrl+C to stop",
          file=stderr, flush=True)
    if sensor.origin:
        print(f"{tool}: {sensor.origin}", file=stderr, flush=True)
    if formatter.header and output is None and not args.json:
        try:
            stdout.write(formatter.header + "\n")
            stdout.flush()
        except BrokenPipeError:
            silence_stdout(stdout)
    follow(sensor, tool, shown, stdout, stderr, output, args.stats)
    return 0
