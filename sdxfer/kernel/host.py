"""Checks of this host before a probe loads: root, bcc and kernel headers
(BCC builds only), tracefs, and what the readers need of the machine. Each failure is one
ProbeError that says what to do."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ProbeError
from . import kheaders
from .readers import check_machine

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def check_environment() -> Path:
    """The kernel header tree to compile against; ProbeError for the first thing
    that stops a probe from loading here."""
    _check_root()
    try:
        import bcc  # noqa: F401
    except ImportError:
        raise ProbeError(
            "the bcc module is missing: install python3-bpfcc (apt-get install python3-bpfcc), "
            "run with /usr/bin/python3 or the project venv (made with --system-site-packages)"
        ) from None
    check_machine()
    headers = kheaders.find()
    _check_tracefs()
    return headers


def check_core_environment() -> None:
    """As check_environment, for a built object: neither bcc nor kernel headers."""
    _check_root()
    check_machine()
    _check_tracefs()


def ringbuf_available() -> bool:
    """Whether this kernel has the BPF ring buffer (5.8 and later): the default
    transport where it does, the perf buffer elsewhere."""
    release = os.uname().release
    try:
        major, minor = (int(part) for part in release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


def default_transport() -> str:
    return "ringbuf" if ringbuf_available() else "perf"


def _check_root() -> None:
    if os.geteuid() != 0:
        raise ProbeError("the probe needs root (it loads eBPF programs): run it with sudo")


def _check_tracefs() -> None:
    if not any(os.path.isdir(os.path.join(d, "events")) for d in TRACEFS_DIRS):
        raise ProbeError("tracefs is not mounted: run mount -t tracefs tracefs /sys/kernel/tracing")
