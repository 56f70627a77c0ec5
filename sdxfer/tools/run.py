"""`sdxfer run`: any probe built on the generated header, its events printed.

One line per event: `name key=value ...` (terminal-safe), or with --json the
event's to_dict() as one JSON object. Loss goes to stderr when it happens and
in a summary at exit (Ctrl+C, SIGTERM).
"""
from __future__ import annotations

import json
import os
from typing import Callable

from .text import event_fields, stop_on_signals
from ..errors import ProbeError
from ..fleet.output import deliver, open_output


def text_line(event) -> str:
    return f"{event.name} {event_fields(event)}".rstrip()


def json_line(event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=True)


def summary_line(tool: str, stats) -> str:
    undecodable = f", {stats.undecodable} undecodable" if stats.undecodable else ""
    lost = [f"{name} {c.lost}" for name, c in stats.per_event.items() if c.lost]
    per_event = f" ({', '.join(lost)})" if lost else ""
    return f"{tool}: {stats.delivered} events received, {stats.lost} lost{per_event}{undecodable}"


class Emitter:
    """Each batch of records: the accepted events printed as render gives them
    (or handed, with their raw records, to a fleet output), new loss on stderr."""

    def __init__(self, sensor, render: Callable, accept: Callable, stdout, stderr, tool: str, output=None):
        self.sensor, self.render, self.accept = sensor, render, accept
        self.stdout, self.stderr, self.tool, self.output = stdout, stderr, tool, output
        self.lost_reported = 0

    def emit(self, records) -> None:
        sensor = self.sensor
        if self.output is not None:
            deliver(self.output, [(raw, event) for raw, event in sensor.decoded_records(records) if self.accept(event)],
                    self.tool, self.stderr)
        else:
            # Per-CPU buffers are read one CPU after another: order each batch by time.
            events = sorted(sensor.decoded(records), key=lambda event: event.timestamp_ns)
            lines = [self.render(event) for event in events if self.accept(event)]
            if lines:
                self.stdout.write("\n".join(lines) + "\n")
                self.stdout.flush()
        if sensor.stats.lost > self.lost_reported:
            print(f"{self.tool}: {sensor.stats.lost - self.lost_reported} events lost (the {sensor.transport} buffer "
                  "was full, or every scratch slot was taken)", file=self.stderr)
            self.lost_reported = sensor.stats.lost


def follow(sensor, render: Callable, accept: Callable, stdout, stderr, tool: str, output=None) -> None:
    """Prints every accepted event as render gives it (or hands it, with its raw
    record, to a fleet output) until Ctrl+C or SIGTERM, loss on stderr as it
    happens, and the summary at exit; closes the sensor and the output."""
    emit = Emitter(sensor, render, accept, stdout, stderr, tool, output).emit

    try:
        with stop_on_signals() as stop:
            while not stop():
                emit(sensor.read())
            sensor.detach()
            emit(sensor.drain())
    except BrokenPipeError:
        # The reader went away (... | head): stop quietly, and keep the
        # interpreter's final flush from failing on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
    finally:
        sensor.close()
        if output is not None:
            print(f"{tool}: {output.close()}", file=stderr)
    print(summary_line(tool, sensor.stats), file=stderr)


def start_output(args, decoder, schema_path, tool: str, stderr):
    """(the --output, or None; True) or (None, False) once a one-line error is printed."""
    from ..fleet.nats_io import FleetError

    try:
        return open_output(args, decoder, schema_path), True
    except FleetError as exc:
        print(f"{tool}: {exc}", file=stderr)
        return None, False


def run_probe(args, stdout, stderr) -> int:
    from ..paths import SHIPPED_SCHEMA
    from ..kernel.sensor import Sensor, program_text
    from ..kernel.program import schema_code

    defines = dict(args.defines)
    options = {"schema": args.schema, "transport": args.transport, "defines": defines}
    output = None
    try:
        if args.ebpf:
            print(program_text(args.program, **options), file=stdout)
            return 0
        if args.output:
            output, ok = start_output(args, schema_code(args.schema).decoder, args.schema or SHIPPED_SCHEMA,
                                      "sdxfer run", stderr)
            if not ok:
                return 1
        sensor = Sensor(args.program, **options)
    except ProbeError as exc:
        print(f"sdxfer run: {exc}", file=stderr)
        return _closed(output, 1)
    except KeyboardInterrupt:  # Ctrl+C while BCC compiles
        return _closed(output, 130)
    wanted = set(args.events) if args.events else None
    unknown = sorted(wanted - set(sensor.event_names)) if wanted else []
    if unknown:
        _closed(output, 2)
        sensor.close()
        print(f"sdxfer run: no event {', '.join(unknown)} in the schema (its events: {', '.join(sensor.event_names)})",
              file=stderr)
        return 2
    print(f"sdxfer run: {sensor.programs_attached} programs attached ({sensor.transport}); Ctrl+C to stop",
          file=stderr, flush=True)
    follow(sensor, json_line if args.json else text_line, lambda event: wanted is None or event.name in wanted,
           stdout, stderr, "sdxfer run", output)
    return 0


def _closed(output, status: int) -> int:
    """Stops an output the tool will not use (the probe did not load)."""
    if output is not None:
        output.close()
    return status
