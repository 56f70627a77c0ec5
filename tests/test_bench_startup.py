"""bench/startup.py measures what it says: a tool's first event is the
marker's exec run after its banner, and the in-process runs load the probe
each tool loads. No time is asserted (the machine is shared); only what
comes before what.

Needs root, and bcc for the BCC side (CI runs as root); skipped otherwise.
"""

import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import startup  # noqa: E402

pytestmark = pytest.mark.live


def test_a_tool_run_times_the_marker_event_after_the_banner():
    backend = "libbpf" if startup.accepts_backend("execmon") else None
    run = startup.tool_run("execmon", backend, f"startup-test-{os.getpid()}")
    assert 0 < run["banner"] <= run["first event"]
    assert run["exit"] > 0
    assert "Ctrl+C to stop" in run["stderr"]


@pytest.mark.parametrize("backend", startup.BACKENDS)
def test_in_process_runs_load_execmon_probe_and_see_the_marker(backend):
    run = startup.in_process_run("execmon", backend, f"startup-test-{backend}-{os.getpid()}")
    assert run["programs"] == 1  # exec alone: no failed-exec programs, as execmon without -x
    assert run["first event"] >= run["open"] + run["load"] + run["attach"]

