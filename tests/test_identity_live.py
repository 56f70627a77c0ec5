"""Live tests of the identity common fields (issue 18): start_ns, loginuid,
sessionid, pidns and nodename, on both backends and transports, against what
/proc says of the same process: in this namespace, in a new pid and UTS
namespace, and after a setuid with a login uid set.

Each child ends in a shell waiting on stdin, so the test reads its /proc
while it runs; its exec is found by a marker argument, its exit by its pid.
The probe is bpf/hids.bpf.c with exec and exit selected.

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import os

import pytest

from hids_support import TICK_NS, Waiting, marker, waiting_shell
from sdxfer import hids

pytestmark = pytest.mark.live

PROGRAM = hids.PROGRAM
SCHEMA = None  # the shipped one
DEFINES = hids.defines_for(["exec", "exit"])

UNSET = 4294967295  # (uid_t)-1: no login uid, no audit session
HOSTNAME = "sdxfer-test-uts"
LOGINUID = 4242
NOBODY = 65534


def test_identity_fields_are_what_proc_says(sensor):
    mark = marker()
    with Waiting(sensor, ["sh", "-c", waiting_shell(mark)], mark) as child:
        proc = child.identity  # /proc/PID/stat field 22, loginuid, sessionid, ns/pid
        assert child.exec.start_ns // TICK_NS == proc.start_ticks
        assert (child.exec.loginuid, child.exec.sessionid) == (proc.loginuid, proc.sessionid)
        assert child.exec.pidns == proc.pidns == os.stat("/proc/self/ns/pid").st_ino
        assert child.exec.nodename == os.uname().nodename
        proc.check(child.exec)
        end = child.exit()
    child.identity.check(end)
    assert end.start_ns == child.exec.start_ns  # (pid, start_ns): one key for the process's events


def test_start_ns_tells_a_reused_pid_apart(sensor):
    """Two processes never share (pid, start_ns): the later start is later."""
    first, second = marker(), marker()
    with Waiting(sensor, ["sh", "-c", waiting_shell(first)], first) as older:
        with Waiting(sensor, ["sh", "-c", waiting_shell(second)], second) as newer:
            assert newer.exec.start_ns > older.exec.start_ns
            assert newer.identity.started_at(newer.exec.start_ns)


def test_new_pid_and_uts_namespace(sensor):
    mark = marker()
    command = ["unshare", "--pid", "--uts", "--fork", "sh", "-c", f"hostname {HOSTNAME}; {waiting_shell(mark)}"]
    with Waiting(sensor, command, mark) as child:
        pid = child.exec.pid  # as the initial namespace numbers it
        assert child.exec.pidns == os.stat(f"/proc/{pid}/ns/pid").st_ino != os.stat("/proc/self/ns/pid").st_ino
        assert child.exec.nodename == child.identity.nodename == HOSTNAME != os.uname().nodename
        child.identity.check(child.exec)
        end = child.exit()
    child.identity.check(end)


def test_loginuid_kept_after_setuid(sensor):
    """The login uid a process set stays across a setuid (setpriv), with its audit session."""
    mark = marker()
    command = ["sh", "-c", f"echo {LOGINUID} > /proc/self/loginuid && exec setpriv --reuid={NOBODY} "
               f"--regid={NOBODY} --clear-groups sh -c \"{waiting_shell(mark)}\""]
    with Waiting(sensor, command, mark) as child:
        assert (child.exec.uid, child.exec.loginuid) == (NOBODY, LOGINUID)
        assert child.exec.sessionid == child.identity.sessionid != UNSET
        child.identity.check(child.exec)
        end = child.exit()
    child.identity.check(end)
