"""execmon: print every exec on this host, live (successful ones, and failed
ones with -x), from the exec family of the sdxfer probe bpf/hids.bpf.c.

execmon is a probe choice and a formatter for the one driver
(sdxfer.tools.driver): `Filter.matches` and the pure formatters
`format_line` (execsnoop's columns) and `json_line` (the shared event object,
plus execmon's own keys), so the output is testable without a kernel.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from typing import Callable, NamedTuple

from ..fleet.output import count
from ..stream.vocabulary import Clock, event_object
from .driver import Formatter, Probe, add_probe_arguments, check_arguments, drive
from .text import escape, path_token, quote, regex

EXAMPLES = """\
examples:
  execmon                      # every successful exec: PID, command, arguments
  execmon -x                   # failed execs too, with a RET column (-errno)
  execmon --cwd                # a CWD column: the working directory of each exec
  execmon -T -U                # wall-clock time and UID columns
  execmon -u www-data          # only execs by user www-data (name or number)
  execmon -n '^(ba|z)?sh$'     # only commands whose name matches the regex
  execmon -l 'curl .*\\| *sh'   # only argument lines matching the regex
  execmon -P 1                 # only children of PID 1
  execmon -q --max-args 5      # quoted arguments, at most 5 shown
  execmon --json | jq .argv    # one JSON object per exec
  execmon --transport ringbuf  # BPF ring buffer instead of the perf buffer
  execmon --ebpf               # print the BPF program text and exit
  execmon --output nats://10.0.0.5:4222/sdxfer.execs   # publish to NATS JetStream
"""

HEADER_BANNER = "Watching execve events... Ctrl+C to stop"

class Options(NamedTuple):
    """What shapes the output; built from the command line by parse_args."""

    failed: bool = False
    wall_time: bool = False
    relative_time: bool = False
    uid_column: bool = False
    quote: bool = False
    max_args: int | None = None
    cwd_column: bool = False


class Filter(NamedTuple):
    uid: int | None = None
    comm: re.Pattern | None = None
    args: re.Pattern | None = None
    ppid: int | None = None
    failed: bool = False

    def matches(self, event) -> bool:
        if event.ret != 0 and not self.failed:
            return False
        if self.uid is not None and event.uid != self.uid:
            return False
        if self.ppid is not None and event.ppid != self.ppid:
            return False
        if self.comm is not None and not self.comm.search(event.comm or ""):
            return False
        if self.args is not None and not self.args.search(" ".join(event.argv or ())):
            return False
        return True


def shown_args(event, options: Options) -> tuple[list[str], bool]:
    """The arguments to print and whether any were cut (by the kernel or --max-args)."""
    argv = list(event.argv or ())
    cut = "argv" in event.truncated
    if options.max_args is not None and len(argv) > options.max_args:
        argv = argv[: options.max_args]
        cut = True
    return argv, cut


@functools.lru_cache(maxsize=None)  # built once per Options, not once per line
def _columns(options: Options) -> tuple[tuple[str, int, Callable], ...]:
    """The columns before ARGS: (title, width, value of an event given the clock)."""
    columns = []
    if options.wall_time:
        columns.append(("TIME", 8, lambda event, clock: clock.local_hms(event.timestamp_ns)))
    if options.relative_time:
        columns.append(("TIME(s)", 8, lambda event, clock: f"{clock.seconds_since_start(event.timestamp_ns):.3f}"))
    if options.uid_column:
        columns.append(("UID", 6, lambda event, clock: event.uid))
    columns.append(("PID", 8, lambda event, clock: event.pid))
    columns.append(("EXEC", 20, lambda event, clock: escape(event.comm or "")))
    if options.failed:
        columns.append(("RET", 4, lambda event, clock: event.ret))
    if options.cwd_column:
        # one token, as hidsmon's paths: a space or = in a directory's name cannot pass for the next column;
        # ? where the kernel could not tell it (longer than 4096 bytes)
        columns.append(("CWD", 24, lambda event, clock: path_token(event.cwd) if event.cwd else "?"))
    return tuple(columns)


def header_line(options: Options) -> str:
    return "".join(f"{title:<{width}} " for title, width, _ in _columns(options)) + "ARGS"


def format_line(event, options: Options, clock: Clock) -> str:
    """One text line for an exec event (no trailing newline)."""
    columns = "".join(f"{str(value(event, clock)):<{width}} " for _, width, value in _columns(options))
    argv, cut = shown_args(event, options)
    args = " ".join(quote(escape(a)) if options.quote else escape(a) for a in argv)
    return columns + args + (" ..." if cut else "")


def json_line(event, options: Options, clock: Clock) -> str:
    """One JSON object for an exec event: the object every tool prints for it
    (to_dict(), `time`, `timestamp_ns`), every argument whatever --max-args,
    plus execmon's own keys: `argv_truncated`, and `ts_ns`, an alias of
    timestamp_ns kept for the readers of execmon's first format. Non-UTF-8
    bytes stay lone surrogates (written as \\udcXX escapes), so
    str.encode('utf-8', 'surrogateescape') gives back the exact bytes.
    `truncated` names every field the kernel cut or could not tell (such a
    value may be null: unknown, not absent)."""
    record = event_object(event, clock)
    record["ts_ns"] = event.timestamp_ns
    record["argv_truncated"] = "argv" in event.truncated
    return json.dumps(record, ensure_ascii=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="execmon",
        description="Trace every exec on this host with eBPF (needs root).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-x", "--fails", action="store_true", help="include failed execs (RET column: -errno)")
    parser.add_argument("-T", "--time", action="store_true", help="show wall-clock time (HH:MM:SS)")
    parser.add_argument("-t", "--timestamp", action="store_true", help="show seconds since execmon started")
    parser.add_argument("-U", "--print-uid", action="store_true", help="show the UID column")
    parser.add_argument("-l", "--line", type=regex, metavar="REGEX",
                        help="only execs whose argument line (arguments joined by spaces) matches REGEX")
    parser.add_argument("-P", "--ppid", type=count, metavar="PPID", help="only children of this process")
    parser.add_argument("-q", "--quote", action="store_true", help='put "double quotes" around each argument')
    parser.add_argument("--max-args", type=count, metavar="N", help="show at most N arguments (marked when cut)")
    parser.add_argument("--cwd", action="store_true", help="show the CWD column: the working directory of the exec")
    add_probe_arguments(parser, what="execs")
    return parser


def options_from(args: argparse.Namespace) -> tuple[Options, Filter]:
    options = Options(failed=args.fails, wall_time=args.time, relative_time=args.timestamp,
                      uid_column=args.print_uid, quote=args.quote, max_args=args.max_args,
                      cwd_column=args.cwd)
    event_filter = Filter(uid=args.uid, comm=args.name, args=args.line, ppid=args.ppid, failed=args.fails)
    return options, event_filter


def formatter(args, clock: Clock) -> Formatter:
    options, event_filter = options_from(args)
    render = json_line if args.json else format_line
    # -u is applied in the kernel and -n by the driver: not again per event here
    accept = event_filter._replace(uid=None, comm=None).matches
    return Formatter(render=lambda event: render(event, options, clock), accept=accept,
                     header=HEADER_BANNER + "\n" + header_line(options))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    sys.stdout.reconfigure(errors="backslashreplace")
    from ..kernel.probes import PROGRAM, defines_for

    # without -x the failed-exec programs are not loaded at all
    probe = Probe(PROGRAM, defines=defines_for(["exec"], failed_execs=args.fails), events=("exec",), shipped=True,
                  failed_execs=args.fails)
    return drive("execmon", args, probe, formatter(args, Clock()))


if __name__ == "__main__":
    sys.exit(main())
