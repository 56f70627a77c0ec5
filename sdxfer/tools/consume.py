"""`sdxfer consume`: every host's events from NATS JetStream, one a line:
hostname, event, key=value (readable values), or with --json the object
every tool prints for an event, with `host`. Problems go to stderr as they
happen, and are counted per host at exit."""
from __future__ import annotations

import json

from ..codegen import SchemaError
from ..fleet.consume import Consumer, FleetEvent
from ..fleet.nats_io import Connection, FleetError, StreamLimits
from .text import escape, event_fields, format_value, silence_stdout, stop_on_signals


def text_line(item: FleetEvent) -> str:
    """hostname, event name, then its fields as key=value (terminal-safe, keys too)."""
    if item.event is not None:
        return f"{escape(item.host.hostname)} {item.event.name} {event_fields(item.event)}".rstrip()
    fields = " ".join(f"{escape(key)}={format_value(value)}" for key, value in item.record.items()
                      if key not in ("event", "host"))
    return f"{escape(item.host.hostname)} {format_value(item.record['event'])} {fields}".rstrip()


def json_line(item: FleetEvent) -> str:
    # ASCII only: no control character reaches the terminal; no NaN passes validation
    return json.dumps(item.record, ensure_ascii=True, allow_nan=False)


def run_consume(args, stdout, stderr) -> int:
    """`sdxfer consume`: print every host's events until Ctrl+C or SIGTERM."""
    def report(line: str) -> None:
        print(f"sdxfer consume: {escape(line)}", file=stderr, flush=True)

    limits = StreamLimits.from_args(args) if args.create_stream else None
    try:
        consumer = Consumer(args.url, schema=args.schema, durable=args.durable,
                            connection=Connection(args.creds, args.token, args.tls_ca, args.tls_cert, args.tls_key),
                            create_stream=limits, report=report, max_message_bytes=args.max_message_bytes,
                            inbox_prefix=args.inbox_prefix)
    except (FleetError, SchemaError) as exc:
        print(f"sdxfer consume: {exc}", file=stderr)
        return 1
    render = json_line if args.json else text_line
    try:
        with stop_on_signals() as stop:
            for item in consumer.events(stop):
                stdout.write(render(item) + "\n")
                stdout.flush()
    except BrokenPipeError:
        silence_stdout(stdout)
    finally:
        consumer.close()
    for line in consumer.problems.summary():
        report(line)
    stats = consumer.stats
    print(f"sdxfer consume: {stats.events} events from {stats.messages} messages, {stats.undecodable} undecodable,"
          f" {stats.bad_messages} bad messages", file=stderr)
    return 0
