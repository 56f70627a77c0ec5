"""The record layout, computed once and read by every renderer.

A record is what one `<event>_print()` call sends:

    header       32 bytes, the same for every event (sdxfer.record.HEADER)
    fixed part   the event's fixed-size fields at natural alignment, largest
                 alignment first (schema order among equals), so no padding
                 is ever needed; one 8-byte `sdxfer_var` descriptor
                 (u16 off, u16 len, u32 lost) stands for each variable field
    payload      the bytes of the variable fields, back to back, in schema
                 order, without NUL terminators; `size` ends the record

A descriptor with off == 0 means the value is absent (NULL pointer or a read
that failed); lost != 0 means it was truncated, by `lost` bytes, or by an
unknown amount when lost == sdxfer.record.LOST_UNKNOWN.

Bounds the BPF verifier needs come from here too: each variable field is
written at a cursor that can never exceed `cursor_max`, the copy can touch at
most `room` bytes from there, and the size handed to the output helper is
masked with `size_mask`, a power of two minus one that is never smaller than
the largest record, so the mask never changes a real size.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..record import HEADER_SIZE, LAYOUT_VERSION, STR_READ_SLACK
from .model import Event, Field, Schema


@dataclass(frozen=True)
class Member:
    """A member of the fixed part: a fixed field, or a variable field's descriptor."""

    name: str
    offset: int
    size: int
    field: Field

@dataclass(frozen=True)
class Variable:
    """Where a variable field's descriptor sits and how its payload may be written."""

    field: Field
    descriptor_offset: int
    cursor_max: int  # largest payload offset this field can start at
    room: int  # bytes the copy may touch from its cursor

@dataclass(frozen=True)
class EventLayout:
    event: Event
    index: int  # position in the schema; indexes per-event counters
    members: tuple[Member, ...]  # fixed part after the header, by offset
    variables: tuple[Variable, ...]  # schema order = payload order
    payload_off: int
    max_size: int
    size_mask: int
    write_end: int  # highest byte offset (exclusive) any copy may touch
    fingerprint: int

    @property
    def slot_needed(self) -> int:
        return max(self.write_end, self.size_mask)

@dataclass(frozen=True)
class Layout:
    schema: Schema
    events: tuple[EventLayout, ...]

def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align

def _fingerprint(event: Event, members: tuple[Member, ...], payload_off: int) -> int:
    parts = [f"v{LAYOUT_VERSION}", event.name, str(event.id), str(payload_off)]
    for m in members:
        f = m.field
        parts.append(f"{m.name}:{f.type.name}:{m.offset}:{m.size}:{f.max}")
    return zlib.crc32("|".join(parts).encode())

def layout_event(event: Event, index: int) -> EventLayout:
    ordered = sorted(event.fields, key=lambda f: -f.type.align)  # stable: schema order among equals
    members: list[Member] = []
    offset = HEADER_SIZE
    descriptor_offsets: dict[str, int] = {}
    for field in ordered:
        start = _align_up(offset, field.type.align)
        # every type's size is a multiple of its alignment and the header's of 8
        assert start == offset, f"{event.name}.{field.name} would need padding"
        members.append(Member(field.name, start, field.fixed_size, field))
        if field.type.variable:
            descriptor_offsets[field.name] = start
        offset = start + field.fixed_size
    payload_off = offset

    variables = []
    cursor_max = payload_off
    write_end = payload_off
    for field in event.fields:
        if not field.type.variable:
            continue
        room = field.max + (STR_READ_SLACK if field.type.reader.endswith("_str") else 0)
        variables.append(Variable(field, descriptor_offsets[field.name], cursor_max, room))
        write_end = max(write_end, cursor_max + room)
        cursor_max += field.max
    max_size = cursor_max
    size_mask = (1 << max_size.bit_length()) - 1  # smallest 2**k - 1 >= max_size

    member_tuple = tuple(members)
    return EventLayout(
        event=event,
        index=index,
        members=member_tuple,
        variables=tuple(variables),
        payload_off=payload_off,
        max_size=max_size,
        size_mask=size_mask,
        write_end=write_end,
        fingerprint=_fingerprint(event, member_tuple, payload_off),
    )

def compute_layout(schema: Schema) -> Layout:
    return Layout(schema, tuple(layout_event(e, i) for i, e in enumerate(schema.events)))
