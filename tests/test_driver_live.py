"""The driver's options live: in-kernel filters (-p with --children, --cgroup,
--mntns, -u), --no-failed, --stats, --output raw: read back by `sdxfer decode`,
and execmon's JSON object carrying every field hidsmon's does."""
import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from conftest import EACH_BACKEND_AND_TRANSPORT, LIVE_WAIT_S, ROOT, Tool, backend_options, wait_until

# each test is about a tool's option, not the backend or the transport
pytestmark = [pytest.mark.live, pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)]

BIN = ROOT / ".venv" / "bin"
WAIT_S = LIVE_WAIT_S
START_S = 120  # a loaded 2-CPU machine compiles slowly


def start(*argv, backend: str, transport: str) -> Tool:
    """A tool on this backend and transport, once its probe is attached."""
    tool = Tool(str(BIN / argv[0]), *argv[1:], *backend_options(backend, transport))
    started = tool.wait_err(lambda line: "Ctrl+C to stop" in line, START_S)
    assert f"({transport}, {backend}" in started, started
    return tool


def wait_json(tool: Tool, predicate, seen=None) -> dict:
    """The first JSON object on the tool's stdout for which predicate holds;
    every object looked at so far in seen."""
    seen = [] if seen is None else seen
    line = tool.wait_out(lambda text: predicate(json.loads(text)))
    seen[:] = [json.loads(text) for text in tool.out]
    return json.loads(line)


def exec_with(marker: str, before: str = "", **popen) -> None:
    """A shell that (after `before`) runs /bin/true with the marker as its argument, and waits for it."""
    subprocess.run(["/bin/sh", "-c", f"{before} /bin/true {marker}"], check=True, timeout=WAIT_S, **popen)


def has_marker(marker):
    return lambda record: (record.get("event") == "exec" and (record.get("argv") or [""])[0] == "/bin/true"
                           and marker in record["argv"])


def test_children_are_followed_as_they_fork(backend, transport):
    """-p the shell with --children: its children and grandchildren, started
    after the sensor, are reported; an exec outside the tree is not (the
    prebuilt object's fork/free programs, or BCC's build with them)."""
    # `; :` keeps each shell from replacing itself with its last command
    shell = subprocess.Popen(["/bin/sh", "-c", "read go; /bin/sh -c '/bin/true $0; /bin/true $1; :' \"$go\" \"${go}2\"; :"],
                             stdin=subprocess.PIPE, text=True)
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = start("hidsmon", "--events", "exec", "--json", "-p", str(shell.pid), "--children",
                 backend=backend, transport=transport)
    try:
        exec_with(f"{marker}x")  # outside the tree: filtered in the kernel
        shell.communicate(f"{marker}\n", timeout=WAIT_S)
        seen = []
        child = wait_json(tool, has_marker(f"{marker}2"), seen=seen)
        assert any(has_marker(marker)(r) for r in seen) and not any(has_marker(f"{marker}x")(r) for r in seen)
        assert child["ppid"] != shell.pid  # a grandchild: the inner sh's child
        assert "hidsmon: " in tool.stop(signal.SIGINT)
    finally:
        tool.stop(signal.SIGKILL)
        shell.kill()


def test_pid_alone_is_that_process_only(backend, transport):
    shell = subprocess.Popen(["/bin/sh", "-c", "read go; exec /bin/true $go"], stdin=subprocess.PIPE, text=True)
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = start("execmon", "--json", "-p", str(shell.pid), backend=backend, transport=transport)
    try:
        exec_with(f"{marker}x")
        shell.communicate(f"{marker}\n", timeout=WAIT_S)
        seen = []
        record = wait_json(tool, has_marker(marker), seen=seen)
        assert record["pid"] == shell.pid
        assert all(r["pid"] == shell.pid for r in seen)
    finally:
        tool.stop(signal.SIGKILL)


def test_mntns_keeps_one_mount_namespace(backend, transport):
    host_ns = os.stat("/proc/self/ns/mnt").st_ino
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = start("hidsmon", "--events", "exec", "--json", "--mntns", str(host_ns), backend=backend, transport=transport)
    try:
        subprocess.run(["unshare", "-m", "/bin/true", f"{marker}x"], check=True, timeout=WAIT_S)
        exec_with(marker)
        seen = []
        record = wait_json(tool, has_marker(marker), seen=seen)
        assert record["mntns"] == host_ns
        assert not any(has_marker(f"{marker}x")(r) for r in seen)
        assert all(r["mntns"] == host_ns for r in seen)
    finally:
        tool.stop(signal.SIGKILL)


@pytest.fixture
def cgroup():
    from sdxfer.kernel.filters import cgroup2_root

    path = cgroup2_root() / f"sdxfer-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(50):  # emptied once its processes have exited
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_cgroup_keeps_its_processes(cgroup, backend, transport):
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = start("execmon", "--json", "--cgroup", str(cgroup), backend=backend, transport=transport)
    try:
        exec_with(f"{marker}x")
        exec_with(marker, before=f"echo $$ > {cgroup}/cgroup.procs;")
        seen = []
        record = wait_json(tool, has_marker(marker), seen=seen)
        assert record["cgroup_id"] == os.stat(cgroup).st_ino
        assert not any(has_marker(f"{marker}x")(r) for r in seen)
    finally:
        tool.stop(signal.SIGKILL)


def test_uid_is_filtered_in_the_kernel(backend, transport):
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = start("hidsmon", "--events", "exec", "--json", "-u", "65534", backend=backend, transport=transport)
    try:
        exec_with(f"{marker}x")  # root's
        exec_with(marker, user=65534, group=65534)
        seen = []
        record = wait_json(tool, has_marker(marker), seen=seen)
        assert record["uid"] == 65534 and all(r["uid"] == 65534 for r in seen)
    finally:
        tool.stop(signal.SIGKILL)


def test_no_failed_hides_failed_execs(backend, transport):
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = start("hidsmon", "--events", "exec", "--json", "--no-failed", backend=backend, transport=transport)
    try:
        subprocess.run(["/bin/sh", "-c", f"/nonexistent/{marker}x {marker}x; /bin/true {marker}"], timeout=WAIT_S)
        seen = []
        wait_json(tool, has_marker(marker), seen=seen)
        assert all(r["ret"] == 0 for r in seen)
    finally:
        tool.stop(signal.SIGKILL)


def test_execmon_json_is_hidsmons_object_and_more(backend, transport):
    marker = f"mk{uuid.uuid4().hex[:10]}"
    execmon = start("execmon", "--json", backend=backend, transport=transport)
    hidsmon = start("hidsmon", "--events", "exec", "--json", backend=backend, transport=transport)
    try:
        exec_with(marker)
        mine, theirs = wait_json(execmon, has_marker(marker)), wait_json(hidsmon, has_marker(marker))
        assert set(theirs) <= set(mine)
        per_probe = ("timestamp_ns", "time", "seq", "cpu")  # each probe stamps and numbers its own record
        assert {k: v for k, v in mine.items() if k in theirs and k not in per_probe} == \
            {k: v for k, v in theirs.items() if k not in per_probe}
        assert mine["ts_ns"] == mine["timestamp_ns"] and mine["argv_truncated"] is False
        for key in ("pgid", "sid", "euid", "cgroup_id", "mntns", "ancestors", "time", "lost"):
            assert key in mine
    finally:
        execmon.stop(signal.SIGKILL)
        hidsmon.stop(signal.SIGKILL)


def test_raw_capture_decodes_with_sdxfer_decode(tmp_path, backend, transport):
    capture = tmp_path / "capture.sdxr"
    marker = f"mk{uuid.uuid4().hex[:10]}"
    big = "z" * 4000
    tool = start("hidsmon", "--events", "exec,setsid", "--output", f"raw:{capture}",
                 backend=backend, transport=transport)
    try:
        # an argv past the exec record's 16 KiB: its continuation records are captured with it
        exec_with(marker + " " + " ".join([big] * 6))
        deadline = time.monotonic() + WAIT_S
        while marker.encode() not in capture.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        err = tool.stop(signal.SIGINT)
        assert "records (" in err and f"written to {capture}" in err
    finally:
        tool.stop(signal.SIGKILL)
    assert os.stat(capture).st_mode & 0o777 == 0o600
    done = subprocess.run([str(BIN / "sdxfer"), "decode", str(capture)], capture_output=True, text=True,
                          timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    [record] = [e for e in events if has_marker(marker)(e)]
    assert record["argv"] == ["/bin/true", marker] + [big] * 6 and record["truncated"] == []


def test_stats_lines_come_every_interval(backend, transport):
    tool = start("execmon", "--stats", "1", backend=backend, transport=transport)
    try:
        exec_with("x")
        line = tool.wait_err(lambda text: text.startswith("execmon: stats: "))
        assert " delivered, " in line and " lost" in line
        wait_until(lambda: sum(text.startswith("execmon: stats: ") for text in tool.err) >= 2, what="a second stats line")
    finally:
        tool.stop(signal.SIGKILL)
