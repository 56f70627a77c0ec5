"""The record layout, computed once and read by every renderer.

A record is what one `<event>_print()` call sends:

    header       32 bytes, the same for every event (sdxfer.record.HEADER)
    fixed part   the event's fixed-size fields in record order (schema order,
                 but a field new in a later version, a common one included,
                 comes after the earlier ones: evolution.laid_out), each at its
                 natural alignment; where alignment leaves a gap, an explicit
                 padding member (`_pad<offset>`, zeroed by the packer) fills
                 it, so appending a field never moves an existing one; one
                 8-byte `sdxfer_var` descriptor (u16 off, u16 len, u32 lost)
                 stands for each variable field
    payload      the bytes of the variable fields, back to back, in record
                 order, without NUL terminators; `size` ends the record

A descriptor with off == 0 means the value is absent (NULL pointer or a read
that failed); lost != 0 means it was truncated, by `lost` bytes, or by an
unknown amount when lost == sdxfer.record.LOST_UNKNOWN.

Every published version of an event has its own layout (`older` holds the
earlier ones); each is a prefix of the next, since compatible changes only
append fields or raise a max. All share the event's lineage fingerprint.

Bounds the BPF verifier needs come from here too: each variable field is
written at a cursor that can never exceed `cursor_max`, the copy can touch at
most `room` bytes from there, and the size handed to the output helper is
masked with `size_mask`, a power of two minus one that is never smaller than
the largest record, so the mask never changes a real size.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..runtime.record import HEADER_SIZE, LAYOUT_VERSION, STR_READ_SLACK
from .model import Event, Field, History, Schema


@dataclass(frozen=True)
class Member:
    """A member of the fixed part: a fixed field, a variable field's descriptor,
    or padding (field None) that the packer zeroes."""

    name: str
    offset: int
    size: int
    field: Field | None

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
    version: int  # published version, from 1
    members: tuple[Member, ...]  # fixed part after the header, by offset
    variables: tuple[Variable, ...]  # record order = payload order
    payload_off: int
    max_size: int
    size_mask: int
    write_end: int  # highest byte offset (exclusive) any copy may touch
    fingerprint: int  # of the lineage: the same for every version
    older: tuple[EventLayout, ...] = ()  # layouts of earlier published versions, oldest first

    @property
    def slot_needed(self) -> int:
        return max(self.write_end, self.size_mask)

@dataclass(frozen=True)
class Layout:
    schema: Schema
    history: History
    events: tuple[EventLayout, ...]  # the current version of each event, schema order

def type_text(f: Field) -> str:
    """A field's type with what fixes its layout: bytes[16], array<pid:u32,comm:chars[16]>."""
    if f.type.entries:
        return f"array<{','.join(f'{e.name}:{type_text(e)}' for e in f.entries)}>"
    return f"{f.type.name}[{f.len}]" if f.type.needs_len else f.type.name


def _align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align

def lineage_fingerprint(major: int, first: Event) -> int:
    """Of the event's first published version: what compatible changes keep."""
    parts = [f"v{LAYOUT_VERSION}", f"major {major}", first.name, str(first.id)]
    parts += [f"{f.name}:{type_text(f)}" for f in first.fields]
    return zlib.crc32("|".join(parts).encode())

def layout_event(event: Event, index: int, version: int = 1, fingerprint: int | None = None,
                 older: tuple[EventLayout, ...] = ()) -> EventLayout:
    """One version of an event; without a fingerprint, the event is its own first version of major 1."""
    members: list[Member] = []
    offset = HEADER_SIZE
    descriptor_offsets: dict[str, int] = {}
    for field in event.fields:
        start = _align_up(offset, field.type.align)
        if start > offset:
            members.append(Member(f"_pad{offset}", offset, start - offset, None))
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
        room = field.max_bytes + (STR_READ_SLACK if field.type.reader.endswith("_str") else 0)
        variables.append(Variable(field, descriptor_offsets[field.name], cursor_max, room))
        write_end = max(write_end, cursor_max + room)
        cursor_max += field.max_bytes
    max_size = cursor_max
    size_mask = (1 << max_size.bit_length()) - 1  # smallest 2**k - 1 >= max_size

    return EventLayout(
        event=event,
        index=index,
        version=version,
        members=tuple(members),
        variables=tuple(variables),
        payload_off=payload_off,
        max_size=max_size,
        size_mask=size_mask,
        write_end=write_end,
        fingerprint=lineage_fingerprint(1, event) if fingerprint is None else fingerprint,
        older=older,
    )

def compute_layout(schema: Schema, history: History | None = None) -> Layout:
    """Layouts of every published version; without a history, the schema is version 1 of major 1."""
    history = history or History.first(schema)
    events = []
    for index, published in enumerate(history.events):
        fingerprint = lineage_fingerprint(history.major, published.versions[0])
        versions = [layout_event(e, index, n, fingerprint) for n, e in enumerate(published.versions[:-1], start=1)]
        events.append(layout_event(published.versions[-1], index, len(published.versions), fingerprint, tuple(versions)))
    return Layout(schema, history, tuple(events))
