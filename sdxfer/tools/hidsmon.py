"""hidsmon: every event of sdxfer's HIDS catalogue (schema/events.yaml), live,
from bpf/hids.bpf.c: execs, exits, network, process and file events.

main(argv) parses options, loads the probe with only the selected events
compiled (sdxfer.hids), and prints each event through a pure formatter
(`text_line` or `json_line`), so the output is testable without a kernel.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

from .text import Clock, escape, event_fields, regex, user_id
from ..kernel.program import TRANSPORTS

EXAMPLES = """\
examples:
  hidsmon                              # every event of the catalogue
  hidsmon --events exec,connect,dns    # only these (only their programs are loaded)
  hidsmon -p 1234                      # only events of process 1234
  hidsmon -u www-data -n '^(ba|z)?sh$' # a user's shells
  hidsmon --json | jq .                # one JSON object per event
  hidsmon --transport ringbuf          # BPF ring buffer instead of the perf buffer
  hidsmon --output nats://10.0.0.5:4222/sdxfer.events --spool /var/spool/sdxfer
  hidsmon --output file:/var/log/sdxfer/events.ndjson --rotate-bytes 64M --keep 5
"""


def text_line(event, clock: Clock, common: tuple[str, ...]) -> str:
    """time, event, pid, comm, then the event's own fields as key=value (terminal-safe)."""
    stamp = clock.wall(event.timestamp_ns).astimezone().strftime("%H:%M:%S.%f")[:-3]
    own = event_fields(event, skip=common)
    return f"{stamp} {event.name:<13} {event.pid:<7} {escape(event.comm or ''):<16} {own}".rstrip()


def json_line(event, clock: Clock) -> str:
    """The event's to_dict(), plus `time` (ISO 8601 UTC, from the kernel timestamp)."""
    record = event.to_dict()
    record["time"] = clock.iso(event.timestamp_ns)
    return json.dumps(record, ensure_ascii=True)


class Filter:
    def __init__(self, pid: int | None = None, uid: int | None = None, comm: re.Pattern | None = None):
        self.pid, self.uid, self.comm = pid, uid, comm

    def matches(self, event) -> bool:
        return ((self.pid is None or event.pid == self.pid)
                and (self.uid is None or event.uid == self.uid)
                and (self.comm is None or bool(self.comm.search(event.comm or ""))))


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
    from ..fleet.output import add_output_arguments

    parser = argparse.ArgumentParser(prog="hidsmon", description="Watch every HIDS event on this host with eBPF"
                                     " (needs root).", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=_event_list, metavar="LIST", help="comma-separated events (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per event per line")
    parser.add_argument("-p", "--pid", type=int, metavar="PID", help="only events of this process")
    parser.add_argument("-u", "--uid", type=user_id, metavar="USER", help="only events of this user (name or UID)")
    parser.add_argument("-n", "--name", type=regex, metavar="REGEX", help="only commands whose name matches REGEX")
    parser.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0],
                        help="perf buffer (default) or BPF ring buffer")
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sys.stdout.reconfigure(errors="backslashreplace")
    from .. import default_decoder
    from ..kernel import probes as hids
    from ..errors import ProbeError
    from ..paths import SHIPPED_SCHEMA
    from .run import _closed, follow, start_output
    from ..kernel.sensor import Sensor

    decoder = default_decoder()
    events = args.events or list(decoder.events)
    clock = Clock()
    started = time.monotonic()
    output, ok = start_output(args, decoder, SHIPPED_SCHEMA, "hidsmon", sys.stderr)
    if not ok:
        return 1
    try:
        sensor = Sensor(hids.PROGRAM, transport=args.transport, defines=hids.defines_for(events))
    except ProbeError as exc:
        print(f"hidsmon: {exc}", file=sys.stderr)
        return _closed(output, 1)
    except KeyboardInterrupt:  # Ctrl+C while BCC compiles
        return _closed(output, 130)
    print(f"hidsmon: {len(events)} events, {sensor.programs_attached} programs attached in"
          f" {time.monotonic() - started:.1f} s ({sensor.transport}); Ctrl+C to stop", file=sys.stderr, flush=True)
    event_filter = Filter(args.pid, args.uid, args.name)
    wanted = set(events)
    common = decoder.common_fields
    render = (lambda e: json_line(e, clock)) if args.json else (lambda e: text_line(e, clock, common))
    follow(sensor, render, lambda e: e.name in wanted and event_filter.matches(e), sys.stdout, sys.stderr, "hidsmon",
           output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
