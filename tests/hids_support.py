"""What the live probe tests share: waiting for a decoded event, running a
child that acts once the probe is attached, and checking the common fields
every event carries (pid, tid, ppid, uid, gid, comm, cgroup_id, mntns, sid,
start_ns, loginuid, sessionid, pidns, nodename, exe_path), and children
that wait in a shell while a test reads their /proc."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from conftest import LIVE_WAIT_S

WAIT_S = LIVE_WAIT_S
TICK_NS = 10**9 // os.sysconf("SC_CLK_TCK")  # /proc/PID/stat's times are in clock ticks

# sendmmsg(2)'s structures, for child processes that send DNS queries with it (needs ctypes)
MMSG_STRUCTS = """
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
"""


def wait_for(sensor, predicate, timeout: float = WAIT_S):
    """The first decoded event that satisfies predicate, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in sensor.decoded(sensor.read(100)):  # a spanning event waits across reads
            if predicate(event):
                return event
    raise AssertionError("the expected event never arrived")


def events_until(sensor, predicate, timeout: float = WAIT_S) -> list:
    """Every decoded event until one satisfies predicate (that one included)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in sensor.decoded(sensor.read(100)):
            got.append(event)
            if predicate(event):
                return got
    raise AssertionError(f"the expected event never arrived ({len(got)} others did)")


def cgroup2_id(path: str) -> int:
    """The id the kernel gives a cgroup v2 directory: its inode in a cgroup2
    mount (one is made for the look-up where the host has none)."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[2] == "cgroup2"]
    if mounts:
        return os.stat(mounts[0] + path).st_ino
    with tempfile.TemporaryDirectory() as point:
        subprocess.run(["mount", "-t", "cgroup2", "none", point], check=True)
        try:
            return os.stat(point + path).st_ino
        finally:
            subprocess.run(["umount", point], check=True)


class Identity:
    """What the common fields of a process's events must say."""

    def __init__(self, pid: int, tid: int | None = None):
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        self.pid = pid
        self.tid = pid if tid is None else tid
        self.ppid = int(status["PPid"])
        self.uid = int(status["Uid"].split()[0])
        self.gid = int(status["Gid"].split()[0])
        self.comm = Path(f"/proc/{pid}/comm").read_text().rstrip("\n")
        self.mntns = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        self.sid = os.getsid(pid)
        unified = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if line.startswith("0::"))
        self.cgroup_id = cgroup2_id(unified[3:])
        stat = Path(f"/proc/{pid}/stat").read_text()
        self.start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the comm may hold spaces
        self.loginuid = int(Path(f"/proc/{pid}/loginuid").read_text())
        self.sessionid = int(Path(f"/proc/{pid}/sessionid").read_text())
        self.pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino
        self.nodename = uts_nodename(pid)
        self.exe_path = os.readlink(f"/proc/{pid}/exe")

    def started_at(self, start_ns: int) -> bool:
        """start_ns (ns since boot) is this process's start as /proc counts it (in ticks)."""
        return start_ns // TICK_NS == self.start_ticks

    def check(self, event) -> None:
        """Every common field the event carries equals this identity's."""
        for name in ("pid", "tid", "ppid", "uid", "gid", "comm", "cgroup_id", "mntns", "sid", "loginuid", "sessionid",
                     "pidns", "nodename", "exe_path"):
            if name in event.fields:
                assert event.value(name) == getattr(self, name), (name, event)
        if "start_ns" in event.fields:
            assert self.started_at(event.value("start_ns")), (self.start_ticks, event)


def uts_nodename(pid: int) -> str:
    """The nodename of the process's UTS namespace (its hostname)."""
    if os.stat(f"/proc/{pid}/ns/uts").st_ino == os.stat("/proc/self/ns/uts").st_ino:
        return os.uname().nodename
    return subprocess.run(["nsenter", f"--uts=/proc/{pid}/ns/uts", "uname", "-n"], capture_output=True, text=True,
                          check=True).stdout.rstrip("\n")


def marker(what: str = "identity") -> str:
    return f"sdxfer-{what}-{uuid.uuid4().hex[:12]}"


def waiting_shell(marker: str) -> str:
    """A shell command line that execs a shell waiting on stdin, marker its last argument."""
    return f"exec sh -c 'read line' {marker}"


class ChildProcess:
    """A child process (self.proc) killed if it still runs when its with
    block ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Waiting(ChildProcess):
    """A child command ending in waiting_shell(marker): its exec event, and
    its Identity read from /proc while it waits. Popen's other arguments
    (cwd, stdout, ...) pass through."""

    def __init__(self, sensor, command: list[str], marker: str, **popen):
        self.proc = subprocess.Popen(command, stdin=popen.pop("stdin", subprocess.PIPE), **popen)
        self.sensor = sensor
        # a shell's `exec sh` may first fail on other PATH entries, with the same argv
        self.exec = wait_for(sensor, lambda e: e.name == "exec" and e.ret == 0 and e.argv and e.argv[-1] == marker)
        assert self.proc.poll() is None, "the child did not wait"
        self.identity = Identity(self.exec.pid)

    def exit(self):
        """Lets the waiting shell end; its exit event."""
        self.proc.stdin.close()
        self.proc.wait()
        return wait_for(self.sensor, lambda e: e.name == "exit" and e.pid == self.exec.pid)
