"""Live tests of the _abs fields of the file family (issue 18): path_abs,
old_path_abs, new_path_abs, source_abs and target_abs, on both backends and
transports. A child interpreter acts (tests/test_hids_file_live.py's act);
every value is checked exactly against what the test set up, with paths
resolved as the kernel names them (os.path.realpath).

- dirfd-relative calls (unlinkat, renameat, fchmodat, openat through the os
  functions' dir_fd=): joined to the dirfd's path, . and .. as given;
- AT_FDCWD-relative calls in a chdir'ed child, mount included;
- absolute paths: as given;
- file_create that succeeded: the opened file's own path (through a symlink,
  of an O_TMPFILE);
- 40 levels near 4096 bytes (exact text), and longer than sdxfer_path.h's
  bounds: flagged, never a shorter path;
- failed calls: joined where there was a path, absent where there was none.

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import errno
import os
import subprocess
import sys
import tempfile
import uuid

import pytest

import hids_support
from sdxfer import hids
from test_hids_file_live import BAD_FD, act, gather, mknod, pick

pytestmark = pytest.mark.live

PROGRAM = hids.PROGRAM
SCHEMA = None  # the shipped one
DEFINES = hids.defines_for(["mount", "chmod", "rename", "unlink", "file_create"])

AT_FDCWD = -100
PATH_MAX = 4096  # SDXFER_PATH_MAX, and the fields' max
SYS_CHMOD = 90
SYS_FCHMODAT2 = 452
AT_EMPTY_PATH = 0x1000


@pytest.fixture
def tag():
    return uuid.uuid4().hex[:12]


@pytest.fixture
def workdir(tag):
    with tempfile.TemporaryDirectory(prefix=f"sdxfer-abs-{tag}-") as path:
        yield os.path.realpath(path)  # as the kernel names it


def deep_directory(top: str, names: list[str]) -> str:
    """Makes top/names[0]/names[1]/... one level at a time (the whole may be
    longer than a path the kernel takes); its path."""
    fd = os.open(top, os.O_RDONLY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    return os.path.join(top, *names)


def test_dirfd_relative_calls_join_the_dirfd_path(sensor, workdir, tag):
    other = os.path.join(workdir, "other")
    os.mkdir(other)
    os.mkdir(os.path.join(workdir, "sub"))
    name = f"f-{tag}"
    identity, (fd, dirfd, otherfd) = act("""
dirfd, otherfd = os.open({workdir}, os.O_RDONLY), os.open({other}, os.O_RDONLY)
fd = os.open({name}, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dirfd)
os.chmod({name}, 0o600, dir_fd=dirfd)
os.chmod("./sub/../" + {name}, 0o640, dir_fd=dirfd)
os.rename({name}, {name} + "-moved", src_dir_fd=dirfd, dst_dir_fd=otherfd)
os.unlink({name} + "-moved", dir_fd=otherfd)
result = [fd, dirfd, otherfd]
""", workdir=workdir, other=other, name=name)
    path = os.path.join(workdir, name)
    events = gather(sensor, identity, tag, 5)
    pick(events, "file_create", syscall="openat", path=name, ret=fd, path_abs=path)
    pick(events, "chmod", syscall="fchmodat", fd=dirfd, path=name, mode=0o600, ret=0, path_abs=path)
    pick(events, "chmod", syscall="fchmodat", fd=dirfd, mode=0o640, ret=0, path_abs=f"{workdir}/./sub/../{name}")
    pick(events, "rename", syscall="renameat", old_path=name, ret=0, old_path_abs=path,
         new_path_abs=os.path.join(other, name + "-moved"))
    pick(events, "unlink", syscall="unlinkat", path=name + "-moved", ret=0, path_abs=os.path.join(other, name + "-moved"))
    assert len(events) == 5


def test_cwd_relative_calls_in_a_chdired_child(sensor, workdir, tag):
    name = f"c-{tag}"
    target = f"mnt-{tag}"
    os.mkdir(os.path.join(workdir, target))
    try:
        identity, (fd, mounted) = act("""
os.chdir({workdir})
fd = os.open({name}, os.O_WRONLY | os.O_CREAT, 0o644)
os.chmod({name}, 0o600)
os.rename({name}, {name} + "-b")
os.unlink({name} + "-b")
os.mkdir({name} + "-d")
os.rmdir({name} + "-d")
mounted = libc.mount(b"sdxfer-" + {tag}.encode(), {target}.encode(), b"tmpfs", ctypes.c_ulong(0), None)
mounted = -ctypes.get_errno() if mounted else libc.umount2({target}.encode(), 0)
result = [fd, mounted]
""", workdir=workdir, name=name, target=target, tag=tag)
    finally:
        if os.path.ismount(os.path.join(workdir, target)):
            subprocess.run(["umount", os.path.join(workdir, target)], check=False)
    assert mounted == 0
    here = lambda path: os.path.join(workdir, path)  # noqa: E731
    events = gather(sensor, identity, tag, 6)
    pick(events, "file_create", syscall="openat", path=name, ret=fd, path_abs=here(name))
    pick(events, "chmod", syscall="chmod", fd=AT_FDCWD, path=name, ret=0, path_abs=here(name))
    pick(events, "rename", syscall="rename", old_path=name, ret=0, old_path_abs=here(name), new_path_abs=here(name + "-b"))
    pick(events, "unlink", syscall="unlink", path=name + "-b", ret=0, path_abs=here(name + "-b"))
    pick(events, "unlink", syscall="rmdir", path=name + "-d", ret=0, path_abs=here(name + "-d"))
    # a source no filesystem looks up is joined all the same (the schema says so)
    pick(events, "mount", source=f"sdxfer-{tag}", target=target, ret=0, source_abs=here(f"sdxfer-{tag}"),
         target_abs=here(target))
    assert len(events) == 6


def test_absolute_paths_as_given(sensor, workdir, tag):
    path = os.path.join(workdir, f"a-{tag}")
    mknod(path)
    unusual = f"{workdir}/./x/../a-{tag}"  # not resolved: as given
    identity, _ = act("""
os.chdir("/")
os.chmod({path}, 0o600)
os.rename({path}, {path} + "-b")
result = [attempt(os.chmod, {unusual}, 0o600), attempt(os.unlink, {path} + "-b")]
""", path=path, unusual=unusual)
    events = gather(sensor, identity, tag, 4)
    pick(events, "chmod", syscall="chmod", path=path, ret=0, path_abs=path)
    pick(events, "rename", syscall="rename", old_path=path, ret=0, old_path_abs=path, new_path_abs=path + "-b")
    pick(events, "chmod", syscall="chmod", path=unusual, ret=-errno.ENOENT, path_abs=unusual)
    pick(events, "unlink", syscall="unlink", path=path + "-b", ret=0, path_abs=path + "-b")


def test_file_create_gives_the_opened_file(sensor, workdir, tag):
    """Through a symlink: the file opened; O_TMPFILE: as /proc/PID/fd/N shows it."""
    real = os.path.join(workdir, f"real-{tag}")
    os.symlink(real, os.path.join(workdir, f"link-{tag}"))
    identity, (fd, tmpfd, shown) = act("""
os.chdir({workdir})
fd = os.open("link-" + {tag}, os.O_WRONLY | os.O_CREAT, 0o644)
tmpfd = os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o600)
result = [fd, tmpfd, os.readlink(f"/proc/self/fd/{{tmpfd}}")]
""", workdir=workdir, tag=tag)
    assert shown.startswith(workdir + "/#") and shown.endswith(" (deleted)")
    events = gather(sensor, identity, tag, 2, also=lambda e: e.name == "file_create" and e.path == ".")
    pick(events, "file_create", path=f"link-{tag}", ret=fd, path_abs=real)
    pick(events, "file_create", path=".", ret=tmpfd, path_abs=shown)


def test_forty_levels_near_4096_bytes_exactly(sensor, workdir, tag):
    levels = 40
    name = f"n-{tag}"
    width = (PATH_MAX - 8 - len(workdir) - len(name)) // levels - 1  # "/" + a name per level, a few bytes short
    deep = deep_directory(workdir, [f"{i:02d}".ljust(width, "z") for i in range(levels)])
    path = os.path.join(deep, name)
    assert PATH_MAX - 50 < len(path) <= PATH_MAX - 8
    identity, _ = act("""
dirfd = os.open({deep}, os.O_RDONLY)
os.mknod({name}, 0o644, dir_fd=dirfd)
os.chmod({name}, 0o600, dir_fd=dirfd)
os.chdir(dirfd)
os.unlink({name})
result = None
""", deep=deep, name=name)
    events = gather(sensor, identity, tag, 2)
    pick(events, "chmod", path=name, ret=0, path_abs=path)
    pick(events, "unlink", path=name, ret=0, path_abs=path)


def test_longer_than_the_bounds_is_flagged_not_cut(sensor, workdir, tag):
    """A join past 4096 bytes, and a directory whose own path is past them:
    path_abs flagged and empty, never a shorter path."""
    near = deep_directory(workdir, ["w" * 200] * 19)  # about 3,850 bytes
    far = "v" * 250                                   # near/far: past 4,096
    deep_directory(near, [far])
    long_name = f"l-{tag}-" + "u" * 240
    identity, result = act("""
near = os.open({near}, os.O_RDONLY)
far = os.open({far}, os.O_RDONLY, dir_fd=near)
result = [attempt(os.unlink, {long_name}, dir_fd=near), attempt(os.unlink, "x-" + {tag}, dir_fd=far)]
""", near=near, far=far, long_name=long_name, tag=tag)
    assert result == [-errno.ENOENT, -errno.ENOENT]
    events = gather(sensor, identity, tag, 2)
    pick(events, "unlink", truncated=("path_abs",), path=long_name, ret=-errno.ENOENT, path_abs=None)
    flagged = pick(events, "unlink", truncated=("path_abs",), path=f"x-{tag}", ret=-errno.ENOENT, path_abs=None)
    assert flagged.lost == {"path_abs": None}


def test_failed_calls(sensor, workdir, tag):
    """A failed call with a path: joined all the same; with a bad dirfd or no
    readable path: absent, and not flagged."""
    missing = f"missing-{tag}"
    identity, result = act("""
os.chdir({workdir})
result = [attempt(os.unlink, {missing}), attempt(os.unlink, {missing}, dir_fd={bad_fd}),
          attempt(os.open, {missing} + "/f", os.O_CREAT | os.O_WRONLY, 0o644),
          syscall({sys_chmod}, ctypes.c_void_p(1), ctypes.c_uint(0o600))]
""", workdir=workdir, missing=missing, bad_fd=BAD_FD, sys_chmod=SYS_CHMOD)
    assert result == [-errno.ENOENT, -errno.EBADF, -errno.ENOENT, -errno.EFAULT]
    events = gather(sensor, identity, tag, 4, also=lambda e: e.name == "chmod" and e.path is None)
    pick(events, "unlink", syscall="unlink", path=missing, ret=-errno.ENOENT, path_abs=os.path.join(workdir, missing))
    pick(events, "unlink", syscall="unlinkat", path=missing, ret=-errno.EBADF, path_abs=None)
    pick(events, "file_create", path=missing + "/f", ret=-errno.ENOENT, path_abs=os.path.join(workdir, missing, "f"))
    # path is flagged (unreadable); path_abs absent: there never was a path
    pick(events, "chmod", truncated=("path",), syscall="chmod", path=None, ret=-errno.EFAULT, path_abs=None)


def test_an_empty_path_names_no_file_unless_the_call_takes_it_for_its_fd(sensor, workdir, tag):
    """chmod("") and fchmodat2(fd, "", mode, 0) fail with ENOENT: there was
    no path, so no path_abs (not the cwd's, nor the fd's). fchmodat2 with
    AT_EMPTY_PATH acts on the fd's own file: its path, whether it succeeds
    or is refused (an immutable file: EPERM, even to root)."""
    path, frozen = os.path.join(workdir, f"e-{tag}"), os.path.join(workdir, f"i-{tag}")
    mknod(path)
    mknod(frozen)
    subprocess.run(["chattr", "+i", frozen], check=True)
    try:
        identity, (fd, frozen_fd, failed, taken, refused) = act("""
fd, frozen_fd = os.open({path}, os.O_RDONLY), os.open({frozen}, os.O_RDONLY)
os.chdir({workdir})
failed = [attempt(os.chmod, "", 0o610), syscall({nr}, ctypes.c_int(fd), b"", ctypes.c_uint(0o620), ctypes.c_uint(0))]
taken = syscall({nr}, ctypes.c_int(fd), b"", ctypes.c_uint(0o630), ctypes.c_uint({at_empty_path}))
refused = syscall({nr}, ctypes.c_int(frozen_fd), b"", ctypes.c_uint(0o640), ctypes.c_uint({at_empty_path}))
result = [fd, frozen_fd, failed, taken, refused]
""", path=path, frozen=frozen, workdir=workdir, nr=SYS_FCHMODAT2, at_empty_path=AT_EMPTY_PATH)
    finally:
        subprocess.run(["chattr", "-i", frozen], check=True)
    assert failed == [-errno.ENOENT, -errno.ENOENT] and (taken, refused) == (0, -errno.EPERM)
    events = gather(sensor, identity, tag, 4)
    pick(events, "chmod", syscall="chmod", fd=AT_FDCWD, path="", mode=0o610, ret=-errno.ENOENT, path_abs=None)
    pick(events, "chmod", syscall="fchmodat2", fd=fd, path="", mode=0o620, ret=-errno.ENOENT, path_abs=None)
    pick(events, "chmod", syscall="fchmodat2", fd=fd, path="", mode=0o630, ret=0, path_abs=path)
    pick(events, "chmod", syscall="fchmodat2", fd=frozen_fd, path="", mode=0o640, ret=-errno.EPERM, path_abs=frozen)
    assert len(events) == 4


def test_an_empty_path_taken_for_its_fd_names_a_file_of_4095_and_4096_bytes(sensor, workdir, tag):
    """fchmodat2(fd, "", mode, AT_EMPTY_PATH) on files whose paths are 4095
    and 4096 bytes long (opened relative to their directory): path_abs is
    each whole path, neither emptied nor flagged."""
    name = f"f-{tag}"
    room = PATH_MAX - 2 - len(workdir) - len(name)  # the directories' bytes, each with its "/"
    levels = (room - 50) // 201
    inner = deep_directory(workdir, ["d" * 200] * levels + ["e" * (room - 201 * levels - 1)])  # the last 50 to 250
    paths = [os.path.join(inner, name), os.path.join(inner, name + "x")]
    assert [len(p) for p in paths] == [PATH_MAX - 1, PATH_MAX]
    identity, (fd, fd_x, taken, taken_x) = act("""
dirfd = os.open({inner}, os.O_RDONLY)
fds = [os.open(name, os.O_RDONLY | os.O_CREAT, 0o644, dir_fd=dirfd) for name in ({name}, {name} + "x")]
result = fds + [syscall({nr}, ctypes.c_int(fd), b"", ctypes.c_uint(0o600), ctypes.c_uint({at_empty_path}))
                for fd in fds]
""", inner=inner, name=name, nr=SYS_FCHMODAT2, at_empty_path=AT_EMPTY_PATH)
    assert (taken, taken_x) == (0, 0)
    events = gather(sensor, identity, tag, 4)  # the two opens, the two chmods
    pick(events, "chmod", syscall="fchmodat2", fd=fd, path="", mode=0o600, ret=0, path_abs=paths[0])
    pick(events, "chmod", syscall="fchmodat2", fd=fd_x, path="", mode=0o600, ret=0, path_abs=paths[1])


def test_a_dirfd_that_is_not_a_directory_joins_nothing(sensor, workdir, tag):
    """Calls relative to a pipe, a socket or a plain file fail with ENOTDIR
    before a path exists: path_abs is absent, neither pipe:[INO]/NAME nor
    the file's path with the name after it."""
    plain = os.path.join(workdir, f"plain-{tag}")
    mknod(plain)
    identity, result = act("""
import socket
pipe_fd, _ = os.pipe()
unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
plain_fd = os.open({plain}, os.O_RDONLY)
result = [attempt(os.open, "c-" + {tag}, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=pipe_fd),
          attempt(os.unlink, "u-" + {tag}, dir_fd=unix.fileno()),
          attempt(os.chmod, "m-" + {tag}, 0o600, dir_fd=plain_fd)]
""", plain=plain, tag=tag)
    assert result == [-errno.ENOTDIR] * 3
    events = gather(sensor, identity, tag, 3)
    pick(events, "file_create", path=f"c-{tag}", ret=-errno.ENOTDIR, path_abs=None)
    pick(events, "unlink", path=f"u-{tag}", ret=-errno.ENOTDIR, path_abs=None)
    pick(events, "chmod", path=f"m-{tag}", ret=-errno.ENOTDIR, path_abs=None)


FORK_AND_CHROOT = r"""
import os, sys
tag = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.chroot("/usr")
    try:
        os.chmod("/nonexistent-child-" + tag, 0o600)
    except OSError:
        pass
    os._exit(0)
os.waitpid(pid, 0)
try:
    os.chmod("/nonexistent-parent-" + tag, 0o600)
except OSError:
    pass
"""


def test_a_child_that_chroots_first_leaves_its_parents_path_alone(sensor, tag):
    """A forked child chroots to /usr and acts before its parent has any
    event: it sees its program from its new root (/bin/...), and the path
    it walked is not kept as the parent's, whose event comes after."""
    exe = os.path.realpath(sys.executable)
    if not exe.startswith("/usr/"):
        pytest.skip(f"the interpreter is not under /usr: {exe}")
    subprocess.run([sys.executable, "-B", "-c", FORK_AND_CHROOT, tag], check=True, timeout=hids_support.WAIT_S)
    seen = {}

    def both(event):
        if event.name == "chmod" and event.path and tag in event.path:
            seen[event.path] = event
        return len(seen) == 2

    hids_support.events_until(sensor, both)
    assert seen[f"/nonexistent-child-{tag}"].exe_path == exe[len("/usr"):]
    assert seen[f"/nonexistent-parent-{tag}"].exe_path == exe
