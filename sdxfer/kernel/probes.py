"""The shipped probe, bpf/hids.bpf.c: the whole HIDS catalogue (hidsmon) or
its exec family alone (execmon's ExecProbe, for other agents).

    from sdxfer import ExecProbe
    with ExecProbe(transport="ringbuf") as probe:
        for event in probe.events():          # decoded exec events, forever
            print(event.pid, event.argv)

Which events are compiled is chosen by -D: HIDS_SELECTED with one
HIDS_WANT_<EVENT> per event wanted (without HIDS_SELECTED, every event). That
is the BCC path; the prebuilt objects (sdxfer.kernel.objects) hold every event
and load only the programs of those wanted.
kmod_load needs the init_module/finit_module tracepoints, which only kernels
with module support have; elsewhere it watches the raw sys_exit, which costs
every syscall of the host a little.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ProbeError
from ..paths import BPF_DIR, SHIPPED_SCHEMA
from .host import TRACEFS_DIRS, default_transport
from .program import BTF_PATH, TRANSPORTS
from .readers import Record
from .sensor import BACKEND_ALIASES, PERF_WAKEUP_EVENTS, Sensor, program_text

__all__ = ["BTF_PATH", "EXEC_ONLY", "ExecProbe", "PROGRAM", "ProbeError", "Record", "TRANSPORTS", "defines_for",
           "exec_program_text", "is_shipped", "kmod_tracepoints", "probe_source_path"]

PROGRAM = BPF_DIR / "hids.bpf.c"
KMOD_TRACEPOINT = "events/syscalls/sys_exit_finit_module"
FAILED_EXECS_OFF = "HIDS_WITHOUT_FAILED_EXECS"  # no sys_exit_execve(at) programs


def kmod_tracepoints() -> bool:
    return any(os.path.isdir(os.path.join(d, KMOD_TRACEPOINT)) for d in TRACEFS_DIRS)


def kmod_define() -> dict:
    """The kmod_load variant this kernel's tracefs allows, as a -D macro."""
    return {"HIDS_KMOD_TRACEPOINTS" if kmod_tracepoints() else "HIDS_KMOD_RAW_SYSCALLS": 1}


def defines_for(events, failed_execs: bool = True) -> dict:
    """-D macros compiling only `events` (names of the shipped schema), kmod_load
    as this kernel allows; failed_execs=False leaves out the failed-exec programs."""
    defines: dict = {"HIDS_SELECTED": None}
    defines.update({f"HIDS_WANT_{name.upper()}": None for name in events})
    if not failed_execs:
        defines[FAILED_EXECS_OFF] = None
    if "kmod_load" in events:
        defines.update(kmod_define())
    return defines


def is_shipped(program, schema) -> bool:
    """bpf/hids.bpf.c on the shipped schema: what the prebuilt objects hold (sdxfer.kernel.objects)."""
    return (isinstance(program, (str, Path)) and Path(program).resolve() == PROGRAM.resolve()
            and (schema is None or Path(schema).resolve() == SHIPPED_SCHEMA.resolve()))


def probe_source_path() -> Path:
    return PROGRAM


EXEC_ONLY = defines_for(["exec"])  # execmon needs nothing else


def exec_program_text(transport: str = "perf") -> str:
    """The exact text BCC compiles for execmon, -D macros written out."""
    return program_text(PROGRAM, transport=transport, defines=EXEC_ONLY)


class ExecProbe(Sensor):
    """execmon's probe on the shipped schema, loaded and attached: the exec
    programs of the prebuilt object through libbpf (sdxfer.kernel.objects), or
    with backend="bcc" the exec family compiled by BCC. transport None: the
    ring buffer where the kernel has it."""

    def __init__(self, transport: str | None = None, *, decoder=None, perf_pages: int | None = None,
                 perf_wakeup_events: int = PERF_WAKEUP_EVENTS, ringbuf_pages: int | None = None,
                 backend: str | None = None):
        transport = transport or default_transport()
        options = {"transport": transport, "decoder": decoder, "perf_pages": perf_pages,
                   "perf_wakeup_events": perf_wakeup_events, "ringbuf_pages": ringbuf_pages}
        if BACKEND_ALIASES.get(backend, backend) == "bcc":
            super().__init__(PROGRAM, defines=EXEC_ONLY, backend="bcc", **options)
        else:
            from .objects import shipped

            objects = shipped()
            super().__init__(objects.object(transport), programs=objects.programs(["exec"]),
                             backend=backend or "libbpf", **options)
