"""Live tests of the process family (bpf/process.bpf.h): exit, ptrace,
memfd_create, prctl, setsid, creds_change and kmod_load, on both transports.

Each action is done by a child interpreter (its own pid), step by step: a
step runs, prints what it saw (return values, errno), and waits on stdin, so
the test can read the child's identity from /proc while it is in the state
the event describes (hids_support.Identity checks the common fields once the
schema has them), then lets it go on.

The probe is bpf/hids.bpf.c with this family's events selected; events are
matched to the child by their pid.

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import hids_support
from sdxfer import Creds, hids

pytestmark = pytest.mark.live

HERE = Path(__file__).resolve().parent
PROGRAM = hids.PROGRAM
SCHEMA = None  # the shipped one
DEFINES = hids.defines_for(["exit", "ptrace", "memfd_create", "prctl", "setsid", "creds_change", "kmod_load"])
NAME = "name"  # read with event.value(NAME): event.name is the event's own name

DONE = 93  # exit status of a child whose exit is not under test

ROOT_CREDS = Creds(0, 0, 0, 0, 0, 0, 0, 0)

CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
libc.syscall.restype = ctypes.c_long

def call(function, *args):
    ret = function(*args)
    return [ret, ctypes.get_errno() if ret == -1 else 0]

def oserror(action):
    try:
        return [action(), 0]
    except OSError as exc:
        return [-1, exc.errno]

for step in json.loads(sys.argv[1]):
    out = {}
    exec(step)
    print(json.dumps(out), flush=True)
    if sys.stdin.readline() != "\n":
        break
os._exit(int(sys.argv[2]))
"""


class Child:
    """A python child that runs its steps one at a time: result() waits for
    the current step's output; proceed() starts the next."""

    def __init__(self, *steps: str, exit_status: int = DONE):
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(steps), str(exit_status)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, "the child died"
        return json.loads(line)

    def identity(self, tid=None) -> hids_support.Identity:
        return hids_support.Identity(self.pid, tid)

    def proceed(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def status(self) -> int:
        """Lets the child end; its status as wait(2) reports it."""
        self.proc.stdin.close()
        _, status = os.waitpid(self.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return status

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """Ends a child still running with DONE (a kill would send an exit
        another test may be looking for)."""
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(hids_support.WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def mine(event, child) -> bool:
    return event.pid == child.pid


def matches(child, event_name, values):
    return lambda e: e.name == event_name and mine(e, child) and all(e.value(k) == v for k, v in values.items())


def arrived(sensor, backlog, timeout=hids_support.WAIT_S):
    """Events as they arrive, appended to backlog (hids_support.wait_for
    would drop the rest of a batch after the one it wants)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = list(sensor.decoded(sensor.read(100)))
        backlog += batch
        yield batch
    raise AssertionError("the expected event never arrived")


def expect(sensor, child, event_name, **values):
    """The child's first event `event_name` whose fields have these values; events
    read meanwhile stay in sensor.backlog for the next look."""
    wanted = matches(child, event_name, values)
    for batch in [sensor.backlog] if any(map(wanted, sensor.backlog)) else arrived(sensor, sensor.backlog):
        if any(map(wanted, batch)):
            break
    event = next(e for e in sensor.backlog if wanted(e))
    sensor.backlog.remove(event)
    return event


def child_events_until(sensor, child, event_name, **values) -> list:
    """The child's events up to its first `event_name` event with these values,
    and whatever was recorded before that one on other CPUs."""
    wanted = matches(child, event_name, values)
    if not any(map(wanted, sensor.backlog)):
        for batch in arrived(sensor, sensor.backlog):
            if any(map(wanted, batch)):
                break
    sensor.backlog += sensor.decoded(sensor.drain())
    got = [e for e in sensor.backlog if mine(e, child)]
    sensor.backlog[:] = [e for e in sensor.backlog if not mine(e, child)]
    return got


# ---- exit --------------------------------------------------------------------

@pytest.mark.parametrize("how", ["exit 0", "exit 3", "SIGKILL", "SIGTERM"])
def test_exit_code_as_wait_reports_it(sensor, how):
    code = int(how.split()[1]) if how.startswith("exit") else DONE
    with Child("pass", exit_status=code) as child:
        child.result()
        identity = child.identity()
        if how.startswith("SIG"):
            child.proc.send_signal(getattr(signal, how))
        status = child.status()
        assert status == ({"exit 0": 0, "exit 3": 3 << 8, "SIGKILL": 9, "SIGTERM": 15}[how])
        (event,) = [e for e in child_events_until(sensor, child, "exit", code=status)
                    if e.name == "exit" and e.code == status]
        identity.check(event)


THREADS = """
import threading
alone = threading.Thread(target=lambda: None)
alone.start()
alone.join()
stop = threading.Event()
workers = [threading.Thread(target=stop.wait, daemon=True) for _ in range(4)]
for w in workers:
    w.start()
out["tids"] = [threading.get_native_id()] + [w.native_id for w in workers]
"""


def test_exit_once_per_process_not_per_thread(sensor):
    """A thread that exits alone sends nothing; a process of five threads
    sends one exit, from whichever thread is last."""
    with Child(THREADS, exit_status=5) as child:
        tids = child.result()["tids"]
        identity = child.identity()
        status = child.status()
        # code 0: what a thread's exit would say (the DEV schema has no pid to
        # tell this child's exits from others; no other child ends with 0 or 5)
        exits = [e for e in child_events_until(sensor, child, "exit", code=5 << 8)
                 if e.name == "exit" and e.code in (0, 5 << 8)]
    assert status == 5 << 8
    (event,) = exits
    if "tid" in event.fields:
        assert event.tid in tids
        identity.tid = event.tid
    identity.check(event)


# ---- ptrace ------------------------------------------------------------------

PTRACE_ATTACH, PTRACE_POKEDATA, PTRACE_DETACH = 16, 5, 17
POKED = 0x1122334455667788
NO_SUCH_PID = 0x3FFFFFF0  # above any pid_max

TRACEE = """
import ctypes
buf = ctypes.c_uint64(0)
out["addr"] = ctypes.addressof(buf)
""", """
out["value"] = buf.value
"""

TRACER = """
tracee, addr = map(int, sys.argv[3:5])
out["attach"] = call(libc.ptrace, %d, tracee, None, None)
os.waitpid(tracee, 0)   # stopped
out["poke"] = call(libc.ptrace, %d, tracee, addr, %d)
out["detach"] = call(libc.ptrace, %d, tracee, None, 0)
out["self"] = call(libc.ptrace, %d, os.getpid(), None, None)
out["nobody"] = call(libc.ptrace, %d, %d, None, None)
""" % (PTRACE_ATTACH, PTRACE_POKEDATA, POKED, PTRACE_DETACH, PTRACE_ATTACH, PTRACE_ATTACH, NO_SUCH_PID)


def test_ptrace_attach_poke_and_failures(sensor):
    with Child(*TRACEE) as tracee:
        addr = tracee.result()["addr"]
        tracer = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps([TRACER]), str(DONE), str(tracee.pid),
                                   str(addr)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        out = json.loads(tracer.stdout.readline())
        identity = hids_support.Identity(tracer.pid)
        tracee.proceed()
        assert tracee.result()["value"] == POKED
        tracer_child = types.SimpleNamespace(pid=tracer.pid)
        try:
            assert out["attach"] == out["poke"] == out["detach"] == [0, 0]
            assert out["self"] == [-1, errno.EPERM] and out["nobody"] == [-1, errno.ESRCH]
            expected = [(PTRACE_ATTACH, tracee.pid, 0, 0), (PTRACE_POKEDATA, tracee.pid, addr, 0),
                        (PTRACE_ATTACH, tracer.pid, 0, -errno.EPERM), (PTRACE_ATTACH, NO_SUCH_PID, 0, -errno.ESRCH)]
            for request, target, at, ret in expected:
                event = expect(sensor, tracer_child, "ptrace", request=request, target=target, ret=ret)
                assert event.addr == at
                identity.check(event)
        finally:
            tracer.stdin.close()
            tracer.wait()
            tracer.stdout.close()
    # PTRACE_DETACH (17) writes nothing into the tracee: not reported
    assert all(e.request != PTRACE_DETACH for e in child_events_until(sensor, tracer_child, "exit", code=DONE << 8)
               if e.name == "ptrace")


# ---- memfd_create ------------------------------------------------------------

LONG_NAME = "m" * 300  # longer than the kernel takes (249) and than the field keeps


def test_memfd_create(sensor):
    with Child('out["ok"] = oserror(lambda: os.memfd_create("sdxfer-test", os.MFD_CLOEXEC))',
               'out["bad"] = oserror(lambda: os.memfd_create("sdxfer-bad", 0x7ffffff0))',
               f'out["long"] = oserror(lambda: os.memfd_create({LONG_NAME!r}, 0))') as child:
        fd, err = child.result()["ok"]
        assert fd >= 0 and err == 0
        identity = child.identity()
        event = expect(sensor, child, "memfd_create", **{NAME: "sdxfer-test"})
        assert (event.flags, event.ret, event.truncated) == (os.MFD_CLOEXEC, fd, ())
        identity.check(event)
        child.proceed()
        assert child.result()["bad"] == [-1, errno.EINVAL]
        event = expect(sensor, child, "memfd_create", **{NAME: "sdxfer-bad"})
        assert (event.flags, event.ret) == (0x7ffffff0, -errno.EINVAL)
        identity.check(event)
        child.proceed()
        assert child.result()["long"] == [-1, errno.EINVAL]
        event = hids_support.wait_for(sensor, lambda e: e.name == "memfd_create" and mine(e, child) and
                                      (e.value(NAME) or "").startswith("mmm"))
        assert LONG_NAME.startswith(event.value(NAME)) and NAME in event.truncated
        assert (event.flags, event.ret) == (0, -errno.EINVAL)
        identity.check(event)


# ---- prctl -------------------------------------------------------------------

PR_GET_DUMPABLE, PR_SET_NAME = 3, 15


def test_prctl(sensor):
    with Child(f'out["set"] = call(libc.prctl, {PR_SET_NAME}, b"sdxfer-prctl", 0, 0, 0)',
               f'out["get"] = call(libc.prctl, {PR_GET_DUMPABLE}, 0, 0, 0, 0)',
               'out["bad"] = call(libc.prctl, 0x7fff1234, 0, 0, 0, 0)') as child:
        assert child.result()["set"] == [0, 0]
        identity = child.identity()  # comm is the new name from here on
        assert identity.comm == "sdxfer-prctl"
        event = expect(sensor, child, "prctl", option=PR_SET_NAME, **{NAME: "sdxfer-prctl"})
        assert (event.ret, event.truncated) == (0, ())
        identity.check(event)
        child.proceed()
        assert child.result()["get"] == [1, 0]
        event = expect(sensor, child, "prctl", option=PR_GET_DUMPABLE)
        assert (event.value(NAME), event.ret) == (None, 1)
        identity.check(event)
        child.proceed()
        assert child.result()["bad"] == [-1, errno.EINVAL]
        event = expect(sensor, child, "prctl", option=0x7fff1234)
        assert (event.value(NAME), event.ret) == (None, -errno.EINVAL)
        identity.check(event)


# ---- setsid ------------------------------------------------------------------

def test_setsid(sensor):
    with Child('out["first"] = oserror(os.setsid)', 'out["again"] = oserror(os.setsid)') as child:
        assert child.result()["first"] == [None, 0]
        identity = child.identity()  # the new session's
        assert identity.sid == child.pid
        identity.check(expect(sensor, child, "setsid", ret=child.pid))
        child.proceed()
        assert child.result()["again"] == [-1, errno.EPERM]  # a session leader already
        identity.check(expect(sensor, child, "setsid", ret=-errno.EPERM))


# ---- creds_change ------------------------------------------------------------

CAPSET = """
class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
header, data = Header(0x20080522, 0), (Data * 2)()
assert libc.capget(ctypes.byref(header), data) == 0
data[0].effective &= ~(1 << 13)   # CAP_NET_RAW
data[0].permitted &= ~(1 << 13)
out["capset"] = call(libc.capset, ctypes.byref(header), data)
"""

CREDS_STEPS = [
    ("setresgid", 'out["ret"] = oserror(lambda: os.setresgid(1000, 1000, 1000))',
     Creds(0, 1000, 0, 1000, 0, 1000, 0, 1000), 0),
    ("setfsuid", 'out["ret"] = call(libc.setfsuid, 1234)', Creds(0, 1000, 0, 1000, 0, 1000, 1234, 1000), 0),
    ("setfsuid", 'out["ret"] = call(libc.setfsuid, 0)', Creds(0, 1000, 0, 1000, 0, 1000, 0, 1000), 1234),
    ("setgroups", 'out["ret"] = oserror(lambda: os.setgroups([7, 8, 9]))', None, 0),
    ("capset", CAPSET.replace('out["capset"]', 'out["ret"]'), None, 0),
    ("setuid", 'out["ret"] = oserror(lambda: os.setuid(1000))', Creds(*[1000] * 8), 0),
    # unprivileged now: attempts fail and change nothing
    ("setuid", 'out["ret"] = oserror(lambda: os.setuid(0))', None, -errno.EPERM),
    ("setresgid", 'out["ret"] = oserror(lambda: os.setresgid(0, 0, 0))', None, -errno.EPERM),
    # setfsuid never fails: it returns the previous fsuid and leaves it
    ("setfsuid", 'out["ret"] = call(libc.setfsuid, 0)', None, 1000),
]


def test_creds_change_each_change_and_each_failed_attempt(sensor):
    with Child(*[step for _, step, _, _ in CREDS_STEPS]) as child:
        old = ROOT_CREDS
        for syscall, _, new, ret in CREDS_STEPS:
            new = new or old  # None: nothing changes
            got, err = child.result()["ret"]
            assert (err, got if got is not None else 0) == ((-ret, -1) if ret < 0 else (0, ret)), syscall
            identity = child.identity()
            event = expect(sensor, child, "creds_change", syscall=syscall, ret=ret, old=old)
            assert (event.old, event.new) == (old, new), syscall
            identity.check(event)
            old = new
            child.proceed()


def test_creds_change_that_changes_nothing_sends_nothing(sensor):
    """Root asking for what it has: setuid(0), setresgid(-1, -1, -1), the
    setfsuid(-1) query, setfsuid(0), setgroups of the groups it has; then a
    prctl marks the end."""
    with Child('os.setgroups([4, 5]); os.setuid(0); os.setresgid(-1, -1, -1); libc.setfsuid(-1); '
               'libc.setfsuid(0); os.setgroups([4, 5]); out["marker"] = call(libc.prctl, 0x7fff4321, 0, 0, 0, 0)') as child:
        assert child.result()["marker"] == [-1, errno.EINVAL]
        got = child_events_until(sensor, child, "prctl", option=0x7fff4321)
    changes = [e for e in got if e.name == "creds_change"]
    assert [e.syscall for e in changes] == ["setgroups"]  # the first, from root's groups to [4, 5]
    assert changes[0].old == changes[0].new == ROOT_CREDS and changes[0].ret == 0


# ---- kmod_load ---------------------------------------------------------------

NR_INIT_MODULE, NR_FINIT_MODULE = 175, 313  # x86-64
NOT_A_MODULE = b"\x7fELF but not a module" + bytes(200)


def test_kmod_load_of_what_is_not_a_module(sensor, tmp_path):
    """Never a real module: garbage bytes by init_module and a garbage file by
    finit_module. Both fail (-ENOEXEC and the like; -ENOSYS on a kernel
    without module support); the kernel cannot tell a module name."""
    junk = tmp_path / "not-a-module.ko"
    junk.write_bytes(NOT_A_MODULE)
    with Child(f'fd = os.open({str(junk)!r}, os.O_RDONLY); out["fd"] = fd; '
               f'out["finit"] = call(libc.syscall, {NR_FINIT_MODULE}, fd, b"", 0)',
               f'blob = {NOT_A_MODULE!r}; '
               f'out["init"] = call(libc.syscall, {NR_INIT_MODULE}, blob, len(blob), b"")') as child:
        first = child.result()
        ret, err = first["finit"]
        assert ret == -1 and err != 0
        identity = child.identity()
        event = expect(sensor, child, "kmod_load", syscall="finit_module", fd=first["fd"])
        assert (event.value(NAME), event.ret, NAME in event.truncated) == (None, -err, True)
        identity.check(event)
        child.proceed()
        ret, err = child.result()["init"]
        assert ret == -1 and err != 0
        event = expect(sensor, child, "kmod_load", syscall="init_module")
        assert (event.value(NAME), event.fd, event.ret, NAME in event.truncated) == (None, -1, -err, True)
        identity.check(event)
