"""Sensor: any probe built on a generated xfer.h, loaded, attached and read.

    from sdxfer import Sensor
    with Sensor("my.bpf.c", schema="my/events.yaml", transport="ringbuf",
                defines={"TARGET_PID": 1234}) as sensor:
        for event in sensor.events():       # decoded events of every type in the schema
            print(event.name, event.to_dict())
        print(sensor.stats)

C text is built by clang into a CO-RE object (cached by content in the
user's cache folder) and loaded through libbpf where clang is there, else
compiled by BCC, which also takes over a probe clang cannot build or libbpf
cannot load (written for BCC alone); one line on stderr (sensor.origin)
says which. backend="libbpf" or "bcc" asks for one.

Loading goes, on the bcc backend: check the host (root,
bcc, kernel headers, tracefs) -> assemble the program (sdxfer.kernel.program:
header generated from the schema, kernel offsets from BTF, -D flags) ->
compile with BCC, programs loaded but not yet attached -> open the reader ->
attach. The libbpf backend (the default for an object `sdxfer build` wrote,
`Sensor("probe.bpf.o", schema=...)`) loads it through the system's libbpf
instead (sdxfer.kernel.core), with no bcc and no kernel headers; its
transport is the one it was built for. Opening the reader first means no
record is refused for want of one; anything refused later (a full buffer, no
free scratch slot) is counted per event by the probe's drop counters.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
import time
from functools import partial
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterator

from ..errors import ProbeError
from ..runtime import record
from ..stream.counting import EventCounts, SensorStats, StreamDecoder
from ..stream.reassembly import DEFAULT_MAX_AGE_NS, DEFAULT_MAX_PENDING_BYTES, Reassembler
from .bcc import BccProbe, load_failure  # noqa: F401  (load_failure: sdxfer.sensor.load_failure, kept)
from .build import cached_object, clang_available
from .core import CoreProbe, is_object
from .filters import STRUCTURAL_DEFINES, EventFilter
from .host import check_core_environment, check_environment, default_transport
from .program import PROGRAM_TEXT, TRANSPORTS, Assembly, assemble, schema_code
from .readers import Record

# clang's words for a program whose locals overrun the 512-byte BPF stack
STACK_LIMIT_ERROR = "BPF stack limit"

BACKENDS = ("libbpf", "bcc")
BACKEND_ALIASES = {"core": "libbpf"}  # the name it had before the issue named it

__all__ = ["BACKENDS", "EventCounts", "ProbeError", "Record", "Sensor", "SensorStats", "StreamDecoder", "TRANSPORTS",
           "VERIFIER_LIMIT", "check_environment", "verified_instructions"]

# The kernel's verifier gives up on a program after processing this many
# instructions (BPF_COMPLEXITY_LIMIT_INSNS).
VERIFIER_LIMIT = 1_000_000
# At most this long between polls, so batched records are delivered within it.
POLL_TIMEOUT_MS = 100
PERF_PAGES = 128  # per CPU
PERF_WAKEUP_EVENTS = 2 * record.WAKEUP_EVERY
DROPS_INTERVAL_S = 0.1  # how often the probe's drop counters are read


_new_record = partial(tuple.__new__, Record)  # a Record from (data, cpu, lost), without a Python-level call
_DATA = itemgetter(0)  # of a Record

# A marker among records (empty, as loss notices are): the records end here
# (drain), so events still waiting for continuations go out.
_END = Record(b"", -1, 0)


class Sensor:
    """A probe loaded and attached; records arrive through read(), records(),
    events() or run(callback). Close it (or use `with`) to detach."""

    def __init__(self, program: str | Path | bytes, *, schema: str | Path | None = None, transport: str | None = None,
                 defines: dict | None = None, decoder=None, perf_pages: int | None = None,
                 perf_wakeup_events: int = PERF_WAKEUP_EVENTS, ringbuf_pages: int | None = None,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES, max_age_ns: int = DEFAULT_MAX_AGE_NS,
                 event_filter: EventFilter | None = None, backend: str | None = None,
                 programs=None, btf: str | Path | None = None, quiet: bool = False, detach_waits: bool = True):
        event_filter = event_filter or EventFilter()
        backend = BACKEND_ALIASES.get(backend, backend)
        if backend is not None and backend not in BACKENDS:
            raise ProbeError(f"unknown backend {backend!r}: choose {' or '.join(BACKENDS)}")
        started = time.monotonic()
        self.assembly: Assembly | None = None
        self.built: Path | None = None  # the object clang built from C text, in the user's cache folder
        options = dict(schema=schema, transport=transport, defines=defines or {}, ringbuf_pages=ringbuf_pages,
                       event_filter=event_filter, btf=btf, programs=programs)
        self.origin: str | None = None  # how C text was built, where the Sensor chose (printed unless quiet)
        if backend is None and not is_object(program):
            code = self._open_text(program, options)
            if not quiet:
                print(f"sdxfer: {self.origin}", file=sys.stderr, flush=True)
        elif backend == "libbpf" and not is_object(program):
            code = self._open_built(program, options)
        else:
            self.backend = backend or "libbpf"
            code = (self._open_object if self.backend == "libbpf" else self._open_bcc)(program, **options)
        # seconds each step took: open (BCC: assemble and compile; libbpf: open
        # the object, clang first for C text), load (relocate and verify; BCC
        # loads each program as it attaches it), attach (the reader opened too)
        self.phases = {"open": self._opened - started, "load": self._loaded - self._opened}
        self.transport = self._probe.transport
        self.decoder = decoder or code.decoder
        self.event_names = code.event_names
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
        self.detach_waits = detach_waits  # detach()'s default
        self._release: int | None = None  # detach(wait=False): closing it lets the helper process go
        self._next_drops_read = 0.0
        try:
            self._reader = self._probe.open_reader(code.buffer_pages(perf_pages, PERF_PAGES), perf_wakeup_events,
                                                   self._read_drops_now)
        except ProbeError:
            self._probe.close()
            raise
        except Exception as exc:  # bcc again: e.g. perf buffers beyond the memlock limit
            self._probe.close()
            raise ProbeError(f"could not open the {self.transport} buffer: {exc} (probe unloaded; "
                             "if it is the memlock limit, raise it with ulimit -l)") from None
        try:
            self._probe.prepare(event_filter)
            self._probe.attach()
        except BaseException:
            self._reader.close()
            self._probe.close()
            raise
        self._attached = True
        self.phases["attach"] = time.monotonic() - self._loaded

    # ---- opening, by backend ------------------------------------------------------

    def _open_object(self, program, *, schema, transport, defines, ringbuf_pages, event_filter, btf, programs):
        if not is_object(program):
            raise ProbeError("the libbpf backend loads an object built by sdxfer build (a .o file or its bytes)")
        if defines:
            raise ProbeError("a built object takes its -D defines from sdxfer build, not at load")
        code = schema_code(schema)
        check_core_environment()
        self._probe = CoreProbe(program, code, transport=transport, ringbuf_pages=ringbuf_pages,
                                event_filter=event_filter, btf=btf, programs=programs)
        self._opened = time.monotonic()
        self._probe.load()
        self._loaded = time.monotonic()
        return code

    def _open_bcc(self, program, *, schema, transport, defines, ringbuf_pages, event_filter, btf, programs):
        if is_object(program):
            raise ProbeError(f"BCC compiles C text, not the object {program}: load it with backend='libbpf'")
        if programs is not None:
            raise ProbeError("programs= selects programs of a built object (backend='libbpf'); BCC loads what"
                             " the program's -D flags compile")
        if btf is not None:
            raise ProbeError("btf= is for the libbpf backend: BCC reads the running kernel's BTF")
        transport = transport or default_transport()
        self.assembly = assemble(program, schema=schema, transport=transport,
                                 defines={**defines, **event_filter.defines()}, ringbuf_pages=ringbuf_pages)
        headers = check_environment()
        self._probe = BccProbe(self.assembly.text, self.assembly.cflags, transport, headers,
                               self.assembly.code.event_names)
        self._bpf = self._probe.bpf
        self._opened = self._loaded = time.monotonic()
        return self.assembly.code

    def _open_built(self, program, options: dict):
        """C text built by clang into the user's cache folder (once per content), loaded through libbpf."""
        transport = options["transport"] or default_transport()
        defines = {**options["defines"], **build_defines(options["event_filter"], transport)}
        self.built, cached = cached_object(program, schema=options["schema"], defines=defines)
        self.backend = "libbpf"
        self.origin = f"built by clang ({'cached' if cached else 'now'}: {self.built}), loaded through libbpf"
        return self._open_object(self.built, **{**options, "transport": transport, "defines": {}})

    def _open_text(self, program, options: dict):
        """C text with no backend asked for: built by clang and loaded through
        libbpf where clang is there, else (or where that fails and bcc is there:
        a probe written for BCC alone) compiled by BCC; self.origin says which.
        Where both fail, BCC's error is the one raised."""
        name = PROGRAM_TEXT if isinstance(program, str) and "\n" in program else str(program)
        if not clang_available():
            reason = "clang not found: apt-get install clang to build it once for libbpf"
        else:
            try:
                code = self._open_built(program, options)
                self.origin = f"{name}: {self.origin}"
                return code
            except ProbeError as exc:
                # BCC's LLVM ends the whole process on a program over BPF's stack limit
                if importlib.util.find_spec("bcc") is None or STACK_LIMIT_ERROR in str(exc):
                    raise
                reason = f"clang/libbpf: {str(exc).splitlines()[0]}"
        self.backend = "bcc"
        code = self._open_bcc(program, **options)
        self.origin = f"{name}: compiled by BCC ({reason})"
        return code

    @property
    def programs_attached(self) -> int:
        return self._probe.programs_attached if self._attached else 0

    def verifier_processed(self) -> dict[str, int]:
        """Per program loaded, by name: the instructions the kernel's verifier
        processed to accept it (its log's "processed N insns"), of VERIFIER_LIMIT."""
        return {name: verified_instructions(fd) for name, fd in sorted(self._probe.program_fds().items())}

    # ---- counters in the kernel --------------------------------------------

    def _drops(self) -> list[int]:
        """Per event (schema order), then continuation records: records not sent, summed over CPUs."""
        return self._probe.drops(len(self.event_names) + 1)

    def cpu_state(self) -> list[dict[str, int]]:
        """Per CPU: records numbered (seq), scratch slots in use (busy, a bit per
        slot, and slots_in_use), records refused for want of a slot (nesting_drops)."""
        states = []
        for cpu in self._probe.cpu_states():
            state = dict(zip((name for name, _ in record.CPU_STATE), cpu))
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

    def detach(self, wait: bool | None = None) -> None:
        """Stops the probe's programs; buffers and counters stay readable (drain()).

        The kernel takes a grace period (tens of ms) to take each tracepoint
        program off, one after another: seconds for hidsmon's 52. wait=False
        (the tools' Sensors are made with detach_waits=False) hands the
        attachments to a helper process that lets go of them once close() is
        done, so the programs may run on a moment longer while this process
        goes on at once. None: detach_waits."""
        if self._attached:
            self._attached = False
            if not (self.detach_waits if wait is None else wait):
                self._release = hold_until_released(self._probe.attachment_fds())
            self._probe.detach()

    def close(self) -> None:
        """Unloads the probe; a read in another thread ends first, and
        records() and events() there stop."""
        with self._reading:
            if not self._closed:
                self.detach()
                self._update_loss()
                self._closed = True
                self._reader.close()
                self._probe.close()
                if self._release is not None:
                    os.close(self._release)  # the helper process lets go now
                    self._release = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def verified_instructions(fd: int) -> int:
    """What the verifier processed of the program `fd` of this process (its
    fdinfo's verified_insns, kernel 5.16 and later)."""
    try:
        text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except OSError as exc:
        raise ProbeError(f"cannot read program fd {fd}'s fdinfo: {exc.strerror}") from None
    found = re.search(r"^verified_insns:\s*(\d+)$", text, re.MULTILINE)
    if found is None:
        raise ProbeError("this kernel does not say what its verifier processed (verified_insns: 5.16 and later)")
    return int(found.group(1))


def hold_until_released(fds: list[int]) -> int:
    """A detached helper process that keeps its own copies of `fds` (the
    probe's attachments) until the returned pipe end is closed, then exits:
    the kernel's slow release of each attachment happens there, not here."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:  # the grandchild, reaped by init, holds on
                kept = sorted(set(fds) | {read_end})
                for low, high in zip([-1, *kept], [*kept, os.sysconf("SC_OPEN_MAX")]):
                    os.closerange(low + 1, high)  # standard streams and every other file let go at once
                os.read(read_end, 1)  # end of file: the sensor's own copies are closed
        finally:
            os._exit(0)
    os.close(read_end)
    os.waitpid(child, 0)
    return write_end


def build_defines(event_filter: EventFilter, transport: str) -> dict:
    """What clang must know when it builds C text: the transport, and the
    filters that add maps and programs (the others are globals set at load)."""
    structural = {name: value for name, value in event_filter.defines().items()
                  if name in STRUCTURAL_DEFINES}
    return {**structural, **({"SDXFER_RINGBUF": None} if transport == "ringbuf" else {})}


def program_text(program: str | Path, **options) -> str:
    """The final program text, -D macros written out (what --ebpf prints)."""
    return assemble(program, **options).with_defines()
