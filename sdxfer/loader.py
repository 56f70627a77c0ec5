"""Loads execmon's probe (bpf/hids.bpf.c) with BCC and delivers its records.

    from sdxfer.loader import ExecProbe
    with ExecProbe(transport="ringbuf") as probe:
        for event in probe.events():          # decoded sdxfer events, forever
            print(event.pid, event.argv)

Loading goes: check the host (root, bcc, kernel headers, tracefs, BTF) ->
resolve kernel structure offsets from BTF -> amalgamate the probe with the
generated header (BCC rewrites map calls only in the main text) -> compile and
attach with BCC, configured by -D macros only.

Both transports yield the same `Record` (bytes, cpu, lost); decoding is
separate. Loss has one figure on both transports: the probe's in-kernel drop
counters, which count every record the transport refused (see LossStats).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

TRANSPORTS = ("perf", "ringbuf")

# Kernel members the probe reads, as (struct, member); each becomes
# -DBTF_OFF_<STRUCT>_<MEMBER>=<offset from the running kernel's BTF>.
KERNEL_MEMBERS = (
    ("task_struct", "mm"),
    ("task_struct", "real_parent"),
    ("task_struct", "tgid"),
    ("task_struct", "comm"),
    ("mm_struct", "arg_start"),
    ("mm_struct", "arg_end"),
    ("mm_struct", "env_start"),
    ("mm_struct", "env_end"),
    ("mm_struct", "start_stack"),
    ("linux_binprm", "argc"),
    ("linux_binprm", "envc"),
    ("linux_binprm", "filename"),
    ("pt_regs", "di"),
    ("pt_regs", "si"),
    ("pt_regs", "dx"),
    ("pt_regs", "r10"),
)

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
BTF_PATH = "/sys/kernel/btf/vmlinux"
REPO_DIR = Path(__file__).resolve().parent.parent

# At most this long between polls, so batched records are delivered within it.
POLL_TIMEOUT_MS = 100
PERF_PAGES = 128  # per CPU
RINGBUF_PAGES = 256  # shared by all CPUs
# perf wakes the reader once per this many records of a CPU (a wake-up costs
# ~10 us of kernel time); the poll timeout delivers the rest.
PERF_WAKEUP_EVENTS = 128
DROPS_INTERVAL_S = 0.1  # how often the probe's drop counters are read

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[ \t]*$', re.MULTILINE)


class ProbeError(Exception):
    """The probe cannot run here; the message is one line saying why and what to do."""


class Record(NamedTuple):
    """One item from a transport: a raw record (lost == 0), or a loss notice
    (data == b"", lost > 0). cpu is -1 where the transport does not say."""

    data: bytes
    cpu: int
    lost: int


def _package_file(package: str, folder: str, name: str) -> Path:
    """A data file shipped in an sdxfer sub-package, or in the source tree."""
    from importlib import resources

    try:
        path = Path(str(resources.files(package) / name))
        if path.is_file():
            return path
    except ModuleNotFoundError:
        pass
    return REPO_DIR / folder / name


def probe_source_path() -> Path:
    return _package_file("sdxfer.bpf", "bpf", "hids.bpf.c")


def generated_dir() -> Path:
    return _package_file("sdxfer.generated", "generated", "xfer.h").parent


def amalgamate(source: str, include_dir: Path, _seen: frozenset = frozenset()) -> str:
    """Replace each `#include "name"` whose file is in include_dir by that file's
    text (recursively, each file once); other includes are left to the compiler."""

    def inline(match: re.Match) -> str:
        name = match.group(1)
        path = include_dir / name
        if not path.is_file():
            return match.group(0)
        if name in _seen:
            return f"/* {name} already included above */"
        text = amalgamate(path.read_text(), include_dir, _seen | {name})
        return f"/* begin {name} */\n{text.rstrip()}\n/* end {name} */"

    return _INCLUDE.sub(inline, source)


def kernel_offsets() -> dict[str, int]:
    """-D macro name -> offset, from the running kernel's BTF."""
    from .btf import BtfError, load

    if not os.path.exists(BTF_PATH):
        raise ProbeError(
            f"{BTF_PATH} is missing: this kernel has no BTF, which execmon needs for "
            "structure offsets; use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        )
    try:
        btf = load(BTF_PATH)
        return {
            f"BTF_OFF_{struct}_{member}".upper().replace(".", "_"): btf.offsetof(struct, member)
            for struct, member in KERNEL_MEMBERS
        }
    except (BtfError, OSError) as exc:
        raise ProbeError(f"cannot read kernel structure offsets from {BTF_PATH}: {exc}") from None


def cflags_for(transport: str, offsets: dict[str, int], ringbuf_pages: int = RINGBUF_PAGES) -> list[str]:
    """The -D macros that configure the probe; the one place a transport is checked."""
    if transport not in TRANSPORTS:
        raise ProbeError(f"unknown transport {transport!r}: choose {' or '.join(TRANSPORTS)}")
    flags = [f"-D{name}={value}" for name, value in sorted(offsets.items())]
    if transport == "ringbuf":
        if ringbuf_pages < 1 or ringbuf_pages & (ringbuf_pages - 1):
            raise ProbeError(f"ring buffer pages must be a power of two, not {ringbuf_pages}")
        flags += ["-DSDXFER_RINGBUF", f"-DSDXFER_RINGBUF_PAGES={ringbuf_pages}"]
    return flags


def program_text(transport: str = "perf") -> str:
    """The exact text BCC compiles, with its -D macros written out as #defines."""
    flags = cflags_for(transport, kernel_offsets())
    defines = "\n".join("#define " + flag[2:].replace("=", " ", 1) for flag in flags)
    source = amalgamate(probe_source_path().read_text(), generated_dir())
    return f"/* -D macros passed by sdxfer.loader */\n{defines}\n\n{source}"


def _default_kernel_source() -> None:
    headers = REPO_DIR / "build" / "kernel-headers"
    if "BCC_KERNEL_SOURCE" not in os.environ and headers.is_dir():
        os.environ["BCC_KERNEL_SOURCE"] = str(headers)


def check_environment() -> None:
    """Raise ProbeError for the first thing that stops the probe from loading here."""
    if os.geteuid() != 0:
        raise ProbeError("the probe needs root (it loads eBPF programs): run it with sudo")
    try:
        import bcc  # noqa: F401
    except ImportError:
        raise ProbeError(
            "the bcc module is missing: install python3-bpfcc (apt-get install python3-bpfcc), "
            "run with /usr/bin/python3 or the project venv (made with --system-site-packages)"
        ) from None
    _default_kernel_source()
    source = os.environ.get("BCC_KERNEL_SOURCE")
    if source:
        if not (Path(source) / "include" / "linux").is_dir():
            raise ProbeError(
                f"BCC_KERNEL_SOURCE={source} holds no kernel headers: run scripts/setup.sh "
                "or point BCC_KERNEL_SOURCE at a kernel header tree"
            )
    elif not (Path("/lib/modules") / platform.release() / "build" / "include").is_dir():
        raise ProbeError(
            "no kernel headers for BCC: run scripts/setup.sh, or set BCC_KERNEL_SOURCE to a "
            "kernel header tree (e.g. Debian's linux-headers-amd64, merged)"
        )
    if not any(os.path.isdir(os.path.join(d, "events")) for d in TRACEFS_DIRS):
        raise ProbeError("tracefs is not mounted: run mount -t tracefs tracefs /sys/kernel/tracing")


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


def _load_failure(exc: Exception, log: str) -> ProbeError:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    message = str(exc)
    if "Failed to load BPF program" in message:
        # The verifier's verdict is the last line before its statistics.
        verdict = next((l for l in reversed(lines) if not l.startswith(("processed", "verification time"))), "")
        return ProbeError(f"the kernel's verifier rejected the probe ({message.split(': ')[-1]}): {verdict}")
    if "Failed to compile" in message or "error:" in log:
        errors = [l for l in lines if "error:" in l]
        first = errors[0] if errors else (lines[-1] if lines else message)
        return ProbeError(
            f"BCC could not compile the probe: {first} (kernel headers: "
            f"{os.environ.get('BCC_KERNEL_SOURCE', 'default')}; run scripts/setup.sh)"
        )
    return ProbeError(f"BCC could not load the probe: {message.splitlines()[0] if message else type(exc).__name__}")


class _PerfReader:
    def __init__(self, bpf, table_name: bytes, pages: int, wakeup_events: int, on_lost: Callable[[], None]):
        self._bpf = bpf
        self._pending: deque[Record] = deque()
        self._on_lost = on_lost
        bpf[table_name].open_perf_buffer(
            self._on_record, page_cnt=pages, lost_cb=self._lost, wakeup_events=wakeup_events
        )

    def _on_record(self, cpu, data, size):
        self._pending.append(Record(ctypes.string_at(data, size), cpu, 0))

    def _lost(self, _count):
        # The probe's drop counters hold these records too (perf_submit
        # failed for them) and give the figure; this says to read them now.
        self._on_lost()

    def read(self, timeout_ms: int) -> deque[Record]:
        self._bpf.perf_buffer_poll(timeout_ms)
        # Records short of wakeup_events wait for consume.
        self._bpf.perf_buffer_consume()
        return self._pending


class _RingReader:
    def __init__(self, bpf, table_name: bytes):
        self._bpf = bpf
        self._pending: deque[Record] = deque()
        bpf[table_name].open_ring_buffer(self._on_record)

    def _on_record(self, _ctx, data, size):
        self._pending.append(Record(ctypes.string_at(data, size), -1, 0))
        return 0  # bcc's ring buffer callbacks must return an int; None costs ~3x

    def read(self, timeout_ms: int) -> deque[Record]:
        self._bpf.ring_buffer_poll(timeout_ms)
        # The probe wakes the reader only now and then; consume collects the rest.
        self._bpf.ring_buffer_consume()
        return self._pending


class LossStats:
    """What was delivered and what was lost, as the reader saw it.

    `lost` is the one loss figure, the same on both transports: records the
    probe numbered and the transport refused (buffer full, or perf's not open
    yet), from the probe's in-kernel drop counters; exact, and complete after
    drain(). perf's lost notifications count the same records again, so they
    only prompt a read of the counters.

    `sequence_gaps` is a cross-check: numbers missing between the records that
    arrived from one CPU, which can only be records lost or undecodable, so it
    never exceeds lost + undecodable. Both transports hand over one CPU's
    records in the order they were numbered (perf has a buffer per CPU; the
    ring buffer keeps reservation order, and a CPU numbers and reserves in one
    go), so a missing number never turns up later.
    """

    def __init__(self):
        self.delivered = 0
        self.lost = 0
        self.sequence_gaps = 0
        self.undecodable = 0
        self._last_seq: dict[int, int] = {}

    def note_sequence(self, cpu: int, seq: int) -> None:
        last = self._last_seq.get(cpu)
        if last is not None and seq > last + 1:
            self.sequence_gaps += seq - last - 1
        if last is None or seq > last:
            self._last_seq[cpu] = seq


class ExecProbe:
    """execmon's probe, loaded and attached; records arrive through read(),
    records(), events() or run(callback). Close it (or use `with`) to detach."""

    def __init__(self, transport: str = "perf", *, decoder=None, perf_pages: int = PERF_PAGES,
                 perf_wakeup_events: int = PERF_WAKEUP_EVENTS, ringbuf_pages: int = RINGBUF_PAGES):
        check_environment()
        cflags = cflags_for(transport, kernel_offsets(), ringbuf_pages)
        if decoder is None:
            from . import default_decoder

            decoder = default_decoder()
        self.transport = transport
        self.decoder = decoder
        self.stats = LossStats()
        self._closed = False
        self._next_drops_read = 0.0
        from .generated import events

        # the probe's drop counter for exec records: 1 + the event's index in schema order
        self._exec_drops_key = ctypes.c_int(1 + [spec.cls.name for spec in events.EVENTS].index("exec"))
        source = amalgamate(probe_source_path().read_text(), generated_dir())
        from bcc import BPF

        try:
            with _stderr_captured() as log:
                self._bpf = BPF(text=source.encode(), cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for every failure
            raise _load_failure(exc, "".join(log)) from None
        try:
            if transport == "ringbuf":
                self._reader = _RingReader(self._bpf, b"sdxfer_events")
            else:
                self._reader = _PerfReader(self._bpf, b"sdxfer_events", perf_pages, perf_wakeup_events,
                                           self._read_drops_now)
        except Exception as exc:  # bcc again: e.g. perf buffers beyond the memlock limit
            self._bpf.cleanup()
            raise ProbeError(f"could not open the {transport} buffer: {exc} (probe detached; "
                             "if it is the memlock limit, raise it with ulimit -l)") from None

    def _exec_drops(self) -> int:
        """Sum over CPUs of sdxfer_stats[1 + SDXFER_INDEX_EXEC]."""
        return sum(self._bpf[b"sdxfer_stats"][self._exec_drops_key])

    def records_sequenced(self) -> int:
        """Records the probe has numbered so far (sent or refused), over all CPUs.
        Once drained, stats.delivered + stats.lost + stats.undecodable come to
        this (the probe sends exec records only)."""
        return sum(self._bpf[b"sdxfer_stats"][ctypes.c_int(0)])

    def _read_drops_now(self) -> None:
        self._next_drops_read = 0.0

    def read(self, timeout_ms: int = POLL_TIMEOUT_MS) -> list[Record]:
        """Waits up to timeout_ms and returns what arrived (possibly nothing);
        new loss comes as a Record with no data."""
        pending = self._reader.read(timeout_ms)
        batch = list(pending)
        pending.clear()
        now = time.monotonic()
        if now >= self._next_drops_read:
            self._next_drops_read = now + DROPS_INTERVAL_S
            lost = self._exec_drops() - self.stats.lost
            if lost > 0:
                self.stats.lost += lost
                batch.append(Record(b"", -1, lost))
        return batch

    def records(self, stop: Callable[[], bool] = lambda: False) -> Iterator[Record]:
        while not self._closed and not stop():
            yield from self.read()

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator:
        """Decoded events until stop() is true or the probe is closed."""
        return self.decoded(self.records(stop))

    def decoded(self, records) -> Iterator:
        """Decodes records; loss is counted in self.stats, undecodable records
        are counted and skipped."""
        from .errors import DecodeError

        decode = self.decoder.decode
        for record in records:
            if not record.data:
                continue
            try:
                event = decode(record.data)
            except DecodeError:
                self.stats.undecodable += 1
                continue
            self.stats.delivered += 1
            self.stats.note_sequence(event.cpu, event.seq)
            yield event

    def run(self, callback: Callable, stop: Callable[[], bool] = lambda: False) -> None:
        for event in self.events(stop):
            callback(event)

    def drain(self) -> list[Record]:
        """What is still buffered, and the final drop count, without waiting."""
        self._read_drops_now()
        return self.read(0)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bpf.cleanup()

    def __enter__(self) -> ExecProbe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
