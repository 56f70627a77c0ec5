"""Live tests of the file family (bpf/file.bpf.h): mount, chmod, rename,
unlink and file_create, each done by a child interpreter and checked
exactly, successful and failed, on both transports.

The child waits on stdin until its Identity is taken (so the common fields
can be checked once the schema has them), then acts and prints what it got.
Every name a test touches carries a unique tag, so its events are told from
the host's other file traffic; set-up creates files with mknod and mkdir,
which no file_create program sees.

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import errno
import json
import os
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

import hids_support
from sdxfer import hids

pytestmark = pytest.mark.live

HERE = Path(__file__).resolve().parent
PROGRAM = hids.PROGRAM
SCHEMA = None  # the shipped one
DEFINES = hids.defines_for(["mount", "chmod", "rename", "unlink", "file_create"])

AT_FDCWD = -100
AT_REMOVEDIR = 0x200
RENAME_NOREPLACE = 1
MS_NOSUID, MS_NODEV, MS_RDONLY = 2, 4, 1
MAX_PATH = 4096  # the schema's max for every path
MS_BIND, MS_REMOUNT = 0x1000, 0x20
SYS_OPEN, SYS_RENAMEAT2, SYS_FCHMODAT2 = 2, 316, 452
BAD_FD = 987654  # no such descriptor
ODD_MODE = 0o1604  # a mode no other process is likely to set by fd

# The child: waits for a line, runs its code (which sets `result`), prints it.
CHILD = r"""
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def syscall(nr, *args):
    ret = libc.syscall(ctypes.c_long(nr), *args)
    return -ctypes.get_errno() if ret < 0 else ret

def attempt(call, *args, **kwargs):
    try:
        value = call(*args, **kwargs)
    except OSError as exc:
        return -exc.errno
    return 0 if value is None else value

class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

def openat2(dirfd, path, flags, mode):
    how = OpenHow(flags, mode, 0)
    return syscall(437, ctypes.c_int(dirfd), path.encode(), ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))

result = None
sys.stdin.readline()
exec(sys.argv[1])
print(json.dumps(result), flush=True)
"""


@pytest.fixture
def tag():
    return uuid.uuid4().hex[:12]


@pytest.fixture
def workdir(tag):
    with tempfile.TemporaryDirectory(prefix=f"sdxfer-file-{tag}-") as path:
        yield path


def act(code: str, **substitutions):
    """Runs code in a child once its identity is taken; (identity, result)."""
    code = code.format(**{k: repr(v) for k, v in substitutions.items()})
    child = subprocess.Popen([sys.executable, "-B", "-c", CHILD, code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        identity = hids_support.Identity(child.pid)
        out, err = child.communicate("go\n", timeout=hids_support.WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    return identity, json.loads(out)


FAMILY = ("mount", "chmod", "rename", "unlink", "file_create")


def gather(sensor, identity, tag: str, count: int, also=lambda e: False) -> list:
    """The child's events of this family: those naming the test's tag (and,
    once the schema has pid, every one of the child's; `also` picks those that
    name nothing, like fchmod's), until `count` have
    come, then whatever one more read brings. The child has exited by now, so
    every record it caused is already in the buffers, on whichever CPU."""
    got = []

    def related(e):
        child = "pid" in e.fields and e.pid == identity.pid
        if e.name in FAMILY and (child or also(e) or tag in json.dumps(e.to_dict())):
            got.append(e)
        return len(got) >= count

    hids_support.events_until(sensor, related)
    for e in sensor.decoded(sensor.read(100)):
        related(e)
    for e in got:
        identity.check(e)
    return got


def pick(events, name: str, truncated=(), **fields):
    """The one event named `name` with exactly these values (and truncation)."""
    found = [e for e in events if e.name == name and {k: getattr(e, k) for k in fields} == fields]
    assert len(found) == 1, (name, fields, events)
    assert found[0].truncated == truncated, found[0]
    return found[0]


def mknod(path: str) -> None:
    os.mknod(path, 0o644 | stat.S_IFREG)  # a file made without an open


# ---- mount ---------------------------------------------------------------

def test_mount_of_a_tmpfs_and_a_bad_fstype(sensor, workdir, tag):
    source = f"sdxfer-{tag}"
    try:
        identity, result = act("""
target = {target}.encode()
ok = libc.mount({source}.encode(), target, b"tmpfs", ctypes.c_ulong({flags}), None)
ok = -ctypes.get_errno() if ok else 0
unmounted = libc.umount2(target, 0) if ok == 0 else None
bad = libc.mount(({source} + "-bad").encode(), target, ({source} + "fs").encode(), ctypes.c_ulong({ro}), None)
result = [ok, unmounted, -ctypes.get_errno() if bad else 0]
""", target=workdir, source=source, flags=MS_NOSUID | MS_NODEV, ro=MS_RDONLY)
    finally:
        if os.path.ismount(workdir):  # the child stopped half-way: leave nothing mounted
            subprocess.run(["umount", workdir], check=False)
    assert result == [0, 0, -errno.ENODEV]
    events = gather(sensor, identity, tag, 2)
    pick(events, "mount", source=source, target=workdir, fstype="tmpfs", flags=MS_NOSUID | MS_NODEV, ret=0)
    pick(events, "mount", source=source + "-bad", target=workdir, fstype=source + "fs", flags=MS_RDONLY,
         ret=-errno.ENODEV)
    assert len(events) == 2


def test_mount_with_null_source_and_fstype(sensor, workdir, tag):
    """A bind remount passes NULL for both: absent, not empty."""
    target = os.path.join(workdir, tag)
    os.mkdir(target)
    identity, result = act("""
result = libc.mount(None, {target}.encode(), None, ctypes.c_ulong({flags}), None)
result = -ctypes.get_errno() if result else 0
""", target=target, flags=MS_BIND | MS_REMOUNT)
    assert result == -errno.EINVAL  # not a mount point
    (event,) = gather(sensor, identity, tag, 1)
    pick([event], "mount", source=None, target=target, fstype=None, flags=MS_BIND | MS_REMOUNT, ret=-errno.EINVAL)


# ---- chmod ---------------------------------------------------------------

def test_chmod_fchmod_fchmodat_fchmodat2(sensor, workdir, tag):
    name = f"f-{tag}"
    path = os.path.join(workdir, name)
    mknod(path)
    identity, (fd, dirfd, at2) = act("""
os.chmod({path}, 0o640)
fd = os.open({path}, os.O_RDONLY)
os.fchmod(fd, {odd_mode})
dirfd = os.open({workdir}, os.O_RDONLY)
os.chmod({name}, 0o600, dir_fd=dirfd)
at2 = syscall({nr}, ctypes.c_int(dirfd), {name}.encode(), ctypes.c_uint(0o611), ctypes.c_uint(0))
result = [fd, dirfd, at2]
""", path=path, workdir=workdir, name=name, odd_mode=ODD_MODE, nr=SYS_FCHMODAT2)
    assert at2 == 0 and stat.S_IMODE(os.stat(path).st_mode) == 0o611
    events = gather(sensor, identity, tag, 4, also=lambda e: e.name == "chmod" and e.fd == fd and e.mode == ODD_MODE)
    pick(events, "chmod", syscall="chmod", fd=AT_FDCWD, path=path, mode=0o640, ret=0)
    pick(events, "chmod", syscall="fchmod", fd=fd, path=None, mode=ODD_MODE, ret=0)
    pick(events, "chmod", syscall="fchmodat", fd=dirfd, path=name, mode=0o600, ret=0)
    pick(events, "chmod", syscall="fchmodat2", fd=dirfd, path=name, mode=0o611, ret=0)
    assert len(events) == 4


def test_chmod_failures(sensor, workdir, tag):
    missing = os.path.join(workdir, f"missing-{tag}")
    long = missing + "x" * 5000
    identity, result = act("""
result = [attempt(os.chmod, {missing}, 0o600), attempt(os.fchmod, {bad_fd}, {odd_mode}),
          attempt(os.chmod, {long}, 0o600)]
""", missing=missing, long=long, bad_fd=BAD_FD, odd_mode=ODD_MODE)
    assert result == [-errno.ENOENT, -errno.EBADF, -errno.ENAMETOOLONG]
    events = gather(sensor, identity, tag, 3, also=lambda e: e.name == "chmod" and e.fd == BAD_FD)
    pick(events, "chmod", syscall="chmod", fd=AT_FDCWD, path=missing, mode=0o600, ret=-errno.ENOENT)
    pick(events, "chmod", syscall="fchmod", fd=BAD_FD, path=None, mode=ODD_MODE, ret=-errno.EBADF)
    # Longer than the field's max: the first 4096 bytes, flagged (path_abs: the path as given, so the same).
    cut = pick(events, "chmod", truncated=("path", "path_abs"), syscall="chmod", fd=AT_FDCWD, path=long[:MAX_PATH],
               mode=0o600, ret=-errno.ENAMETOOLONG, path_abs=long[:MAX_PATH])
    assert cut.lost == {"path": None, "path_abs": None}
    assert len(events) == 3


# ---- rename --------------------------------------------------------------

def test_rename_renameat_renameat2(sensor, workdir, tag):
    a, b, c, d = (f"{x}-{tag}" for x in "abcd")
    pa, pc = os.path.join(workdir, a), os.path.join(workdir, c)
    mknod(pa)
    mknod(os.path.join(workdir, d))
    identity, (dirfd, clash, moved) = act("""
os.rename({pa}, {pb})
dirfd = os.open({workdir}, os.O_RDONLY)
os.rename({b}, {c}, src_dir_fd=dirfd, dst_dir_fd=dirfd)
clash = syscall({nr}, ctypes.c_int(dirfd), {c}.encode(), ctypes.c_int(dirfd), {d}.encode(), ctypes.c_uint({flag}))
moved = syscall({nr}, ctypes.c_int(-100), {pc}.encode(), ctypes.c_int(-100), {pa}.encode(), ctypes.c_uint({flag}))
result = [dirfd, clash, moved]
""", workdir=workdir, pa=pa, pb=os.path.join(workdir, b), pc=pc, b=b, c=c, d=d, nr=SYS_RENAMEAT2,
        flag=RENAME_NOREPLACE)
    assert (clash, moved) == (-errno.EEXIST, 0) and os.path.exists(pa)
    events = gather(sensor, identity, tag, 4)
    pick(events, "rename", syscall="rename", old_path=pa, new_path=os.path.join(workdir, b), flags=0, ret=0)
    pick(events, "rename", syscall="renameat", old_path=b, new_path=c, flags=0, ret=0)
    pick(events, "rename", syscall="renameat2", old_path=c, new_path=d, flags=RENAME_NOREPLACE, ret=-errno.EEXIST)
    pick(events, "rename", syscall="renameat2", old_path=pc, new_path=pa, flags=RENAME_NOREPLACE, ret=0)
    assert len(events) == 4


def test_rename_failure(sensor, workdir, tag):
    missing, new = (os.path.join(workdir, f"{x}-{tag}") for x in ("missing", "new"))
    identity, result = act("result = attempt(os.rename, {missing}, {new})", missing=missing, new=new)
    assert result == -errno.ENOENT
    (event,) = gather(sensor, identity, tag, 1)
    pick([event], "rename", syscall="rename", old_path=missing, new_path=new, flags=0, ret=-errno.ENOENT)


# ---- unlink --------------------------------------------------------------

def test_unlink_rmdir_unlinkat(sensor, workdir, tag):
    f, g, sub, sub2 = (f"{x}-{tag}" for x in ("f", "g", "sub", "sub2"))
    mknod(os.path.join(workdir, f))
    mknod(os.path.join(workdir, g))
    os.mkdir(os.path.join(workdir, sub))
    os.mkdir(os.path.join(workdir, sub2))
    identity, _ = act("""
os.unlink({pf})
os.rmdir({psub})
dirfd = os.open({workdir}, os.O_RDONLY)
os.unlink({g}, dir_fd=dirfd)
os.rmdir({sub2}, dir_fd=dirfd)
""", workdir=workdir, pf=os.path.join(workdir, f), psub=os.path.join(workdir, sub), g=g, sub2=sub2)
    assert os.listdir(workdir) == []
    events = gather(sensor, identity, tag, 4)
    pick(events, "unlink", syscall="unlink", path=os.path.join(workdir, f), dir=0, ret=0)
    pick(events, "unlink", syscall="rmdir", path=os.path.join(workdir, sub), dir=1, ret=0)
    pick(events, "unlink", syscall="unlinkat", path=g, dir=0, ret=0)
    pick(events, "unlink", syscall="unlinkat", path=sub2, dir=1, ret=0)
    assert len(events) == 4


def test_unlink_failures(sensor, workdir, tag):
    missing, full = (os.path.join(workdir, f"{x}-{tag}") for x in ("missing", "full"))
    os.mkdir(full)
    mknod(os.path.join(full, "inside"))
    identity, result = act("""
dirfd = os.open({workdir}, os.O_RDONLY)
result = [attempt(os.unlink, {missing}), attempt(os.rmdir, {full}), attempt(os.unlink, {full}),
          attempt(os.rmdir, os.path.basename({missing}), dir_fd=dirfd)]
""", workdir=workdir, missing=missing, full=full)
    assert result == [-errno.ENOENT, -errno.ENOTEMPTY, -errno.EISDIR, -errno.ENOENT]
    events = gather(sensor, identity, tag, 4)
    pick(events, "unlink", syscall="unlink", path=missing, dir=0, ret=-errno.ENOENT)
    pick(events, "unlink", syscall="rmdir", path=full, dir=1, ret=-errno.ENOTEMPTY)
    pick(events, "unlink", syscall="unlink", path=full, dir=0, ret=-errno.EISDIR)
    pick(events, "unlink", syscall="unlinkat", path=os.path.basename(missing), dir=1, ret=-errno.ENOENT)
    assert len(events) == 4


# ---- file_create ---------------------------------------------------------

def test_file_create_through_openat_open_creat_openat2(sensor, workdir, tag):
    new, existing, by_open, by_creat, by_openat2 = (
        os.path.join(workdir, f"{x}-{tag}") for x in ("new", "existing", "open", "creat", "openat2"))
    mknod(existing)
    identity, fds = act("""
result = [os.open({new}, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640),
          os.open({existing}, os.O_RDWR | os.O_CREAT, 0o600),
          syscall({nr_open}, {by_open}.encode(), ctypes.c_int(os.O_WRONLY | os.O_CREAT), ctypes.c_uint(0o604)),
          libc.creat({by_creat}.encode(), ctypes.c_uint(0o620)),
          openat2(-100, {by_openat2}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o606)]
""", new=new, existing=existing, by_open=by_open, by_creat=by_creat, by_openat2=by_openat2, nr_open=SYS_OPEN)
    assert all(fd >= 3 for fd in fds) and len(set(fds)) == 5
    events = gather(sensor, identity, tag, 5)
    cloexec = os.O_CLOEXEC  # os.open makes every descriptor non-inheritable
    pick(events, "file_create", syscall="openat", path=new, flags=os.O_WRONLY | os.O_CREAT | os.O_EXCL | cloexec,
         mode=0o640, ret=fds[0])
    pick(events, "file_create", syscall="openat", path=existing, flags=os.O_RDWR | os.O_CREAT | cloexec, mode=0o600,
         ret=fds[1])
    pick(events, "file_create", syscall="open", path=by_open, flags=os.O_WRONLY | os.O_CREAT, mode=0o604, ret=fds[2])
    pick(events, "file_create", syscall="creat", path=by_creat, flags=os.O_CREAT | os.O_WRONLY | os.O_TRUNC,
         mode=0o620, ret=fds[3])
    pick(events, "file_create", syscall="openat2", path=by_openat2, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
         mode=0o606, ret=fds[4])
    assert len(events) == 5


def test_file_create_o_tmpfile(sensor, workdir, tag):
    directory = os.path.join(workdir, f"tmpdir-{tag}")
    os.mkdir(directory)
    identity, fd = act("result = os.open({directory}, os.O_TMPFILE | os.O_WRONLY, 0o600)", directory=directory)
    assert fd >= 3
    (event,) = gather(sensor, identity, tag, 1)
    pick([event], "file_create", syscall="openat", path=directory, flags=os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC,
         mode=0o600, ret=fd)


def test_file_create_failures(sensor, workdir, tag):
    nowhere = os.path.join(workdir, f"missing-{tag}", "file")
    long = os.path.join(workdir, f"long-{tag}-" + "y" * 5000)
    identity, result = act("""
result = [attempt(os.open, {nowhere}, os.O_WRONLY | os.O_CREAT, 0o644),
          attempt(os.open, {long}, os.O_CREAT, 0o644),
          openat2(-100, {nowhere}, os.O_CREAT | os.O_EXCL, 0o10000)]
""", nowhere=nowhere, long=long)
    assert result == [-errno.ENOENT, -errno.ENAMETOOLONG, -errno.EINVAL]
    events = gather(sensor, identity, tag, 3)
    pick(events, "file_create", syscall="openat", path=nowhere, flags=os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
         mode=0o644, ret=-errno.ENOENT)
    cut = pick(events, "file_create", truncated=("path", "path_abs"), syscall="openat", path=long[:MAX_PATH],
               flags=os.O_CREAT | os.O_CLOEXEC, mode=0o644, ret=-errno.ENAMETOOLONG, path_abs=long[:MAX_PATH])
    assert cut.lost == {"path": None, "path_abs": None}
    # openat2 refuses a mode beyond 07777; the event gives the mode asked for.
    pick(events, "file_create", syscall="openat2", path=nowhere, flags=os.O_CREAT | os.O_EXCL, mode=0o10000,
         ret=-errno.EINVAL)
    assert len(events) == 3


def test_plain_opens_send_nothing(sensor, workdir, tag):
    """Opens of an existing file without O_CREAT (openat, open, openat2, a
    failed one too) send nothing: the child's only event, and the only one
    naming its files, is the marked O_CREAT open that follows them."""
    existing, marked = (os.path.join(workdir, f"{x}-{tag}") for x in ("existing", "marked"))
    mknod(existing)
    identity, result = act("""
result = [os.open({existing}, os.O_RDONLY),
          syscall({nr_open}, {existing}.encode(), ctypes.c_int(os.O_RDWR), ctypes.c_uint(0o777)),
          openat2(-100, {existing}, os.O_WRONLY | os.O_TRUNC, 0),
          attempt(os.open, {existing}, os.O_RDONLY | os.O_DIRECTORY),
          os.open({marked}, os.O_WRONLY | os.O_CREAT, 0o600)]
""", existing=existing, marked=marked, nr_open=SYS_OPEN)
    assert all(fd >= 3 for fd in result[:3]) and result[3] == -errno.ENOTDIR and result[4] >= 3
    events = gather(sensor, identity, tag, 1)
    assert [(e.name, e.path, e.ret) for e in events] == [("file_create", marked, result[4])]
