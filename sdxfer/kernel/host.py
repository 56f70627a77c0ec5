"""Checks of this host before a probe loads: root, bcc, kernel headers,
tracefs, and what the readers need of the machine. Each failure is one
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
