"""BCC's side of loading: its compiler output and verifier log captured,
turned into one line naming the program and the cause, and a BPF class that
attaches only when told (so the reader opens first); BccProbe is Sensor's
bcc backend (sdxfer.kernel.core.CoreProbe the other)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
from pathlib import Path

from ..errors import ProbeError
from ..runtime import record
from .libbpf import rejection  # the verdict is read the same way from either loader's log
from .readers import PerfReader, RingReader


@contextlib.contextmanager
def stderr_captured():
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
def kernel_source(headers: Path):
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
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    message = str(exc)
    rejected = re.search(r"Failed to load BPF program (?:b'([^']*)'|(\S+)):", message)
    if rejected:
        return rejection(rejected.group(1) or rejected.group(2), message.split(": ")[-1], lines)
    errors = [l for l in lines if "error:" in l]
    if errors or "Failed to compile" in message:
        first = errors[0] if errors else (lines[-1] if lines else message)
        undeclared = re.search(r"(?:undeclared function|implicit declaration of function) '(\w+)_print'", first)
        if undeclared and undeclared.group(1) in event_names:
            return ProbeError(f"the program calls {undeclared.group(1)}_print() but does not #include \"xfer.h\","
                              " the generated header that declares the packers")
        if undeclared:
            name = undeclared.group(1)
            return ProbeError(f"the program calls {name}_print(), but the schema has no event {name!r}"
                              f" (its events: {', '.join(event_names) or 'none'})")
        return ProbeError(f"BCC could not compile the probe: {first} (kernel headers: {headers})")
    if "Failed to attach" in message:
        return ProbeError(f"could not attach the probe: {message.splitlines()[0]} (does this kernel have the tracepoint?)")
    return ProbeError(f"BCC could not load the probe: {message.splitlines()[0] if message else type(exc).__name__}")


def deferred_bpf_class():
    from bcc import BPF, lib

    class DeferredBPF(BPF):
        """BCC attaches every program as it loads the module; this one waits
        for attach_all(), so the reader is open before the first record."""

        def __init__(self, *args, **kwargs):
            self.runtime_fds = {}  # program -> attachment of the runtime's programs attached by hand
            super().__init__(*args, **kwargs)

        def _trace_autoload(self):
            pass

        def attach_all(self):
            self._fill_rest_programs()
            BPF._trace_autoload(self)
            self._attach_runtime_programs()

        def _attach_runtime_programs(self):
            """The --children filter's fork/free programs and the exe_path
            keeper, where the probe has them, the keeper last: attached by
            hand, as BCC's attach_raw_tracepoint takes one program per
            tracepoint, which the probe's own programs may have."""
            tracepoints = {**record.FOLLOW_RAW_TRACEPOINTS, record.EXE_FORGET_PROGRAM: record.EXE_FORGET_RAW_TRACEPOINT}
            for name, tracepoint in tracepoints.items():
                if lib.bpf_function_start(self.module, name.encode()) is None:
                    continue
                program = self.load_func(name.encode(), BPF.RAW_TRACEPOINT)
                fd = lib.bpf_attach_raw_tracepoint(program.fd, tracepoint.encode())
                if fd < 0:
                    raise Exception(f"Failed to attach BPF to raw tracepoint {tracepoint}")
                self.runtime_fds[name] = fd

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
            for fd in self.runtime_fds.values():
                os.close(fd)
            self.runtime_fds = {}

    return DeferredBPF


class BccProbe:
    """A program compiled and loaded by BCC, its programs not yet attached."""

    def __init__(self, text: str, cflags: list[str], transport: str, headers: Path, event_names=()):
        self.transport = transport
        self._headers, self._event_names = headers, event_names
        try:
            with stderr_captured() as log, kernel_source(headers):
                self.bpf = deferred_bpf_class()(text=text.encode(), cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for every failure
            raise load_failure(exc, "".join(log), headers, event_names) from None
        self._drops_table = self.bpf[record.DROPS_MAP.encode()]
        self._cpu_table = self.bpf[record.CPU_MAP.encode()]
        self._attached = False

    def load(self) -> None:
        """Nothing yet: BCC loads each program as it attaches it (attach())."""

    def open_reader(self, pages: int, wakeup_events: int, on_lost):
        if self.transport == "ringbuf":
            return RingReader.of_bcc(self.bpf, record.EVENTS_MAP.encode())
        return PerfReader.of_bcc(self.bpf, record.EVENTS_MAP.encode(), pages, wakeup_events, on_lost)

    def prepare(self, event_filter) -> None:
        event_filter.prepare(self.bpf)

    def attach(self) -> None:
        try:
            with stderr_captured() as log:
                self.bpf.attach_all()
        except Exception as exc:
            raise load_failure(exc, "".join(log), self._headers, self._event_names) from None
        self._attached = True

    @property
    def programs_attached(self) -> int:
        """The events' programs attached, and the --children filter's; the
        runtime's exe_path keeper is not one."""
        if not self._attached:
            return 0
        followers = self.bpf.runtime_fds.keys() - {record.EXE_FORGET_PROGRAM}
        return len(self.bpf.tracepoint_fds) + len(self.bpf.raw_tracepoint_fds) + len(followers)

    def attachment_fds(self) -> list[int]:
        return [*self.bpf.tracepoint_fds.values(), *self.bpf.raw_tracepoint_fds.values(),
                *self.bpf.runtime_fds.values()]

    def program_fds(self) -> dict[str, int]:
        """name -> fd of every program loaded (BCC loads them as it attaches them)."""
        return {name.decode(): function.fd for name, function in self.bpf.funcs.items()}

    def detach(self) -> None:
        self._attached = False
        self.bpf.detach_all()

    def drops(self, counters: int) -> list[int]:
        return [sum(self._drops_table[ctypes.c_int(i)]) for i in range(counters)]

    def cpu_states(self) -> list[tuple[int, ...]]:
        return [tuple(getattr(cpu, name) for name, _ in record.CPU_STATE) for cpu in self._cpu_table[ctypes.c_int(0)]]

    def close(self) -> None:
        self.bpf.detach_all()  # the programs attached by hand too, which BCC's cleanup does not know of
        self.bpf.cleanup()
