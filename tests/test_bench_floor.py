"""bench/kernel_cost.py's floor fills the exec record execmon's probe fills.

Issue 10 holds execmon's probe to within 1.2x of "the least a probe can do for
the same record"; the floor (bench/exec_floor.bpf.c) is that probe, and these
tests hold it to the same record: an exec seen by both decodes to the same
values, on both transports, with the environment values present. The bare
floor leaves out what its name says. The probe's CO-RE build, measured
beside its BCC build, sends the same values too, on both transports, and so
does the probe as it was before issue 18 (bench/probe_at.py) in the fields
it has.

The floors and the probe's builds without a part are BCC's alone (kernel_cost
compiles them so): their tests of what a build leaves out, which no transport
changes, run on one.

Needs root and bcc (CI runs as root); skipped otherwise.
"""

import os
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, wait_until

sys.path.insert(0, str(ROOT / "bench"))
import kernel_cost  # noqa: E402
import probe_at  # noqa: E402

pytestmark = pytest.mark.live

ENVIRONMENT = {"PATH": "/usr/bin:/bin", "SSH_CONNECTION": "192.0.2.7 50022 192.0.2.1 22",
               "LD_PRELOAD": "/nonexistent/floor-test.so"}


def seen_exec(variant: str, transport: str, marker: str, before=None):
    """The exec of /bin/true MARKER, run while `variant` is attached, as decoded."""
    with kernel_cost.open_sensor(variant, transport, before) as sensor:
        stop = threading.Event()
        events = []
        reader = threading.Thread(target=lambda: events.extend(sensor.events(stop.is_set)), daemon=True)
        reader.start()
        subprocess.run(["/bin/true", marker], env=ENVIRONMENT, check=False, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: any(e.argv == ["/bin/true", marker] for e in list(events)),
                       what=f"{variant} ({transport})'s record of the exec")
        finally:
            stop.set()
            reader.join()
    return [e for e in events if e.argv == ["/bin/true", marker]][-1]


@pytest.mark.parametrize("transport", kernel_cost.TRANSPORTS)
def test_the_floor_sends_the_probe_record(transport):
    marker = f"floor-{transport}-{os.getpid()}"
    probe = seen_exec("sdxfer", transport, marker)
    floor = seen_exec("floor", transport, marker)
    assert probe.ssh_connection == ENVIRONMENT["SSH_CONNECTION"]
    assert probe.ld_preload == ENVIRONMENT["LD_PRELOAD"]
    assert probe.ancestors and probe.ancestors[0].pid == os.getpid()
    assert probe.start_ns and probe.nodename == os.uname().nodename
    # pid, tid and start_ns belong to each exec; the rest (ppid: this process) must agree
    each_exec = {"pid": None, "tid": None, "timestamp_ns": None, "seq": None, "cpu": None, "start_ns": None}
    left_out = dict.fromkeys(kernel_cost.FLOOR_LEAVES_OUT)  # issue 18's context: not in the floor
    assert probe.cwd and probe.exe_path == "/usr/bin/true"
    assert {**floor.to_dict(), **each_exec, **left_out} == {**probe.to_dict(), **each_exec, **left_out}


@pytest.mark.parametrize("transport", kernel_cost.TRANSPORTS)
def test_the_core_build_sends_the_bcc_build_record(transport):
    """kernel_cost compares the probe's two builds: the same exec, the same values."""
    marker = f"core-{transport}-{os.getpid()}"
    bcc = seen_exec("sdxfer", transport, marker)
    core = seen_exec("sdxfer CO-RE", transport, marker)
    assert core.argv == ["/bin/true", marker] and core.ssh_connection == ENVIRONMENT["SSH_CONNECTION"]
    assert kernel_cost.same_record_values(core) == kernel_cost.same_record_values(bcc)


@pytest.mark.parametrize("variant", kernel_cost.BEFORE)
def test_the_probe_before_issue_18_sends_todays_values_in_its_fields(variant, tmp_path):
    """Its record, decoded by its own schema, has fewer fields than today's,
    and carries today's values in those."""
    then = probe_at.probe_at(probe_at.BEFORE_ISSUE_18, tmp_path)
    marker = f"before-{variant.replace(' ', '-')}-{os.getpid()}"
    today = kernel_cost.same_record_values(seen_exec(kernel_cost.BEFORE[variant], "ringbuf", marker))
    before = kernel_cost.same_record_values(seen_exec(variant, "ringbuf", marker, then))
    assert before["argv"] == ["/bin/true", marker] and before["ssh_connection"] == ENVIRONMENT["SSH_CONNECTION"]
    assert "nodename" in today and "nodename" not in before
    assert before == {key: value for key, value in today.items() if key in before}


def test_the_bare_floor_leaves_out_the_rest_of_the_record():
    marker = f"bare-floor-{os.getpid()}"
    bare = seen_exec("bare floor", "perf", marker)
    assert (bare.exe, bare.ppid, bare.uid) == ("/bin/true", os.getpid(), os.getuid())
    assert (bare.pgid, bare.sid, bare.euid, bare.cgroup_id, bare.mntns) == (0, 0, 0, 0, 0)
    assert (bare.ssh_connection, bare.ld_preload, bare.ancestors) == (None, None, None)


def test_same_record_values_ignore_only_what_each_exec_changes():
    event = seen_exec("floor", "perf", f"values-{os.getpid()}")
    values = kernel_cost.same_record_values(event)
    assert not set(kernel_cost.PER_EXEC) & set(values)
    assert values["ancestors"][0]["pid"] is None and values["ancestors"][0]["comm"] == event.ancestors[0].comm
    assert values["argv"] == event.argv and values["ld_preload"] == event.ld_preload


def test_the_probe_without_all_parts_leaves_each_out():
    """The breakdown's builds: stand-in headers shadow the probe's parts, and
    the failed-exec programs go with HIDS_WITHOUT_FAILED_EXECS."""
    marker = f"without-all-{os.getpid()}"
    event = seen_exec(kernel_cost.WITHOUT_ALL, "perf", marker)
    assert (event.exe, event.ppid, event.uid) == ("/bin/true", os.getpid(), os.getuid())
    assert (event.pgid, event.sid, event.euid, event.cgroup_id, event.mntns) == (0, 0, 0, 0, 0)
    assert (event.ssh_connection, event.ld_preload, event.ancestors) == (None, None, [])
    from bcc import lib

    for variant, failed_execs in ((kernel_cost.WITHOUT_ALL, False), ("sdxfer", True)):
        with kernel_cost.open_sensor(variant, "perf") as sensor:
            module = sensor._bpf.module
            programs = {lib.bpf_function_name(module, i).decode() for i in range(lib.bpf_num_functions(module))}
        assert ("tracepoint__syscalls__sys_exit_execve" in programs) == failed_execs, variant
