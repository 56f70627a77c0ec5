"""BCC's side of loading: its compiler output and verifier log captured,
turned into one line naming the program and the cause, and a BPF class that
attaches only when told (so the reader opens first)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
from pathlib import Path

from ..errors import ProbeError
from ..runtime import record


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
        # The verifier's verdict is the last line before its statistics.
        verdict = next((l for l in reversed(lines) if not l.startswith(("processed", "verification time"))), "")
        program = rejected.group(1) or rejected.group(2)
        return ProbeError(f"the kernel's verifier rejected program {program} ({message.split(': ')[-1]}): {verdict}")
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


def deferred_bpf_class():
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
