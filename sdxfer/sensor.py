"""Sensor: any probe built on a generated xfer.h, loaded, attached and read.

    from sdxfer import Sensor
    with Sensor("my.bpf.c", schema="my/events.yaml", transport="ringbuf",
                defines={"TARGET_PID": 1234}) as sensor:
        for event in sensor.events():       # decoded events of every type in the schema
            print(event.name, event.to_dict())
        print(sensor.stats)

Loading goes: check the host (root, bcc, kernel headers, tracefs) -> assemble
the program (sdxfer.program: header generated from the schema, kernel
offsets from BTF, -D flags) -> compile with BCC, programs loaded but not yet
attached -> open the reader -> attach. Opening the reader first means no
record is refused for want of one; anything refused later (a full buffer, no
free scratch slot) is counted per event by the probe's drop counters.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import threading
import time
from collections import Counter
from functools import partial
from itertools import compress, islice, repeat
from operator import itemgetter, lt
from pathlib import Path
from typing import Callable, Iterator

from . import kheaders, record
from .errors import DecodeError, ProbeError
from .program import TRANSPORTS, Assembly, assemble
from .readers import PerfReader, Record, RingReader, check_machine
from .reassembly import DEFAULT_MAX_AGE_NS, DEFAULT_MAX_PENDING_BYTES, Reassembler

__all__ = ["EventCounts", "ProbeError", "Record", "Sensor", "SensorStats", "StreamDecoder", "TRANSPORTS",
           "check_environment"]

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# At most this long between polls, so batched records are delivered within it.
POLL_TIMEOUT_MS = 100
PERF_PAGES = 128  # per CPU
PERF_WAKEUP_EVENTS = 2 * record.WAKEUP_EVERY
DROPS_INTERVAL_S = 0.1  # how often the probe's drop counters are read


_new_record = partial(tuple.__new__, Record)  # a Record from (data, cpu, lost), without a Python-level call
_DATA = itemgetter(0)  # of a Record
_CPU, _SEQ = itemgetter(2), itemgetter(1)  # of an Event

# A marker among records (empty, as loss notices are): the records end here
# (drain), so events still waiting for continuations go out.
_END = Record(b"", -1, 0)


def _event_id(data) -> int | None:
    """A raw record's event id; None when it is shorter than a header (decoding says why)."""
    return record.HEADER_FIELD["id"].unpack_from(data)[0] if len(data) >= record.HEADER_SIZE else None


def check_environment() -> Path:
    """The kernel header tree to compile against; ProbeError for the first thing
    that stops a probe from loading here."""
    if os.geteuid() != 0:
        raise ProbeError("the probe needs root (it loads eBPF programs): run it with sudo")
    try:
        import bcc  # noqa: F401
    except ImportError:
        raise ProbeError(
            "the bcc module is missing: install python3-bpfcc (apt-get install python3-bpfcc), "
            "run with /usr/bin/python3 or the project venv (made with --system-site-packages)"
        ) from None
    check_machine()
    headers = kheaders.find()
    if not any(os.path.isdir(os.path.join(d, "events")) for d in TRACEFS_DIRS):
        raise ProbeError("tracefs is not mounted: run mount -t tracefs tracefs /sys/kernel/tracing")
    return headers


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


@contextlib.contextmanager
def _stderr_captured():
    """Collects what libbcc writes to fd 2 (compiler output, verifier log)."""
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        log: list[str] = []
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            log.append(capture.read().decode(errors="replace"))


@contextlib.contextmanager
def _kernel_source(headers: Path):
    """BCC reads the header tree from its environment while it compiles."""
    saved = os.environ.get("BCC_KERNEL_SOURCE")
    os.environ["BCC_KERNEL_SOURCE"] = str(headers)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["BCC_KERNEL_SOURCE"]
        else:
            os.environ["BCC_KERNEL_SOURCE"] = saved


def load_failure(exc: Exception, log: str, headers, event_names=()) -> ProbeError:
    """The one line that says why BCC could not compile, load or attach."""
    import re

    lines = [line.strip() for line in log.splitlines() if line.strip()]
    message = str(exc)
    if "Failed to load BPF program" in message:
        # The verifier's verdict is the last line before its statistics.
        verdict = next((l for l in reversed(lines) if not l.startswith(("processed", "verification time"))), "")
        return ProbeError(f"the kernel's verifier rejected the probe ({message.split(': ')[-1]}): {verdict}")
    errors = [l for l in lines if "error:" in l]
    if errors or "Failed to compile" in message:
        first = errors[0] if errors else (lines[-1] if lines else message)
        undeclared = re.search(r"(?:undeclared function|implicit declaration of function) '(\w+)_print'", first)
        if undeclared:
            name = undeclared.group(1)
            return ProbeError(f"the program calls {name}_print(), but the schema has no event {name!r}"
                              f" (its events: {', '.join(event_names) or 'none'})")
        return ProbeError(f"BCC could not compile the probe: {first} (kernel headers: {headers})")
    if "Failed to attach" in message:
        return ProbeError(f"could not attach the probe: {message.splitlines()[0]} (does this kernel have the tracepoint?)")
    return ProbeError(f"BCC could not load the probe: {message.splitlines()[0] if message else type(exc).__name__}")


def _deferred_bpf_class():
    from bcc import BPF

    class DeferredBPF(BPF):
        """BCC attaches every program as it loads the module; this one waits
        for attach_all(), so the reader is open before the first record."""

        def _trace_autoload(self):
            pass

        def attach_all(self):
            self._fill_rest_programs()
            BPF._trace_autoload(self)

        def _fill_rest_programs(self):
            """The tail-called program that sends continuation records, where
            the schema has spanning fields: in place before any probe runs."""
            try:
                programs = self.get_table(record.REST_PROGRAMS_MAP.encode())
            except KeyError:
                return
            rest = self.load_func(record.REST_PROGRAM.encode(), BPF.RAW_TRACEPOINT)
            programs[ctypes.c_int(0)] = ctypes.c_int(rest.fd)

        def detach_all(self):
            for tp in list(self.tracepoint_fds):
                self.detach_tracepoint(tp)
            for tp in list(self.raw_tracepoint_fds):
                self.detach_raw_tracepoint(tp)

    return DeferredBPF


class Sensor:
    """A probe loaded and attached; records arrive through read(), records(),
    events() or run(callback). Close it (or use `with`) to detach."""

    def __init__(self, program: str | Path, *, schema: str | Path | None = None, transport: str = "perf",
                 defines: dict | None = None, decoder=None, perf_pages: int | None = None,
                 perf_wakeup_events: int = PERF_WAKEUP_EVENTS, ringbuf_pages: int | None = None,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES, max_age_ns: int = DEFAULT_MAX_AGE_NS):
        assembly = assemble(program, schema=schema, transport=transport, defines=defines,
                            ringbuf_pages=ringbuf_pages)
        headers = check_environment()
        self.assembly: Assembly = assembly
        self.transport = transport
        self.decoder = decoder or assembly.code.decoder
        self.event_names = assembly.code.event_names
        self.stats = SensorStats(self.event_names)
        # events whose records continuation records may follow go through it
        self.reassembler = Reassembler(self.decoder, max_pending_bytes=max_pending_bytes, max_age_ns=max_age_ns,
                                       keep_raw=True)
        self._stream = StreamDecoder(self.decoder, self.stats, self.reassembler)
        self._closed = False
        # read() and close() in different threads: close waits for a read to
        # end (at most one poll), so no read touches buffers already unmapped
        self._reading = threading.RLock()
        self._attached = False
        self._next_drops_read = 0.0
        try:
            with _stderr_captured() as log, _kernel_source(headers):
                self._bpf = _deferred_bpf_class()(text=assembly.text.encode(), cflags=assembly.cflags)
        except Exception as exc:  # bcc raises bare Exception for every failure
            raise load_failure(exc, "".join(log), headers, self.event_names) from None
        self._drops_table = self._bpf[record.DROPS_MAP.encode()]
        self._cpu_table = self._bpf[record.CPU_MAP.encode()]
        try:
            if transport == "ringbuf":
                self._reader = RingReader(self._bpf, record.EVENTS_MAP.encode())
            else:
                self._reader = PerfReader(self._bpf, record.EVENTS_MAP.encode(),
                                          assembly.code.buffer_pages(perf_pages, PERF_PAGES), perf_wakeup_events,
                                          self._read_drops_now)
        except Exception as exc:  # bcc again: e.g. perf buffers beyond the memlock limit
            self._bpf.cleanup()
            raise ProbeError(f"could not open the {transport} buffer: {exc} (probe unloaded; "
                             "if it is the memlock limit, raise it with ulimit -l)") from None
        try:
            with _stderr_captured() as log:
                self._bpf.attach_all()
        except Exception as exc:
            self._reader.close()
            self._bpf.cleanup()
            raise load_failure(exc, "".join(log), headers, self.event_names) from None
        self._attached = True

    @property
    def programs_attached(self) -> int:
        return len(self._bpf.tracepoint_fds) + len(self._bpf.raw_tracepoint_fds) if self._attached else 0

    # ---- counters in the kernel --------------------------------------------

    def _drops(self) -> list[int]:
        """Per event (schema order), then continuation records: records not sent, summed over CPUs."""
        return [sum(self._drops_table[ctypes.c_int(i)]) for i in range(len(self.event_names) + 1)]

    def cpu_state(self) -> list[dict[str, int]]:
        """Per CPU: records numbered (seq), scratch slots in use (busy, a bit per
        slot, and slots_in_use), records refused for want of a slot (nesting_drops)."""
        states = []
        for cpu in self._cpu_table[ctypes.c_int(0)]:
            state = {name: getattr(cpu, name) for name, _ in record.CPU_STATE}
            state["slots_in_use"] = bin(state["busy"]).count("1")
            states.append(state)
        return states

    def records_sequenced(self) -> int:
        """Records the probe has numbered so far (sent or refused by the transport),
        over all CPUs. Once drained, delivered + lost + undecodable come to this
        plus nesting_drops (a record without a slot is never numbered)."""
        return sum(cpu["seq"] for cpu in self.cpu_state())

    def _read_drops_now(self) -> None:
        self._next_drops_read = 0.0

    def _update_loss(self) -> int:
        new = 0
        *event_drops, continuation_drops = self._drops()
        for name, dropped in zip(self.event_names, event_drops):
            counts = self.stats.counts(name)
            if dropped > counts.lost:
                new += dropped - counts.lost
                counts.lost = dropped
        self.stats.lost += new
        new += continuation_drops - self.stats.continuations_lost
        self.stats.continuations_lost = continuation_drops
        self.stats.nesting_drops = sum(cpu["nesting_drops"] for cpu in self.cpu_state())
        return new

    # ---- reading -------------------------------------------------------------

    def _read_batches(self, timeout_ms: int, whole: bool = False) -> tuple[list, int]:
        """The reader's batches of raw records (whole: all the buffers hold),
        and loss newly counted (the drop counters are read at most every
        DROPS_INTERVAL_S, or at once after the transport said it lost some)."""
        with self._reading:
            if self._closed:
                return [], 0
            batches = self._reader.read(timeout_ms, whole)
            now = time.monotonic()
            if now < self._next_drops_read:
                return batches, 0
            self._next_drops_read = now + DROPS_INTERVAL_S
            return batches, self._update_loss()

    def read(self, timeout_ms: int = POLL_TIMEOUT_MS) -> list[Record]:
        """Waits up to timeout_ms and returns what arrived (possibly nothing;
        at most readers.BATCH_BYTES of each buffer, the rest comes next);
        new loss comes as a Record with no data."""
        return self._records(*self._read_batches(timeout_ms))

    @staticmethod
    def _records(batches: list, lost: int) -> list[Record]:
        records: list[Record] = []
        for cpu, datas in batches:
            records.extend(map(_new_record, zip(datas, repeat(cpu), repeat(0))))
        if lost:
            records.append(Record(b"", -1, lost))
        return records

    def records(self, stop: Callable[[], bool] = lambda: False) -> Iterator[Record]:
        while not self._closed and not stop():
            yield from self.read()

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator:
        """Decoded events until stop() is true or the sensor is closed (each
        batch the transport gives decoded at once)."""
        while not self._closed and not stop():
            batches, _ = self._read_batches(POLL_TIMEOUT_MS)
            for _, datas in batches:
                yield from self._stream.decode(datas)[0]
            if self.reassembler.pending:  # a quiet stream still delivers events whose continuations stopped coming
                yield from self._stream.settle(final=False)[0]
        yield from self._stream.settle(final=True)[0]

    def decoded(self, records) -> Iterator:
        """Decodes records; loss is counted in self.stats, undecodable records
        are counted and skipped."""
        return (event for _, event in self.decoded_records(records))

    def decoded_records(self, records) -> Iterator[tuple[bytes, object]]:
        """As decoded(), each event beside its raw record (what fleet output publishes).

        A list (what read() returns) is decoded at once; other iterables record
        by record. An event whose continuation records have not all come waits
        for them across calls, up to the reassembler's age limit; the records
        of drain() end the stream and deliver such events as they are."""
        if isinstance(records, list):
            yield from self._decoded_list(records)
        else:
            for rec in records:
                yield from self._decoded_list([rec])
        if self.reassembler.pending:
            yield from self._settled(None)

    def _decoded_list(self, records: list) -> Iterator[tuple[bytes, object]]:
        """Each run of records between loss notices and markers decoded at once."""
        datas = list(map(_DATA, records))
        start = 0
        while start <= len(datas):
            try:
                end = datas.index(b"", start)
            except ValueError:
                end = len(datas)
            if end > start:
                events, raws = self._stream.decode(datas[start:end])
                yield from zip(raws, events)
            if end < len(datas):
                yield from self._settled(records[end])
            start = end + 1

    def _settled(self, empty: Record | None) -> Iterator[tuple[bytes, object]]:
        """After a loss notice or a marker (or a call's records): the events
        that waited for continuations past the age limit, or all at the end."""
        if empty is _END or self.reassembler.pending:
            events, raws = self._stream.settle(final=empty is _END)
            yield from zip(raws, events)

    def run(self, callback: Callable, stop: Callable[[], bool] = lambda: False) -> None:
        for event in self.events(stop):
            callback(event)

    def drain(self) -> list[Record]:
        """What is still buffered, and the final drop counts, without waiting;
        decoded, these end the stream (see decoded_records)."""
        self._read_drops_now()
        return self._records(*self._read_batches(0, whole=True)) + [_END]

    # ---- life cycle ----------------------------------------------------------

    def detach(self) -> None:
        """Stops the probe's programs; buffers and counters stay readable (drain())."""
        if self._attached:
            self._attached = False
            self._bpf.detach_all()

    def close(self) -> None:
        """Unloads the probe; a read in another thread ends first, and
        records() and events() there stop."""
        with self._reading:
            if not self._closed:
                self.detach()
                self._update_loss()
                self._closed = True
                self._reader.close()
                self._bpf.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def program_text(program: str | Path, **options) -> str:
    """The final program text, -D macros written out (what --ebpf prints)."""
    return assemble(program, **options).with_defines()
