"""hidsmon: every event of sdxfer's HIDS catalogue (schema/events.yaml), live,
from bpf/hids.bpf.c: execs, exits, network, process and file events.

hidsmon is a probe choice (only the selected events' programs loaded from the
prebuilt object, sdxfer.kernel.objects, or compiled with --backend bcc)
and a formatter for the one driver (sdxfer.tools.driver): `text_line` or
`json_line`, pure functions of an event, so the output is testable without a kernel.
"""
from __future__ import annotations

import argparse
import sys

from ..stream.vocabulary import Clock, event_json
from .driver import Formatter, Probe, add_probe_arguments, check_arguments, drive
from .text import event_line

EXAMPLES = """\
examples:
  hidsmon                              # every event of the catalogue
  hidsmon --events exec,connect,dns    # only these (only their programs are loaded)
  hidsmon -p 1234 --children           # process 1234 and its descendants
  hidsmon -u www-data -n '^(ba|z)?sh$' # a user's shells
  hidsmon --cgroup system.slice/nginx.service --no-failed
  hidsmon --json | jq .                # one JSON object per event
  hidsmon --transport ringbuf          # BPF ring buffer instead of the perf buffer
  hidsmon --stats 10                   # a line of delivered/lost per event every 10 s
  hidsmon --output raw:/tmp/capture.sdxr  # records as `sdxfer decode` reads them
  hidsmon --output nats://10.0.0.5:4222/sdxfer.events --spool /var/spool/sdxfer
  hidsmon --output file:/var/log/sdxfer/events.ndjson --rotate-bytes 64M --keep 5
"""


def text_line(event, clock: Clock, common: tuple[str, ...]) -> str:
    """time, event, pid, comm, then the event's own fields as key=value (terminal-safe, readable values)."""
    return event_line(event, clock, skip=common)


def json_line(event, clock: Clock) -> str:
    """The event's to_dict(), plus `time` (ISO 8601 UTC) and `timestamp_ns`: the object every tool prints."""
    return event_json(event, clock)


def failed_exec(event) -> bool:
    return event.name == "exec" and event.ret != 0


def _event_list(text: str) -> list[str]:
    from .. import default_decoder

    names = [name.strip() for name in text.split(",") if name.strip()]
    known = list(default_decoder().events)
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"no event {', '.join(unknown) or '(none given)'}; the catalogue has: "
                                         + ", ".join(known))
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hidsmon", description="Watch every HIDS event on this host with eBPF"
                                     " (needs root).", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=_event_list, metavar="LIST", help="comma-separated events (default: all)")
    parser.add_argument("--no-failed", action="store_true",
                        help="hide failed execs (their tracepoint programs are not loaded)")
    add_probe_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    sys.stdout.reconfigure(errors="backslashreplace")
    from .. import default_decoder
    from ..kernel import probes

    events = tuple(args.events or default_decoder().events)
    defines = probes.defines_for(events, failed_execs=not args.no_failed)
    clock = Clock()
    common = default_decoder().common_fields
    render = (lambda e: json_line(e, clock)) if args.json else (lambda e: text_line(e, clock, common))
    accept = (lambda e: not failed_exec(e)) if args.no_failed else (lambda e: True)
    probe = Probe(probes.PROGRAM, defines=defines, events=events, shipped=True, failed_execs=not args.no_failed)
    return drive("hidsmon", args, probe, Formatter(render, accept))


if __name__ == "__main__":
    sys.exit(main())
