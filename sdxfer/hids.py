"""The HIDS probe (bpf/hids.bpf.c) as hidsmon and other agents load it.

Which events are compiled is chosen by -D: HIDS_SELECTED with one
HIDS_WANT_<EVENT> per event wanted (without HIDS_SELECTED, every event).
kmod_load needs the init_module/finit_module tracepoints, which only kernels
with module support have; elsewhere it watches the raw sys_exit, which costs
every syscall of the host a little.
"""
from __future__ import annotations

import os

from .program import BPF_DIR
from .sensor import TRACEFS_DIRS

PROGRAM = BPF_DIR / "hids.bpf.c"
KMOD_TRACEPOINT = "events/syscalls/sys_exit_finit_module"


def kmod_tracepoints() -> bool:
    return any(os.path.isdir(os.path.join(d, KMOD_TRACEPOINT)) for d in TRACEFS_DIRS)


def defines_for(events) -> dict:
    """-D macros compiling only `events` (names of the shipped schema), kmod_load as this kernel allows."""
    defines: dict = {"HIDS_SELECTED": None}
    defines.update({f"HIDS_WANT_{name.upper()}": None for name in events})
    if "kmod_load" in events:
        defines["HIDS_KMOD_TRACEPOINTS" if kmod_tracepoints() else "HIDS_KMOD_RAW_SYSCALLS"] = 1
    return defines
