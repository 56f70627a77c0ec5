"""Reassembly: an event's record and its continuation records, one event again.

A field whose schema `total` exceeds its `max` keeps `max` bytes in the
event's record; when more existed, the record's descriptor says how many
(`lost`) and continuation records follow from the same CPU, each carrying the
record's sequence number, the field and the chunk's offset (sdxfer.record).
`Reassembler.feed` takes records in any order, several CPUs interleaved, and
gives back events whose spanning fields are whole. An event whose
continuations do not all arrive is delivered once it is older than
`max_age_ns`, or evicted when pending bytes pass `max_pending_bytes` (or
pending events and chunks `max_pending_parts`), with the contiguous prefix
only and the field flagged: `truncated`, and `lost` the exact bytes missing
where the record told the length (None otherwise). Nothing is ever spliced
over a gap. A continuation of another event, schema or version than its
record's is rejected.

Ages are on CLOCK_MONOTONIC, the kernel timestamps' clock: callers pass
`now_ns` (a live reader: time.monotonic_ns()); without it a record's own
timestamp is the time, which suits a file of records.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .. import runtime as rt
from ..errors import DecodeError
from ..runtime.record import (CONTINUATION_FORMAT, CONTINUATION_ID, CONTINUATION_LAST, CONTINUATION_PAYLOAD_OFF,
                     DESCRIPTOR_FORMAT, HEADER_FIELD, LOST_UNKNOWN, REASSEMBLY_MAX_PARTS, VARIABLE_DECODING)

DEFAULT_MAX_PENDING_BYTES = 64 << 20
DEFAULT_MAX_AGE_NS = 2_000_000_000

_CONTINUATION = struct.Struct(CONTINUATION_FORMAT)
_DESCRIPTOR = struct.Struct("<" + DESCRIPTOR_FORMAT)


def is_continuation(buf) -> bool:
    return HEADER_FIELD["id"].unpack_from(buf)[0] == CONTINUATION_ID


@dataclass
class ReassemblyStats:
    continuations: int = 0  # continuation records taken in
    completed: int = 0  # events whose spanning fields all arrived whole
    incomplete: int = 0  # events delivered with a part missing (age, eviction or flush)
    evicted: int = 0  # of those, delivered early to keep pending bytes under the limit
    orphans: int = 0  # continuations dropped: their record never came (or came twice)
    duplicates: int = 0  # continuations or records seen again, ignored
    rejected: int = 0  # continuations that do not fit their record (offset, field, size)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Chunk:
    event_id: int
    fingerprint: int
    version: int
    field: int
    offset: int
    data: bytes
    last: bool
    lost: int
    raw: bytes = b""  # the continuation record, kept only with keep_raw


@dataclass
class _Field:
    span: rt.Span
    head: bytes  # the record's part: bytes 0..max
    known: int | None  # bytes the field had (max + the record's lost), None: unknown
    chunks: dict[int, _Chunk] = field(default_factory=dict)  # by offset
    reach: int = -1  # where the contiguous bytes end (span.max to start with)
    last: _Chunk | None = None  # the last chunk, once the contiguous bytes reach it

    def __post_init__(self):
        self.reach = self.span.max

    def advance(self) -> None:
        """Moves `reach` over the chunks that continue it: each chunk is
        passed once, so a field of many chunks costs no more than their bytes."""
        while self.last is None and self.reach in self.chunks:
            chunk = self.chunks[self.reach]
            if chunk.last:
                self.last = chunk
            elif not chunk.data:
                break  # stuck: a chunk of no bytes that is not the last
            else:
                self.reach += len(chunk.data)

    def prefix(self) -> bytes:
        """The contiguous bytes from 0 (through the last chunk if they reach it)."""
        parts, at = [self.head], self.span.max
        while at < self.reach:
            data = self.chunks[at].data
            parts.append(data)
            at += len(data)
        if self.last is not None:
            parts.append(self.last.data)
        return b"".join(parts)


@dataclass
class _Pending:
    born_ns: int
    event: rt.Event | None = None
    fields: dict[int, _Field] = field(default_factory=dict)
    early: list[_Chunk] = field(default_factory=list)  # chunks that came before their record
    size: int = 0  # bytes held
    parts: int = 0  # it and its chunks held
    raw: bytes = b""  # the record, kept only with keep_raw


class Reassembler:
    def __init__(self, decoder, *, max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
                 max_age_ns: int = DEFAULT_MAX_AGE_NS, keep_raw: bool = False,
                 max_pending_parts: int = REASSEMBLY_MAX_PARTS):
        """keep_raw: remember each reassembled event's records, its record and
        then the continuations used, back to back, for take_raw()."""
        if max_pending_bytes < 0 or max_age_ns < 0 or max_pending_parts < 0:
            raise ValueError("reassembly limits must not be negative")
        self.decoder = decoder
        self.max_pending_bytes = max_pending_bytes
        self.max_age_ns = max_age_ns
        self.max_pending_parts = max_pending_parts
        self.stats = ReassemblyStats()
        self.pending_bytes = 0
        self.pending_parts = 0  # events and chunks held
        self._pending: dict[tuple[int, int], _Pending] = {}  # (cpu, seq) of the record -> oldest first
        self.keep_raw = keep_raw
        self._raw: dict[int, bytes] = {}  # id() of an event delivered -> its records

    def take_raw(self, event: rt.Event) -> bytes:
        """With keep_raw, the records an event just delivered was made of
        (iter_reassembled gives the event back from them); b"" otherwise."""
        return self._raw.pop(id(event), b"")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def feed(self, buf, now_ns: int | None = None) -> list[rt.Event]:
        """Any record: events complete now (possibly none). DecodeError for a malformed one."""
        try:
            continuation = is_continuation(buf)
        except (struct.error, TypeError):
            continuation = False  # the decoder says what is wrong
        if continuation:
            return self.continuation(buf, now_ns)
        return self.record(self.decoder.decode(buf), buf, now_ns)

    def record(self, event: rt.Event, buf, now_ns: int | None = None) -> list[rt.Event]:
        """An event's record, decoded already: the event, unless it waits for continuations."""
        cls = event.__class__
        version = cls.versions[min(event.version, len(cls.versions)) - 1]
        now = event.timestamp_ns if now_ns is None else now_ns
        if not version.spans:
            return [event] + self._expired(now) if self._pending else [event]
        fields = {}
        for span in version.spans:
            off, length, lost = _DESCRIPTOR.unpack_from(buf, span.descriptor_off)
            if off and length == span.max and lost:
                known = None if lost == LOST_UNKNOWN else span.max + lost
                fields[span.index] = _Field(span, bytes(buf[off:off + length]), known)
        if not fields:
            return [event] + self._expired(now) if self._pending else [event]
        key = (event.cpu, event.seq)
        pending = self._pending.get(key)
        if pending is not None and pending.event is not None:
            self.stats.duplicates += 1
            return self._expired(now)  # its first copy is being reassembled
        if pending is None:
            pending = self._add(key, now)
        pending.event, pending.fields = event, fields
        if self.keep_raw:  # as long as its header says (perf pads records)
            pending.raw = bytes(buf[:HEADER_FIELD["size"].unpack_from(buf)[0]])
        self._hold(pending, sum(len(f.head) for f in fields.values()))
        early, pending.early = pending.early, []
        self._hold(pending, -sum(len(chunk.data) for chunk in early), -len(early))  # held again once attached
        for chunk in early:
            self._attach(pending, chunk)
        return self._settle(key, pending, now)

    def continuation(self, buf, now_ns: int | None = None) -> list[rt.Event]:
        """A continuation record: the event it completes, if it does."""
        try:
            (timestamp_ns, _seq, size, fingerprint, _id, payload_off, cpu, version, parent_seq, offset, lost,
             event_id, index, flags) = _CONTINUATION.unpack_from(buf)
        except struct.error:
            raise DecodeError(f"continuation record of {len(buf)} bytes, shorter than its"
                              f" {CONTINUATION_PAYLOAD_OFF}-byte fixed part") from None
        if payload_off != CONTINUATION_PAYLOAD_OFF or not payload_off <= size <= len(buf):
            raise DecodeError(f"continuation record: payload offset {payload_off}, size {size},"
                              f" {len(buf)} bytes given")
        self.stats.continuations += 1
        now = timestamp_ns if now_ns is None else now_ns
        raw = bytes(buf[:size]) if self.keep_raw else b""
        data = memoryview(raw)[payload_off:] if self.keep_raw else bytes(buf[payload_off:size])
        chunk = _Chunk(event_id, fingerprint, version, index, offset, data, bool(flags & CONTINUATION_LAST), lost, raw)
        key = (cpu, parent_seq)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._add(key, now)
        if pending.event is None:
            pending.early.append(chunk)
            self._hold(pending, len(chunk.data), 1)
            return self._evicted() + self._expired(now)
        self._attach(pending, chunk)
        return self._settle(key, pending, now)

    def expire(self, now_ns: int) -> list[rt.Event]:
        """Events older than the age limit, delivered with what arrived."""
        return self._expired(now_ns)

    def flush(self) -> list[rt.Event]:
        """Every pending event, as far as it arrived (the end of a file or a stream)."""
        out = []
        for key in list(self._pending):
            out += self._give_up(key)
        return out

    # ---- inside ------------------------------------------------------------

    def _add(self, key, now: int) -> _Pending:
        pending = self._pending[key] = _Pending(now)
        self._hold(pending, 0, 1)
        return pending

    def _hold(self, pending: _Pending, size: int, parts: int = 0) -> None:
        pending.size += size
        self.pending_bytes += size
        pending.parts += parts
        self.pending_parts += parts

    def _attach(self, pending: _Pending, chunk: _Chunk) -> None:
        state = pending.fields.get(chunk.field)
        event = pending.event
        if (state is None or chunk.event_id != event.id or chunk.fingerprint != event.fingerprint
                or chunk.version != event.version or chunk.offset < state.span.max
                or chunk.offset + len(chunk.data) > state.span.total):
            self.stats.rejected += 1
            return
        if chunk.offset in state.chunks:
            self.stats.duplicates += 1
            return
        state.chunks[chunk.offset] = chunk
        state.advance()
        self._hold(pending, len(chunk.data), 1)

    def _settle(self, key, pending: _Pending, now: int) -> list[rt.Event]:
        if all(state.last is not None for state in pending.fields.values()):
            self.stats.completed += 1
            return [self._deliver(key)] + self._expired(now)
        return self._evicted() + self._expired(now)

    def _evicted(self) -> list[rt.Event]:
        out = []
        while (self.pending_bytes > self.max_pending_bytes or self.pending_parts > self.max_pending_parts) and self._pending:
            key = next(iter(self._pending))
            if self._pending[key].event is not None:
                self.stats.evicted += 1
            out += self._give_up(key)
        return out

    def _expired(self, now: int | None) -> list[rt.Event]:
        out = []
        if now is None:
            return out
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if now - pending.born_ns <= self.max_age_ns:
                break
            out += self._give_up(key)
        return out

    def _give_up(self, key) -> list[rt.Event]:
        pending = self._pending[key]
        if pending.event is None:
            self.stats.orphans += len(pending.early)
            self.pending_bytes -= pending.size
            self.pending_parts -= pending.parts
            del self._pending[key]
            return []
        self.stats.incomplete += 1
        return [self._deliver(key)]

    def _deliver(self, key) -> rt.Event:
        pending = self._pending.pop(key)
        self.pending_bytes -= pending.size
        self.pending_parts -= pending.parts
        event = pending.event
        cls = event.__class__
        values = list(event[:-2])
        lost = dict(event.lost)
        for index, state in pending.fields.items():
            data, last = state.prefix(), state.last
            name = cls.fields[index]
            decoding = VARIABLE_DECODING[cls.kinds[index]]
            values[4 + index] = rt.split_list(data, 0, len(data)) if decoding == "list" else data
            if last is not None:
                missing = None if last.lost == LOST_UNKNOWN else last.lost
            else:
                missing = None if state.known is None else state.known - len(data)
            if missing == 0:
                lost.pop(name, None)
            else:
                lost[name] = missing
        ordered = {name: lost[name] for name in cls.fields if name in lost}
        delivered = cls((*values, tuple(ordered), ordered))
        if self.keep_raw:
            self._raw[id(delivered)] = pending.raw + b"".join(
                chunk.raw for state in pending.fields.values() for chunk in state.chunks.values())
        return delivered

