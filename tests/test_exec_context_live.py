"""Live tests of where and how a program runs (issue 18): exe_path (common),
and exec's exe_ino, exe_dev, exe_memfd, exe_deleted, cwd, tty, stdin,
stdout, stderr, stdio_remote and stdio_local, on both backends and
transports, against what /proc says of the same process while it waits:
a symlinked program, a relative path in a chdir'ed child, fexecve of a
memfd and of a deleted file, a pty, a TCP socket on loopback as stdio (the
reverse-shell shape), pipes and a closed fd, a 40-level working directory.

Needs root (CI runs as root); skipped otherwise.
"""
import errno
import ipaddress
import os
import pty
import select
import shutil
import socket
import subprocess
import sys

import pytest

from hids_support import Waiting, marker, wait_for, waiting_shell
from sdxfer import SockAddr, hids

pytestmark = pytest.mark.live

PROGRAM = hids.PROGRAM
SCHEMA = None  # the shipped one
DEFINES = hids.defines_for(["exec", "exit"])


def proc_fd(pid: int, fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except FileNotFoundError:
        return None


def check_against_proc(event, fds=range(3)) -> None:
    """Every exec context field equals what /proc shows of the waiting process
    (fds: those the program keeps as they were at its exec)."""
    pid = event.pid
    exe = os.stat(f"/proc/{pid}/exe")
    assert event.exe_path == os.readlink(f"/proc/{pid}/exe")
    assert (event.exe_ino, event.exe_dev) == (exe.st_ino, exe.st_dev)
    assert event.cwd == os.readlink(f"/proc/{pid}/cwd")
    stdio = (event.stdin, event.stdout, event.stderr)
    assert [stdio[fd] for fd in fds] == [proc_fd(pid, fd) for fd in fds]
    assert not event.truncated


def sh_copy(folder) -> str:
    """A copy of /bin/sh in folder (its own inode)."""
    path = os.path.join(folder, "copied-sh")
    shutil.copy("/bin/sh", path)
    return path


def test_symlinked_program_resolves(sensor, tmp_path):
    target = sh_copy(tmp_path)
    link = tmp_path / "link-to-sh"
    link.symlink_to(target)
    mark = marker("context")
    with Waiting(sensor, [str(link), "-c", "read line", mark], mark) as child:
        event = child.exec
        assert event.exe == str(link)  # as passed
        assert event.exe_path == target
        assert (event.exe_memfd, event.exe_deleted) == (0, 0)
        check_against_proc(event)
        end = child.exit()
    assert end.exe_path == target  # every event of the process names its program


def test_relative_path_in_a_chdired_child(sensor, tmp_path):
    folder = tmp_path / "run here"
    folder.mkdir()
    program = sh_copy(folder)
    mark = marker("context")
    with Waiting(sensor, ["./copied-sh", "-c", "read line", mark], mark, cwd=folder) as child:
        event = child.exec
        assert event.exe == "./copied-sh"
        assert (event.exe_path, event.cwd) == (program, str(folder))
        check_against_proc(event)


MEMFD_EXEC = """
import os, sys
fd = os.memfd_create("sdxfer-fileless")
with open("/bin/sh", "rb") as sh:
    os.write(fd, sh.read())
os.execve(fd, ["sh", "-c", "read line", sys.argv[1].removeprefix("for-")], {})
"""

DELETED_EXEC = """
import os, sys
fd = os.open(sys.argv[2], os.O_RDONLY)  # the marker is argv[1]: python's own exec does not end in it
os.unlink(sys.argv[2])
os.execve(fd, ["sh", "-c", "read line", sys.argv[1].removeprefix("for-")], {})
"""


def test_fexecve_of_a_memfd(sensor):
    mark = marker("context")
    with Waiting(sensor, [sys.executable, "-c", MEMFD_EXEC, f"for-{mark}"], mark) as child:
        event = child.exec
        assert event.exe_path == "/memfd:sdxfer-fileless (deleted)"
        assert (event.exe_memfd, event.exe_deleted) == (1, 1)
        check_against_proc(event)


def test_fexecve_of_a_deleted_file(sensor, tmp_path):
    program = sh_copy(tmp_path)
    mark = marker("context")
    with Waiting(sensor, [sys.executable, "-c", DELETED_EXEC, f"for-{mark}", program], mark) as child:
        event = child.exec
        assert event.exe_path == f"{program} (deleted)"
        assert (event.exe_memfd, event.exe_deleted) == (0, 1)
        check_against_proc(event)


def test_under_a_pty(sensor):
    mark = marker("context")
    pid, controller = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", waiting_shell(mark)])
    try:
        event = wait_for(sensor, lambda e: e.name == "exec" and e.ret == 0 and e.argv and e.argv[-1] == mark)
        terminal = os.readlink(f"/proc/{event.pid}/fd/0")
        assert terminal.startswith("/dev/pts/")
        assert event.tty == terminal[len("/dev/"):]  # pts/N, as ps names it
        assert (event.stdin, event.stdout, event.stderr) == (terminal,) * 3
        assert event.stdio_remote is None and event.stdio_local is None
        check_against_proc(event)
    finally:
        os.write(controller, b"\n")
        os.waitpid(pid, 0)
        os.close(controller)


def test_stdio_a_tcp_socket_on_loopback(sensor):
    """The reverse-shell shape: fds 0-2 a connected socket."""
    mark = marker("context")
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        try:
            with Waiting(sensor, ["sh", "-c", waiting_shell(mark)], mark, stdin=client, stdout=client,
                         stderr=client) as child:
                event = child.exec
                inode = os.fstat(client.fileno()).st_ino
                assert (event.stdin, event.stdout, event.stderr) == (f"socket:[{inode}]",) * 3
                host, port = server.getsockname()
                local_host, local_port = client.getsockname()
                assert event.stdio_remote == SockAddr(socket.AF_INET, port, ipaddress.ip_address(host))
                assert event.stdio_local == SockAddr(socket.AF_INET, local_port, ipaddress.ip_address(local_host))
                assert event.tty is None
                check_against_proc(event)
                peer.sendall(b"\n")
        finally:
            client.close()
            peer.close()


def test_a_socket_whose_connect_was_refused_is_no_peer(sensor):
    """stdio_remote and stdio_local are a connected socket's: one whose
    connect was refused (getpeername: ENOTCONN) still holds the address it
    tried, and is not taken for a peer."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        target = closed.getsockname()  # nothing listens there once closed
    refused = socket.socket()
    refused.setblocking(False)
    try:
        refused.connect_ex(target)
        select.select([], [refused], [], 5)
        assert refused.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
        mark = marker("context")
        with Waiting(sensor, ["sh", "-c", waiting_shell(mark)], mark, stdout=refused) as child:
            event = child.exec
            assert event.stdout == f"socket:[{os.fstat(refused.fileno()).st_ino}]"
            assert event.stdio_remote is None and event.stdio_local is None
            check_against_proc(event, fds=(1,))
    finally:
        refused.close()


def file_at_length(folder, length: int) -> str:
    """An empty file whose absolute path is `length` bytes, made under folder."""
    path = str(folder)
    while length - len(path) > 201:
        path += "/" + "d" * 199
        os.mkdir(path)
    path += "/" + "f" * (length - len(path) - 1)
    open(path, "w").close()
    assert len(path) == length
    return path


@pytest.mark.parametrize("length, fits", [(512, True), (513, False)])
def test_stdio_paths_near_and_beyond_what_a_record_keeps(sensor, tmp_path, length, fits):
    """A record keeps 512 bytes of each of fds 0-2: a longer path is flagged
    without text, not cut to a prefix that may name another file (here the
    directories above it)."""
    path = file_at_length(tmp_path, length)
    mark = marker("context")
    with open(path, "w") as out, Waiting(sensor, ["sh", "-c", waiting_shell(mark)], mark, stdout=out) as child:
        event = child.exec
        if fits:
            assert event.stdout == path == proc_fd(event.pid, 1)
            assert "stdout" not in event.truncated
        else:
            assert event.stdout is None and "stdout" in event.truncated


def test_pipes_and_a_closed_fd(sensor):
    mark = marker("context")
    command = ["sh", "-c", f"exec 2>&- sh -c 'read line' {mark}"]
    with Waiting(sensor, command, mark, stdout=subprocess.PIPE) as child:
        event = child.exec
        assert event.stdin.startswith("pipe:[") and event.stdout.startswith("pipe:[")
        assert event.stderr is None  # closed
        assert event.stdio_remote is None and event.stdio_local is None
        check_against_proc(event, fds=(0, 1))  # the loader may open a library as fd 2 after the exec


def test_forty_levels_of_working_directory(sensor, tmp_path):
    folder = tmp_path
    for level in range(40):
        folder = folder / f"level-{level:02d}-{'d' * 60}"
    folder.mkdir(parents=True)
    assert 40 * 70 < len(str(folder)) < 4096
    mark = marker("context")
    with Waiting(sensor, ["sh", "-c", waiting_shell(mark)], mark, cwd=folder) as child:
        assert child.exec.cwd == str(folder)
        check_against_proc(child.exec)


def test_a_failed_exec_says_where_it_was_tried(sensor, tmp_path):
    missing = str(tmp_path / "no-such-program")
    subprocess.run(["sh", "-c", f"'{missing}' 2>/dev/null"], cwd=tmp_path)
    event = wait_for(sensor, lambda e: e.name == "exec" and e.exe == missing)
    assert event.ret < 0
    assert event.cwd == str(tmp_path)
    assert (event.exe_ino, event.exe_dev, event.exe_memfd, event.exe_deleted) == (0, 0, 0, 0)
    assert event.stderr == "/dev/null"


DEEP_EXEC = """
import os, sys
for level in range(int(sys.argv[2])):
    name = f"{level:03d}-" + "n" * 240
    os.mkdir(name)
    os.chdir(name)
os.execv("/bin/sh", ["sh", "-c", "read line", sys.argv[1].removeprefix("for-")])
"""


@pytest.mark.parametrize("levels, fits", [(16, True), (17, False)])
def test_working_directory_near_and_beyond_4096_bytes(sensor, tmp_path, levels, fits):
    """16 levels of 245 bytes: a 4096-byte bound holds the whole path; 17 do
    not fit, and the field is flagged, not cut to a shorter path."""
    mark = marker("context")
    with Waiting(sensor, [sys.executable, "-c", DEEP_EXEC, f"for-{mark}", str(levels)], mark, cwd=tmp_path) as child:
        event = child.exec
        expected = str(tmp_path) + "".join(f"/{level:03d}-" + "n" * 240 for level in range(levels))
        assert (len(expected) <= 4096) == fits
        if fits:
            assert len(expected) > 3900
            assert event.cwd == expected == os.readlink(f"/proc/{event.pid}/cwd")
            assert "cwd" not in event.truncated
        else:
            assert event.cwd is None and "cwd" in event.truncated
