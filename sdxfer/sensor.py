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
import time
from pathlib import Path
from typing import Callable, Iterator

from . import kheaders, record
from .errors import DecodeError, ProbeError
from .program import TRANSPORTS, Assembly, assemble
from .readers import PerfReader, Record, RingReader
from .reassembly import DEFAULT_MAX_AGE_NS, DEFAULT_MAX_PENDING_BYTES, Reassembler

__all__ = ["EventCounts", "ProbeError", "Record", "Sensor", "SensorStats", "TRANSPORTS", "check_environment"]

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# At most this long between polls, so batched records are delivered within it.
POLL_TIMEOUT_MS = 100
PERF_PAGES = 128  # per CPU
PERF_WAKEUP_EVENTS = 2 * record.WAKEUP_EVERY
DROPS_INTERVAL_S = 0.1  # how often the probe's drop counters are read


# Markers among records (empty, as loss notices are): a poll happened; the
# records end here (drain), so events still waiting for continuations go out.
_POLLED = Record(b"", -1, 0)
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
        self._names_by_id = {cls.id: name for name, cls in self.decoder.events.items()}
        # events whose records continuation records may follow go through it
        self.reassembler = Reassembler(self.decoder, max_pending_bytes=max_pending_bytes, max_age_ns=max_age_ns,
                                       keep_raw=True)
        self._spanning = frozenset(cls.id for cls in self.decoder.events.values()
                                   if any(v.spans for v in cls.versions))
        self._closed = False
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

    def read(self, timeout_ms: int = POLL_TIMEOUT_MS) -> list[Record]:
        """Waits up to timeout_ms and returns what arrived (possibly nothing);
        new loss comes as a Record with no data."""
        pending = self._reader.read(timeout_ms)
        batch = list(pending)
        pending.clear()
        now = time.monotonic()
        if now >= self._next_drops_read:
            self._next_drops_read = now + DROPS_INTERVAL_S
            lost = self._update_loss()
            if lost:
                batch.append(Record(b"", -1, lost))
        return batch

    def records(self, stop: Callable[[], bool] = lambda: False) -> Iterator[Record]:
        while not self._closed and not stop():
            yield from self.read()

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator:
        """Decoded events until stop() is true or the sensor is closed."""
        return self.decoded(self._records_and_polls(stop))

    def _records_and_polls(self, stop: Callable[[], bool]) -> Iterator[Record]:
        """records(), and an empty Record after each poll: a quiet stream
        still delivers events whose continuations stopped coming."""
        while not self._closed and not stop():
            yield from self.read()
            yield _POLLED
        yield _END

    def decoded(self, records) -> Iterator:
        """Decodes records; loss is counted in self.stats, undecodable records
        are counted and skipped."""
        return (event for _, event in self.decoded_records(records))

    def decoded_records(self, records) -> Iterator[tuple[bytes, object]]:
        """As decoded(), each event beside its raw record (what fleet output publishes).

        An event whose continuation records have not all come waits for them
        across calls, up to the reassembler's age limit; the records of
        drain() end the stream and deliver such events as they are."""
        decode = self.decoder.decode
        stats = self.stats
        spanning, reassembler = self._spanning, self.reassembler
        for rec in records:
            if not rec.data:  # a loss notice, or a marker
                if rec is _END:
                    yield from self._counted(reassembler.flush(), b"")
                elif reassembler.pending:
                    yield from self._counted(reassembler.expire(time.monotonic_ns()), b"")
                continue
            event_id = _event_id(rec.data)
            try:
                if event_id == record.CONTINUATION_ID or event_id in spanning:
                    events = reassembler.feed(rec.data, time.monotonic_ns())
                    if event_id == record.CONTINUATION_ID:  # numbered like any record: the gap check sees it
                        head = record.parse_header(rec.data)
                        stats.note_sequence(head["cpu"], head["seq"])
                    yield from self._counted(events, rec.data)
                    continue
                event = decode(rec.data)
            except DecodeError:
                stats.undecodable += 1
                stats.counts(self._names_by_id.get(event_id, "unknown")).undecodable += 1
                continue
            stats.delivered += 1
            stats.per_event[event.name].delivered += 1
            stats.note_sequence(event.cpu, event.seq)
            yield rec.data, event
        if reassembler.pending:
            yield from self._counted(reassembler.expire(time.monotonic_ns()), b"")

    def _counted(self, events, raw) -> Iterator:
        """Counts reassembled events as decoded_records() counts the others."""
        for event in events:
            self.stats.delivered += 1
            self.stats.counts(event.name).delivered += 1
            self.stats.note_sequence(event.cpu, event.seq)
            # its records back to back, for fleet output: the consumer reassembles them
            yield self.reassembler.take_raw(event) or raw, event

    def run(self, callback: Callable, stop: Callable[[], bool] = lambda: False) -> None:
        for event in self.events(stop):
            callback(event)

    def drain(self) -> list[Record]:
        """What is still buffered, and the final drop counts, without waiting;
        decoded, these end the stream (see decoded_records)."""
        self._read_drops_now()
        return self.read(0) + [_END]

    # ---- life cycle ----------------------------------------------------------

    def detach(self) -> None:
        """Stops the probe's programs; buffers and counters stay readable (drain())."""
        if self._attached:
            self._attached = False
            self._bpf.detach_all()

    def close(self) -> None:
        if not self._closed:
            self.detach()
            self._update_loss()
            self._closed = True
            self._bpf.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def program_text(program: str | Path, **options) -> str:
    """The final program text, -D macros written out (what --ebpf prints)."""
    return assemble(program, **options).with_defines()
