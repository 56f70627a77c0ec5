"""`sdxfer run`: any probe built on the generated header, its events printed,
through the one driver (sdxfer.tools.driver).

One line per event: `time event pid comm key=value ...` (terminal-safe, readable
values), or with --json the object every tool prints (to_dict(), time,
timestamp_ns).
"""
from __future__ import annotations

from pathlib import Path

from .. import default_decoder
from ..kernel.probes import is_shipped
from ..stream.vocabulary import Clock, event_json
from .driver import Formatter, Probe, drive
from .text import event_line


def run_probe(args, stdout, stderr) -> int:
    clock = Clock()
    if args.json:
        render = lambda event: event_json(event, clock)  # noqa: E731
    else:
        common = _common_fields(args.schema)
        render = lambda event: event_line(event, clock, skip=common)  # noqa: E731
    program, schema = Path(args.program), Path(args.schema) if args.schema else None
    # the shipped probe as it is (no -D of the user's): its prebuilt object serves it
    probe = Probe(program, schema, dict(args.defines), tuple(args.events) if args.events else None,
                  shipped=not args.defines and is_shipped(program, schema))
    return drive("sdxfer run", args, probe, Formatter(render), stdout, stderr)


def _common_fields(schema) -> tuple[str, ...]:
    """The schema's common fields (shown once, in front, or left to JSON); none where it does not load."""
    if schema is None:
        return default_decoder().common_fields
    from ..errors import ProbeError
    from ..kernel.program import schema_code

    try:
        return schema_code(schema).decoder.common_fields
    except ProbeError:
        return ()  # drive() says what is wrong with it
