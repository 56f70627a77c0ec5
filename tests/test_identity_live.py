"""Live tests of the identity common fields (issue 18): start_ns, loginuid,
sessionid, pidns and nodename, on both backends and transports, against what
/proc says of the same process: in this namespace, in a new pid and UTS
namespace, and after a setuid with a login uid set.

Each child ends in a shell waiting on stdin, so the test reads its /proc
while it runs; its exec is found by a marker argument, its exit by its pid.
The probe is bpf/hids.bpf.c with exec and exit selected.

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from hids_support import TICK_NS, WAIT_S, Waiting, events_until, marker, wait_for, waiting_shell
from sdxfer import hids
from sdxfer.runtime import record

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


@pytest.mark.parametrize("depth", [1, 2, 3], ids=["one-deep", "two-deep", "three-deep"])
def test_new_pid_and_uts_namespace(sensor, depth):
    """pidns is the namespace's own at any depth (the probe reads the first
    two levels one way, deeper ones another)."""
    mark = marker()
    command = ["unshare", "--pid", "--uts", "--fork"] + ["unshare", "--pid", "--fork"] * (depth - 1) + \
        ["sh", "-c", f"hostname {HOSTNAME}; {waiting_shell(mark)}"]
    with Waiting(sensor, command, mark) as child:
        pid = child.exec.pid  # as the initial namespace numbers it
        assert child.exec.pidns == os.stat(f"/proc/{pid}/ns/pid").st_ino != os.stat("/proc/self/ns/pid").st_ino
        assert child.exec.nodename == child.identity.nodename == HOSTNAME != os.uname().nodename
        child.identity.check(child.exec)
        end = child.exit()
    child.identity.check(end)


@pytest.mark.parametrize("hostname", ["h", "n" * 8, "n" * 63, "n" * 64], ids=["1-byte", "8-byte", "63-byte", "64-byte"])
def test_comm_and_nodename_are_whole_at_any_length(sensor, tmp_path, hostname):
    """comm is copied 8 bytes at a time (sdxfer_put_source_comm): a program's
    name of 20 bytes makes a comm of 15, its NUL the last of the array's 16,
    whole and not flagged. The nodename is whole at any length up to the
    longest (64 bytes, its NUL the array's last byte)."""
    program = tmp_path / "abcdefghijklmnopqrst"
    shutil.copy("/bin/sh", program)
    mark = marker()
    command = ["unshare", "--uts", "sh", "-c", f"hostname {hostname}; exec {program} -c 'read line' {mark}"]
    with Waiting(sensor, command, mark) as child:
        assert child.exec.nodename == hostname == child.identity.nodename
        assert child.exec.comm == "abcdefghijklmno"
        assert not {"nodename", "comm"} & set(child.exec.truncated)
        end = child.exit()
    assert (end.nodename, end.comm) == (hostname, "abcdefghijklmno")
    assert not {"nodename", "comm"} & set(end.truncated)


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


def _bpftool(*argv):
    return json.loads(subprocess.run(["bpftool", "-j", *argv], capture_output=True, text=True, check=True).stdout)


def kept_tgids(sensor) -> set[int]:
    """The tgids whose executable paths the probe keeps: the keys of its two
    exe_path maps, found through its programs' maps (the kernel cuts map
    names to 15 bytes) and dumped with bpftool."""
    map_ids = set()
    for fd in sensor._probe.program_fds().values():
        info = dict(line.split(":", 1) for line in open(f"/proc/self/fdinfo/{fd}") if ":" in line)
        map_ids.update(_bpftool("prog", "show", "id", info["prog_id"].strip()).get("map_ids", []))
    names = {record.EXE_PATHS_MAP[:15], record.EXE_LONG_PATHS_MAP[:15]}
    tgids = set()
    for map_id in map_ids:
        if _bpftool("map", "show", "id", str(map_id))["name"] in names:
            for entry in _bpftool("map", "dump", "id", str(map_id)):
                key = entry.get("formatted", entry)["key"]
                tgids.add(key if isinstance(key, int) else int.from_bytes(bytes(int(b, 16) for b in key), "little"))
    return tgids


# The keeper forgets a path at the exit event's tracepoint, just after the
# exit event's program: the deadline covers only the read of that record
# before it. Without the keeper the LRU hash pushes a path out in 12 to 14 s
# of this machine's background: a longer deadline would not tell.
FORGOTTEN_WITHIN_S = 3


def wait_forgotten(sensor, pid: int) -> None:
    """Until the probe keeps no path for pid, whose exit event was read."""
    deadline = time.monotonic() + FORGOTTEN_WITHIN_S
    while pid in kept_tgids(sensor):
        assert time.monotonic() < deadline, f"the path of {pid}, exited, is still kept"
        time.sleep(0.1)


def test_a_process_path_is_kept_while_it_lives_and_forgotten_after(sensor):
    """exe_path is kept per process from its exec on, and dropped once the
    process's last thread exits: the maps hold the processes that live, not
    the newest 1,024 seen, which only newer processes would push out
    (without the drop, 12 to 14 s of this machine's background)."""
    mark = marker()
    with Waiting(sensor, ["sh", "-c", waiting_shell(mark)], mark) as child:
        pid = child.exec.pid
        assert pid in kept_tgids(sensor)
        child.exit()
    wait_forgotten(sensor, pid)


def test_a_long_executable_path_is_kept_too(sensor, tmp_path):
    """A path of 256 bytes or more is kept apart (record.EXE_SHORT_TEXT): the
    exit event still has it whole, and it is forgotten with the process. The
    keeper, at the exit event's tracepoint, leaves no copy of a long path:
    had it run first, the exit event would walk the path again and keep it
    for good (the loaders attach the keeper last)."""
    folder = tmp_path.joinpath(*(f"{level}" * 100 for level in "abc"))
    folder.mkdir(parents=True)
    program = folder / "sh"
    shutil.copy("/bin/sh", program)
    assert len(str(program)) >= record.EXE_SHORT_TEXT
    mark = marker()
    with Waiting(sensor, [str(program), "-c", "read line", mark], mark) as child:
        pid = child.exec.pid
        assert child.exec.exe_path == str(program)
        child.identity.check(child.exec)
        assert pid in kept_tgids(sensor)
        end = child.exit()
    assert end.exe_path == str(program)
    wait_forgotten(sensor, pid)


@pytest.mark.parametrize("change", ["unlinked", "renamed", "moved"])
def test_a_program_removed_or_renamed_while_it_runs_shows_as_proc_says(sensor, tmp_path, change):
    """The path kept at exec is walked again once the file is unlinked,
    renamed or moved under the running process: its later events say what
    readlink /proc/PID/exe says (" (deleted)", the new path), not the path
    it had."""
    program = tmp_path / "implant"
    shutil.copy("/bin/sh", program)
    mark = marker()
    with Waiting(sensor, [str(program), "-c", "read line", mark], mark) as child:
        assert child.exec.exe_path == str(program)
        if change == "unlinked":
            program.unlink()
        elif change == "renamed":
            program.rename(tmp_path / "renamed")
        else:  # the same name in another directory
            (tmp_path / "elsewhere").mkdir()
            program.rename(tmp_path / "elsewhere" / program.name)
        now = os.readlink(f"/proc/{child.exec.pid}/exe")
        assert now != str(program)
        end = child.exit()
    assert end.exe_path == now


def test_a_second_exec_on_the_same_cpu_shows_the_new_program(sensor, tmp_path):
    """Each CPU keeps a copy of the last kept path its events took. Here, on
    one CPU, a subshell's exit takes the first program's path from the map
    (its parent's, which serves it) and leaves it in the copy; then the
    process execs a second program, whose exec and exit events show the
    second path: the copy is of another image of the same pid and start."""
    first, second = tmp_path / "first-sh", tmp_path / "second-sh"
    shutil.copy("/bin/sh", first)
    shutil.copy("/bin/sh", second)
    mark = marker()
    command = ["taskset", "-c", "0", str(first), "-c", f"(exit 0); exec {second} -c 'read line' {mark}"]
    with Waiting(sensor, command, mark) as child:
        assert child.exec.exe_path == str(second)
        end = child.exit()
    assert end.exe_path == str(second)


def test_a_forked_child_takes_its_parents_path_and_keeps_none_of_its_own(sensor):
    """A child forked and not exec'd runs its parent's file: its exit shows
    the parent's path, found under the parent's key, with nothing kept for
    the child itself."""
    mark = marker()
    with Waiting(sensor, ["sh", "-c", "read line; (exit 3); read line", mark], mark) as parent:
        parent.proc.stdin.write(b"go\n")
        parent.proc.stdin.flush()
        end = wait_for(sensor, lambda e: e.name == "exit" and e.ppid == parent.exec.pid != e.pid)
        assert end.exe_path == parent.exec.exe_path == os.path.realpath("/bin/sh")
        kept = kept_tgids(sensor)
        assert parent.exec.pid in kept and end.pid not in kept
        parent.exit()


def test_a_forked_child_under_another_root_sees_its_program_from_there(sensor):
    """The parent's exec keeps its path; a child that chroots to /usr before
    it execs exits with its program as it sees it (/bin/...), not the path
    kept for its parent, whose own exit still shows its."""
    exe = os.path.realpath(sys.executable)
    if not exe.startswith("/usr/"):
        pytest.skip(f"the interpreter is not under /usr: {exe}")
    mark = marker()
    code = "import os, sys; sys.stdin.readline(); pid = os.fork()\nif pid == 0:\n    os.chroot('/usr'); os._exit(7)\nos.waitpid(pid, 0)"
    parent = subprocess.Popen([sys.executable, "-B", "-c", code, mark], stdin=subprocess.PIPE)
    try:
        started = wait_for(sensor, lambda e: e.name == "exec" and e.pid == parent.pid and mark in (e.argv or []))
        assert started.exe_path == exe
        parent.communicate(b"go\n", timeout=WAIT_S)
        ends = {}

        def both(e):
            if e.name == "exit" and parent.pid in (e.pid, e.ppid):
                ends["parent" if e.pid == parent.pid else "child"] = e
            return len(ends) == 2

        events_until(sensor, both)
    finally:
        parent.kill()
        parent.wait()
    child_end, parent_end = ends["child"], ends["parent"]
    assert child_end.exe_path == exe[len("/usr"):]
    assert parent_end.exe_path == exe
