"""The driver's options live: in-kernel filters (-p with --children, --cgroup,
--mntns, -u), --no-failed, --stats, --output raw: read back by `sdxfer decode`,
and execmon's JSON object carrying every field hidsmon's does."""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

if os.geteuid() != 0:
    pytest.skip("live probe tests need root", allow_module_level=True)
pytest.importorskip("bcc")

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
START_S = 120  # a loaded 2-CPU machine compiles slowly
WAIT_S = 60


class Tool:
    """A tool run as a subprocess: whole lines of stdout and stderr, read by
    threads, waited for by content."""

    def __init__(self, *argv):
        self.process = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, errors="surrogateescape")
        self.out, self.err = queue.Queue(), queue.Queue()
        self.err_lines = []
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()
        self.wait_err(lambda line: "Ctrl+C to stop" in line, START_S)

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def _wait(self, lines: queue.Queue, seen: list, predicate, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"not seen in {seconds} s; stderr so far: {self.err_lines[-5:]}")

    def wait_err(self, predicate, seconds=WAIT_S):
        return self._wait(self.err, self.err_lines, predicate, seconds)

    def wait_json(self, predicate, seconds=WAIT_S, seen=None):
        """The first JSON object on stdout for which predicate holds."""
        seen = [] if seen is None else seen
        line = self._wait(self.out, [], lambda text: predicate(_record(text, seen)), seconds)
        return json.loads(line)

    def stop(self) -> str:
        """SIGINT, then the rest of stderr."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=WAIT_S)
        rest = []
        while (line := self.err.get(timeout=WAIT_S)) is not None:
            rest.append(line)
        self.err_lines += rest
        return "\n".join(self.err_lines)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _record(text, seen):
    record = json.loads(text)
    seen.append(record)
    return record


def exec_with(marker: str, before: str = "", **popen) -> None:
    """A shell that (after `before`) runs /bin/true with the marker as its argument, and waits for it."""
    subprocess.run(["/bin/sh", "-c", f"{before} /bin/true {marker}"], check=True, timeout=WAIT_S, **popen)


def has_marker(marker):
    return lambda record: (record.get("event") == "exec" and (record.get("argv") or [""])[0] == "/bin/true"
                           and marker in record["argv"])


def test_children_are_followed_as_they_fork():
    """-p the shell with --children: its children and grandchildren, started
    after the sensor, are reported; an exec outside the tree is not."""
    # `; :` keeps each shell from replacing itself with its last command
    shell = subprocess.Popen(["/bin/sh", "-c", "read go; /bin/sh -c '/bin/true $0; /bin/true $1; :' \"$go\" \"${go}2\"; :"],
                             stdin=subprocess.PIPE, text=True)
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = Tool("hidsmon", "--events", "exec", "--json", "-p", str(shell.pid), "--children")
    try:
        exec_with(f"{marker}x")  # outside the tree: filtered in the kernel
        shell.communicate(f"{marker}\n", timeout=WAIT_S)
        seen = []
        child = tool.wait_json(has_marker(f"{marker}2"), seen=seen)
        assert any(has_marker(marker)(r) for r in seen) and not any(has_marker(f"{marker}x")(r) for r in seen)
        assert child["ppid"] != shell.pid  # a grandchild: the inner sh's child
        assert "hidsmon: " in tool.stop()
    finally:
        tool.kill()
        shell.kill()


def test_pid_alone_is_that_process_only():
    shell = subprocess.Popen(["/bin/sh", "-c", "read go; exec /bin/true $go"], stdin=subprocess.PIPE, text=True)
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = Tool("execmon", "--json", "-p", str(shell.pid))
    try:
        exec_with(f"{marker}x")
        shell.communicate(f"{marker}\n", timeout=WAIT_S)
        seen = []
        record = tool.wait_json(has_marker(marker), seen=seen)
        assert record["pid"] == shell.pid
        assert all(r["pid"] == shell.pid for r in seen)
    finally:
        tool.kill()


def test_mntns_keeps_one_mount_namespace():
    host_ns = os.stat("/proc/self/ns/mnt").st_ino
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = Tool("hidsmon", "--events", "exec", "--json", "--mntns", str(host_ns))
    try:
        subprocess.run(["unshare", "-m", "/bin/true", f"{marker}x"], check=True, timeout=WAIT_S)
        exec_with(marker)
        seen = []
        record = tool.wait_json(has_marker(marker), seen=seen)
        assert record["mntns"] == host_ns
        assert not any(has_marker(f"{marker}x")(r) for r in seen)
        assert all(r["mntns"] == host_ns for r in seen)
    finally:
        tool.kill()


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


def test_cgroup_keeps_its_processes(cgroup):
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = Tool("execmon", "--json", "--cgroup", str(cgroup))
    try:
        exec_with(f"{marker}x")
        exec_with(marker, before=f"echo $$ > {cgroup}/cgroup.procs;")
        seen = []
        record = tool.wait_json(has_marker(marker), seen=seen)
        assert record["cgroup_id"] == os.stat(cgroup).st_ino
        assert not any(has_marker(f"{marker}x")(r) for r in seen)
    finally:
        tool.kill()


def test_uid_is_filtered_in_the_kernel():
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = Tool("hidsmon", "--events", "exec", "--json", "-u", "65534")
    try:
        exec_with(f"{marker}x")  # root's
        exec_with(marker, user=65534, group=65534)
        seen = []
        record = tool.wait_json(has_marker(marker), seen=seen)
        assert record["uid"] == 65534 and all(r["uid"] == 65534 for r in seen)
    finally:
        tool.kill()


def test_no_failed_hides_failed_execs():
    marker = f"mk{uuid.uuid4().hex[:10]}"
    tool = Tool("hidsmon", "--events", "exec", "--json", "--no-failed")
    try:
        subprocess.run(["/bin/sh", "-c", f"/nonexistent/{marker}x {marker}x; /bin/true {marker}"], timeout=WAIT_S)
        seen = []
        tool.wait_json(has_marker(marker), seen=seen)
        assert all(r["ret"] == 0 for r in seen)
    finally:
        tool.kill()


def test_execmon_json_is_hidsmons_object_and_more():
    marker = f"mk{uuid.uuid4().hex[:10]}"
    execmon = Tool("execmon", "--json")
    hidsmon = Tool("hidsmon", "--events", "exec", "--json")
    try:
        exec_with(marker)
        mine, theirs = execmon.wait_json(has_marker(marker)), hidsmon.wait_json(has_marker(marker))
        assert set(theirs) <= set(mine)
        per_probe = ("timestamp_ns", "time", "seq", "cpu")  # each probe stamps and numbers its own record
        assert {k: v for k, v in mine.items() if k in theirs and k not in per_probe} == \
            {k: v for k, v in theirs.items() if k not in per_probe}
        assert mine["ts_ns"] == mine["timestamp_ns"] and mine["argv_truncated"] is False
        for key in ("pgid", "sid", "euid", "cgroup_id", "mntns", "ancestors", "time", "lost"):
            assert key in mine
    finally:
        execmon.kill()
        hidsmon.kill()


def test_raw_capture_decodes_with_sdxfer_decode(tmp_path):
    capture = tmp_path / "capture.sdxr"
    marker = f"mk{uuid.uuid4().hex[:10]}"
    big = "z" * 4000
    tool = Tool("hidsmon", "--events", "exec,setsid", "--output", f"raw:{capture}")
    try:
        # an argv past the exec record's 16 KiB: its continuation records are captured with it
        exec_with(marker + " " + " ".join([big] * 6))
        deadline = time.monotonic() + WAIT_S
        while marker.encode() not in capture.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        err = tool.stop()
        assert "records (" in err and f"written to {capture}" in err
    finally:
        tool.kill()
    assert os.stat(capture).st_mode & 0o777 == 0o600
    done = subprocess.run([str(BIN / "sdxfer"), "decode", str(capture)], capture_output=True, text=True,
                          timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    [record] = [e for e in events if has_marker(marker)(e)]
    assert record["argv"] == ["/bin/true", marker] + [big] * 6 and record["truncated"] == []


def test_stats_lines_come_every_interval():
    tool = Tool("execmon", "--stats", "1")
    try:
        exec_with("x")
        line = tool.wait_err(lambda text: text.startswith("execmon: stats: "))
        assert " delivered, " in line and " lost" in line
        tool.wait_err(lambda text: text.startswith("execmon: stats: "), 10)
    finally:
        tool.kill()
