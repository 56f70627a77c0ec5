"""execmon's probe (the exec family of bpf/hids.bpf.c) for other agents: one user of Sensor.

    from sdxfer import ExecProbe
    with ExecProbe(transport="ringbuf") as probe:
        for event in probe.events():          # decoded exec events, forever
            print(event.pid, event.argv)
"""
from __future__ import annotations

from pathlib import Path

from . import hids
from .errors import ProbeError
from .program import BTF_PATH, TRANSPORTS
from .readers import Record
from .sensor import PERF_WAKEUP_EVENTS, Sensor, SensorStats, program_text

__all__ = ["BTF_PATH", "ExecProbe", "LossStats", "ProbeError", "Record", "TRANSPORTS", "exec_program_text", "probe_source_path"]

LossStats = SensorStats  # the name ExecProbe's stats had first


def probe_source_path() -> Path:
    return hids.PROGRAM


EXEC_ONLY = hids.defines_for(["exec"])  # execmon needs nothing else


def exec_program_text(transport: str = "perf") -> str:
    """The exact text BCC compiles for execmon, -D macros written out."""
    return program_text(probe_source_path(), transport=transport, defines=EXEC_ONLY)


class ExecProbe(Sensor):
    """execmon's probe on the shipped schema, loaded and attached."""

    def __init__(self, transport: str = "perf", *, decoder=None, perf_pages: int | None = None,
                 perf_wakeup_events: int = PERF_WAKEUP_EVENTS, ringbuf_pages: int | None = None):
        super().__init__(probe_source_path(), transport=transport, defines=EXEC_ONLY, decoder=decoder,
                         perf_pages=perf_pages, perf_wakeup_events=perf_wakeup_events, ringbuf_pages=ringbuf_pages)
