"""Counting a stream of records as it is decoded: what was delivered, lost
and undecodable, per event, and sequence gaps per CPU (SensorStats); the
decoding of a sensor's batches with those counts kept (StreamDecoder)."""
from __future__ import annotations

import time
from collections import Counter
from itertools import compress, islice
from operator import itemgetter, lt
from typing import Iterator

from ..errors import DecodeError
from ..runtime import record
from .reassembly import Reassembler

_CPU, _SEQ = itemgetter(2), itemgetter(1)  # of an Event


def _event_id(data) -> int | None:
    """A raw record's event id; None when it is shorter than a header (decoding says why)."""
    return record.HEADER_FIELD["id"].unpack_from(data)[0] if len(data) >= record.HEADER_SIZE else None


class EventCounts:
    __slots__ = ("delivered", "lost", "undecodable")

    def __init__(self):
        self.delivered = self.lost = self.undecodable = 0

    def __repr__(self) -> str:
        return f"delivered {self.delivered}, lost {self.lost}, undecodable {self.undecodable}"


class SensorStats:
    """What was delivered, lost and undecodable, per event name and in total.

    `lost` is exact and the same on both transports: records the probe could
    not send (buffer full, or no free scratch slot: `nesting_drops` says how
    many of those), from the probe's in-kernel drop counters; complete after
    drain(). `undecodable` counts records that arrived but did not decode.

    `continuations_lost` counts continuation records the probe could not
    send; the events they belonged to arrive with those bytes `lost`.

    `sequence_gaps` is a cross-check: numbers missing between the records that
    arrived from one CPU, which can only be records lost to a full buffer or
    undecodable. Both transports hand over one CPU's records in the order they
    were numbered (perf has a buffer per CPU; the ring buffer keeps
    reservation order, and a CPU numbers and reserves in one go).
    """

    def __init__(self, event_names=()):
        self.per_event: dict[str, EventCounts] = {name: EventCounts() for name in event_names}
        self.delivered = 0
        self.lost = 0
        self.undecodable = 0
        self.sequence_gaps = 0
        self.nesting_drops = 0
        self.continuations_lost = 0
        self._last_seq: dict[int, int] = {}

    def note_sequence(self, cpu: int, seq: int) -> None:
        last = self._last_seq.get(cpu)
        if last is not None and seq > last + 1:
            self.sequence_gaps += seq - last - 1
        if last is None or seq > last:
            self._last_seq[cpu] = seq

    def note_sequences(self, cpu: int, seqs: list[int]) -> None:
        """note_sequence() for each of seqs in turn; in one step when they
        increase and start past the last one seen (as a CPU's records arrive)."""
        last = self._last_seq.get(cpu)
        if (last is None or seqs[0] > last) and all(map(lt, seqs, islice(seqs, 1, None))):
            first = seqs[0] if last is None else last + 1
            self.sequence_gaps += seqs[-1] - first + 1 - len(seqs)
            self._last_seq[cpu] = seqs[-1]
        else:
            for seq in seqs:
                self.note_sequence(cpu, seq)

    def counts(self, name: str) -> EventCounts:
        return self.per_event.setdefault(name, EventCounts())

    def to_dict(self) -> dict:
        return {"delivered": self.delivered, "lost": self.lost, "undecodable": self.undecodable,
                "sequence_gaps": self.sequence_gaps, "nesting_drops": self.nesting_drops,
                "continuations_lost": self.continuations_lost,
                "events": {name: {"delivered": c.delivered, "lost": c.lost, "undecodable": c.undecodable}
                           for name, c in self.per_event.items()}}

    def __str__(self) -> str:
        busy = [f"{name}: {c!r}" for name, c in self.per_event.items() if c.delivered or c.lost or c.undecodable]
        total = f"delivered {self.delivered}, lost {self.lost}, undecodable {self.undecodable}"
        if self.continuations_lost:
            total += f", continuation records lost {self.continuations_lost}"
        return total + (f" ({'; '.join(busy)})" if busy else "")


class StreamDecoder:
    """Decodes a sensor's raw records and counts them in `stats` (SensorStats):
    a run of records that need no reassembly is decoded in one loop
    (Decoder.decode_run) and counted in one step; continuations and spanning
    events go through `reassembler`, undecodable records are counted and
    skipped, one by one."""

    def __init__(self, decoder, stats: SensorStats, reassembler: Reassembler):
        self.decoder, self.stats, self.reassembler = decoder, stats, reassembler
        self._names_by_id = {cls.id: name for name, cls in decoder.events.items()}
        self._spanning = frozenset(cls.id for cls in decoder.events.values() if any(v.spans for v in cls.versions))
        # decoders of the events that need no reassembly: continuations (id 0) and spanning events are not here
        self._plain = decoder.dispatch(excluding=self._spanning)

    def decode(self, datas: list) -> tuple[list, list]:
        """The events of raw records, in order, each beside the raw record that
        gave it, all counted in self.stats. Runs of records that need no
        reassembly are decoded and counted at once; the others, one by one."""
        events: list = []
        raws: list = []
        at = 0
        while at < len(datas):
            start = len(events)
            end = self.decoder.decode_run(datas, at, events, self._plain)
            if end > at:
                raws.extend(islice(datas, at, end))
                self._count_run(events, start)
            if end < len(datas):
                data = datas[end]
                for event in self._decode_one(data):
                    events.append(event)
                    # a reassembled event's records back to back, for fleet output: the consumer reassembles them
                    raws.append(self.reassembler.take_raw(event) or data)
            at = end + 1
        return events, raws

    def _count_run(self, events: list, start: int) -> None:
        """Counts events[start:], decoded without reassembly, as delivered."""
        stats = self.stats
        run = events[start:]
        stats.delivered += len(run)
        classes = set(map(type, run))  # most often one: counting each is then not needed
        by_class = {classes.pop(): len(run)} if len(classes) == 1 else Counter(map(type, run))
        for cls, count in by_class.items():
            stats.counts(cls.name).delivered += count
        seqs = list(map(_SEQ, run))
        cpus = set(map(_CPU, run))
        if len(cpus) == 1:  # a perf batch is one CPU's
            stats.note_sequences(cpus.pop(), seqs)
            return
        every_cpu = list(map(_CPU, run))  # a ring buffer batch mixes them
        for cpu in cpus:
            stats.note_sequences(cpu, list(compress(seqs, map(cpu.__eq__, every_cpu))))

    def _decode_one(self, data) -> list:
        """A record that needs reassembly (or does not decode): the events it completes, counted."""
        stats = self.stats
        event_id = _event_id(data)
        try:
            if event_id == record.CONTINUATION_ID or event_id in self._spanning:
                events = self.reassembler.feed(data, time.monotonic_ns())
                if event_id == record.CONTINUATION_ID:  # numbered like any record: the gap check sees it
                    head = record.parse_header(data)
                    stats.note_sequence(head["cpu"], head["seq"])
                return list(self.counted(events))
            event = self.decoder.decode(data)
        except DecodeError:
            stats.undecodable += 1
            stats.counts(self._names_by_id.get(event_id, "unknown")).undecodable += 1
            return []
        return list(self.counted([event]))

    def settle(self, final: bool) -> tuple[list, list]:
        """The events that waited for continuations past the age limit (final:
        all of them, the stream ended), counted, each beside its records."""
        reassembler = self.reassembler
        events = list(self.counted(reassembler.flush() if final else reassembler.expire(time.monotonic_ns())))
        return events, [reassembler.take_raw(event) for event in events]

    def counted(self, events) -> Iterator:
        """Counts events decoded one by one (reassembled ones included) as delivered."""
        for event in events:
            self.stats.delivered += 1
            self.stats.counts(event.name).delivered += 1
            self.stats.note_sequence(event.cpu, event.seq)
            yield event
