"""Live tests of the kernel path walk (sdxfer/include/sdxfer_path.h), on both
backends and transports: tests/probes/paths.bpf.c reports, for a flock()
with the operation TEST_OP (EINVAL: no real caller passes it), the path of
its fd and of the caller's cwd, which must be exactly what readlink of
/proc/PID/fd/N and /proc/PID/cwd show, or flagged where they do not fit
the bounds (never a shorter path).

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import ctypes
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

import hids_support

pytestmark = pytest.mark.live

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "probes" / "paths.bpf.c"
SCHEMA = HERE / "schemas" / "paths.yaml"
TEST_OP = 0x5D1
DEFINES = {"TEST_OP": TEST_OP}
PATH_MAX = 4096  # SDXFER_PATH_MAX: bytes of text
PATH_DEPTH = 64  # SDXFER_PATH_DEPTH: components

libc = ctypes.CDLL(None, use_errno=True)


def report(fd: int) -> None:
    """Has the probe report fd (and the cwd)."""
    libc.flock(fd, TEST_OP)


def reported(sensor, fd: int, pid: int | None = None):
    pid = os.getpid() if pid is None else pid
    return hids_support.wait_for(sensor, lambda e: e.fd == fd and e.pid == pid if "pid" in e.fields else e.fd == fd)


def check_same_as_proc(sensor, fd: int) -> None:
    report(fd)
    event = reported(sensor, fd)
    assert (event.path, event.cwd, event.truncated) == (os.readlink(f"/proc/self/fd/{fd}"), os.getcwd(), ())


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="sdxfer-path-") as path:
        yield path


@pytest.fixture
def fds():
    opened = []
    yield opened
    for fd in opened:
        os.close(fd)


def test_files_directories_and_mount_points(sensor, fds, workdir):
    file = os.path.join(workdir, "a file")
    Path(file).write_text("x")
    fds += [os.open(p, os.O_RDONLY) for p in ("/", "/proc/self", "/dev/shm", workdir, file)]
    for fd in fds:
        check_same_as_proc(sensor, fd)


def test_deleted_file_and_directory(sensor, fds, workdir):
    file, directory = os.path.join(workdir, "gone"), os.path.join(workdir, "gone-dir")
    Path(file).write_text("x")
    os.mkdir(directory)
    fds += [os.open(file, os.O_RDONLY), os.open(directory, os.O_RDONLY)]
    os.unlink(file)
    os.rmdir(directory)
    for fd in fds:
        check_same_as_proc(sensor, fd)
    assert os.readlink(f"/proc/self/fd/{fds[0]}").endswith(" (deleted)")


def test_pseudo_files_as_the_kernel_names_them(sensor, fds):
    read_end, write_end = os.pipe()
    sock = socket.socket()
    fds += [read_end, write_end, os.dup(sock.fileno()), os.eventfd(0), os.memfd_create(f"sdxfer-{uuid.uuid4().hex[:8]}"),
            os.pidfd_open(os.getpid())]
    sock.close()
    for fd in fds:
        check_same_as_proc(sensor, fd)


def deep_directory(top: str, names: list[str]) -> int:
    """An fd of top/names[0]/names[1]/..., made one level at a time (the
    whole may be longer than a path the kernel takes)."""
    fd = os.open(top, os.O_RDONLY)
    for name in names:
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    return fd


def test_forty_levels_near_the_byte_bound(sensor, fds, workdir):
    levels = 40
    width = (PATH_MAX - 5 - len(workdir)) // levels - 1  # "/" + name per level, a few bytes short of the bound
    fds.append(deep_directory(workdir, [f"{i:03d}".ljust(width, "x") for i in range(levels)]))
    check_same_as_proc(sensor, fds[0])
    assert PATH_MAX - 45 < len(os.readlink(f"/proc/self/fd/{fds[0]}")) < PATH_MAX


def test_depth_bound_exactly_and_one_past_it(sensor, fds, workdir):
    depth = len(Path(workdir).parts) - 1
    fds.append(deep_directory(workdir, ["d"] * (PATH_DEPTH - depth)))
    check_same_as_proc(sensor, fds[0])
    os.mkdir("d", dir_fd=fds[0])
    fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[0]))
    report(fds[1])
    past = reported(sensor, fds[1])
    assert len(Path(os.readlink(f"/proc/self/fd/{fds[1]}")).parts) - 1 == PATH_DEPTH + 1
    assert (past.path, past.truncated) == (None, ("path",))  # flagged, not a shorter path


def test_longer_than_the_byte_bound_is_flagged(sensor, fds, workdir):
    fds.append(deep_directory(workdir, ["y" * 250] * 17))  # over 4,250 bytes in 19 components
    with pytest.raises(OSError):
        os.readlink(f"/proc/self/fd/{fds[0]}")  # too long for the kernel's d_path buffer too
    report(fds[0])
    event = reported(sensor, fds[0])
    assert (event.path, event.truncated) == (None, ("path",))


SYS_FACCESSAT = 269


def joined(sensor, dirfd: int, rel: bytes):
    """Has the probe join rel to dirfd's path (sdxfer_path_append_user); the event."""
    libc.syscall(SYS_FACCESSAT, dirfd, rel, TEST_OP)
    return hids_support.wait_for(sensor, lambda e: e.name == "joined" and e.dirfd == dirfd and e.pid == os.getpid()
                                 if "pid" in e.fields else e.name == "joined" and e.dirfd == dirfd)


def test_a_relative_path_joined_to_a_directory(sensor, fds, workdir):
    """sdxfer_path_append_user: DIR/REL (/REL for the root), . and .. as given,
    DIR itself for an empty REL even at 4095 and 4096 bytes, flagged past them."""
    fds.append(os.open("/", os.O_RDONLY))
    assert (joined(sensor, fds[-1], b"etc/x").path, joined(sensor, fds[-1], b"").path) == ("/etc/x", "/")
    fds.append(os.open(workdir, os.O_RDONLY))
    assert joined(sensor, fds[-1], b"./a/../b").path == workdir + "/./a/../b"
    room = PATH_MAX - 1 - len(workdir)  # the directories' bytes, each with its "/", for a 4095-byte path
    levels = (room - 50) // 201
    names = ["d" * 200] * levels + ["e" * (room - 201 * levels - 1)]
    fds.append(deep_directory(workdir, names))
    os.mkdir("f", dir_fd=fds[-1])
    fds.append(os.open("f", os.O_RDONLY, dir_fd=fds[-1]))  # a 4097-byte path: past the bound
    for fd, length in ((fds[-2], PATH_MAX - 1),):
        whole = os.readlink(f"/proc/self/fd/{fd}")
        assert len(whole) == length
        assert (joined(sensor, fd, b"").path, joined(sensor, fd, b"").truncated) == (whole, ())
        event = joined(sensor, fd, b"x")  # 4097 bytes
        assert (event.path, event.truncated) == (None, ("path",))
    event = joined(sensor, fds[-1], b"")
    assert (event.path, event.truncated) == (None, ("path",))


CHROOTED = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
root, op = sys.argv[1], int(sys.argv[2])
os.chroot(root)
fd = os.open("/inside/file", os.O_RDONLY)
libc.flock(fd, op)
print(json.dumps([fd, os.readlink(f"/proc/self/fd/{fd}"), os.readlink("/proc/self/cwd")]), flush=True)
"""


def test_paths_start_at_the_task_root(sensor, workdir):
    """A chrooted task's files are named from its root; its cwd, left outside, from the namespace's."""
    os.mkdir(os.path.join(workdir, "inside"))
    Path(workdir, "inside", "file").write_text("x")
    os.mkdir(os.path.join(workdir, "proc"))
    subprocess.run(["mount", "--bind", "/proc", os.path.join(workdir, "proc")], check=True)
    try:
        child = subprocess.run([sys.executable, "-B", "-c", CHROOTED, workdir, str(TEST_OP)], capture_output=True,
                               text=True, check=True, cwd="/tmp")
    finally:
        subprocess.run(["umount", os.path.join(workdir, "proc")], check=True)
    fd, path, cwd = json.loads(child.stdout)
    assert (path, cwd) == ("/inside/file", "/tmp")
    event = hids_support.wait_for(sensor, lambda e: e.fd == fd and e.path == path)
    assert (event.cwd, event.truncated) == ("/tmp", ())
