"""Both builds of the shipped probe send the same bytes (issue 17).

bpf/hids.bpf.c is built once by `sdxfer build` (CO-RE, loaded through
libbpf) and compiled once by BCC, both with every event of the shipped
schema, on the same transport, and both are attached at once. A child
process then does one action at a time; for each, the records the two
probes send about it are found by content (the event, the child's pid and a
value only this action has, such as a unique marker in a path, a name or an
argv) and compared byte for byte, continuation records included. Only what
two probes loaded side by side must tell apart is masked (see MASKED).

Needs root and bcc (skipped otherwise), and clang (scripts/setup.sh installs it).
"""
from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from conftest import LIVE_WAIT_S, wait_until
from hids_support import MMSG_STRUCTS
from sdxfer import default_decoder, hids
from sdxfer.kernel import build
from sdxfer.kernel.filters import EventFilter
from sdxfer.kernel.sensor import Sensor
from sdxfer.runtime import record

pytestmark = pytest.mark.live

EVENTS = tuple(default_decoder().events)
DEFINES = hids.defines_for(EVENTS)  # every event, kmod_load as this kernel allows (what hidsmon runs)


def span(fields, name: str, start: int = 0) -> tuple[int, int]:
    """(offset, size) of `name` among record.py's (name, C type, struct format)
    fields, laid out packed from `start` as the generated structs are."""
    names = [field[0] for field in fields]
    before = "".join(fmt for _, _, fmt in fields[:names.index(name)])
    return start + struct.calcsize("<" + before), struct.calcsize("<" + fields[names.index(name)][2])


# What two probes loaded at once must send differently for the same action,
# (offset, size) in a record; everything else, the header's cpu included
# (both programs run in the same tracepoint hit, on the same CPU), is compared.
MASKED = {
    "any": [
        # bpf_ktime_get_ns() when each probe packs: the two run one after the other
        span(record.HEADER, "timestamp_ns"),
        # each probe numbers the records of a CPU in its own sdxfer_cpu map, from its load on
        span(record.HEADER, "seq"),
    ],
    # a continuation names the record it continues by that probe's own seq
    "continuation": [span(record.CONTINUATION, "parent_seq", record.HEADER_SIZE)],
}


def masked_records(raw: bytes) -> list[bytes]:
    """The records of one event (its record, then its continuations, back to
    back as the reassembler keeps them), each as long as its header says
    (perf's padding after a record is the kernel's, not the probe's), with
    MASKED zeroed."""
    records, at = [], 0
    while len(raw) - at >= record.HEADER_SIZE:
        header = record.parse_header(raw[at:])
        assert header["size"] >= record.HEADER_SIZE, f"a record of {header['size']} bytes at {at}"
        one = bytearray(raw[at:at + header["size"]])
        for offset, size in MASKED["any"] + (MASKED["continuation"] if header["id"] == record.CONTINUATION_ID else []):
            one[offset:offset + size] = bytes(size)
        records.append(bytes(one))
        at += header["size"]
    return records


def differences(core: list[bytes], bcc: list[bytes]) -> list[tuple]:
    """Where two builds' masked records differ, the first 20: (record index,
    offset in it, libbpf's byte, bcc's byte), None past a record's end."""
    found = []
    for index in range(max(len(core), len(bcc))):
        mine, theirs = (records[index] if index < len(records) else b"" for records in (core, bcc))
        byte = lambda data, at: data[at] if at < len(data) else None  # noqa: E731
        found += [(index, at, byte(mine, at), byte(theirs, at)) for at in range(max(len(mine), len(theirs)))
                  if byte(mine, at) != byte(theirs, at)]
    return found[:20]


# ---- both builds, loaded at once -----------------------------------------------


# This test process and its descendants (the children that act) only: the
# host's other traffic, which may be heavy, is not sent at all. The filter is
# the same C in both builds; what it lets through is what is compared.
FOLLOWED = {"SDXFER_FILTER_CHILDREN": None}  # built in; the pid followed is set at load


@pytest.fixture(scope="module", params=["perf", "ringbuf"])
def builds(request, tmp_path_factory) -> dict[str, Sensor]:
    """{backend: Sensor} of the shipped probe's two builds, attached at once."""
    transport = request.param
    obj = tmp_path_factory.mktemp("core") / "hids.bpf.o"
    transport_define = {"SDXFER_RINGBUF": None} if transport == "ringbuf" else {}
    build.build(hids.PROGRAM, obj, defines={**DEFINES, **FOLLOWED, **transport_define})
    mine = EventFilter(pid=os.getpid(), children=True)
    with Sensor(obj, backend="libbpf", transport=transport, event_filter=mine) as core, \
            Sensor(hids.PROGRAM, backend="bcc", transport=transport, defines=DEFINES, event_filter=mine) as bcc:
        yield {"libbpf": core, "bcc": bcc}


def records_of(builds: dict[str, Sensor], wanted: dict[str, Callable]) -> dict[str, dict[str, tuple]]:
    """{label: {backend: (raw records, event)}}: for each label, the first
    event of each build that satisfies its predicate (continuations joined)."""
    found: dict[str, dict] = {label: {} for label in wanted}

    def read_both():
        for backend, sensor in builds.items():
            for raw, event in sensor.decoded_records(sensor.read(50)):
                for label, predicate in wanted.items():
                    if backend not in found[label] and predicate(event):
                        found[label][backend] = (raw, event)
                        break

    def missing():
        return [f"{label} ({backend})" for label, got in found.items() for backend in builds if backend not in got]

    try:
        wait_until(lambda: not missing(), LIVE_WAIT_S, act=read_both, every=0)
    except AssertionError:
        stats = "; ".join(f"{backend}: {sensor.stats}" for backend, sensor in builds.items())
        raise AssertionError(f"no record came in {LIVE_WAIT_S} s of: {', '.join(missing())} ({stats})") from None
    return found


# ---- the actions ---------------------------------------------------------------

# The child: MARKER and WORKDIR from argv; each action's code fills `out`,
# printed as one JSON line at the end.
PRELUDE = r"""
import ctypes, errno, json, os, socket, struct, sys
MARKER, WORKDIR = sys.argv[1:3]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long

def call(ret):
    # a libc call's result, or -errno
    return -ctypes.get_errno() if ret < 0 else ret

def syscall(nr, *args):
    return call(libc.syscall(nr, *args))

def attempt(action):
    # an os call's result, or -errno
    try:
        value = action()
    except OSError as exc:
        return -exc.errno
    return 0 if value is None else value

def report():
    print(json.dumps(out), flush=True)

def argv_of(name, total):
    # argv[0] = name, then arguments of up to 1000 bytes: `total` bytes, NULs included
    args, left = [name], total - len(name) - 1
    while left > 0:
        args.append("c" * (min(left, 1000) - 1))
        left -= min(left, 1000)
    return args

out = {}
"""


class Action(NamedTuple):
    events: tuple[str, ...]  # the shipped events it causes
    code: str  # the child's, after PRELUDE: does the action, notes in `out` what it got, report()s it
    # (pid, out, marker) -> {label: predicate}: one record of each label's
    # event (its first word), from pid, whose values satisfy the predicate;
    # pid is the child's, or out["actor"] where a descendant of it acts
    wanted: Callable[[int, dict, str], dict[str, Callable]]
    exit_status: int = 0


LONG_ARGV = 300  # arguments of 1000 bytes: 300 KB, far beyond the record's 16 KiB of argv
ARGV_MAX = default_decoder().events["exec"].versions[-1].spans[0].max  # argv bytes the exec record keeps
NO_SUCH_PID = 0x3FFFFFF0  # above any pid_max
NOT_A_MODULE = b"\x7fELF but not a module" + bytes(200)
NR = {"open": 2, "creat": 85, "init_module": 175, "renameat": 264, "unlinkat": 263, "fchmodat": 268,
      "finit_module": 313, "renameat2": 316, "execveat": 322, "openat2": 437, "fchmodat2": 452}  # x86-64
PR_SET_NAME = 15
MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 2, 4, 0x20, 0x1000
PATH_MAX = 4096  # the schema's max for every path, as the kernel's


def ends(text: str | None, suffix: str) -> bool:
    """A string field (None: absent) ends with suffix."""
    return text is not None and text.endswith(suffix)


ACTIONS = {
    # a successful exec whose argv goes on in continuation records, with both
    # environment values set; the child execs itself, so the exec is its pid's
    "exec": Action(("exec",), f"""
argv = ["/bin/true", MARKER] + [MARKER[:8] * 125] * {LONG_ARGV}
env = {{"SSH_CONNECTION": MARKER + " 22 10.0.0.1 22", "LD_PRELOAD": WORKDIR + "/none.so", "PATH": "/bin"}}
report()
os.execve("/bin/true", argv, env)
""", lambda pid, out, marker: {
        "exec with continuations": lambda e: e.ret == 0 and (e.argv or [])[1:2] == [marker]}),
    # failed execs are read at sys_exit_execve(at): argv from the caller's memory
    "failed exec": Action(("exec",), f"""
path = os.path.join(WORKDIR, MARKER)
out["execve"] = attempt(lambda: os.execve(path, [MARKER] + ["b" * 1000] * 40, {{"SSH_CONNECTION": MARKER}}))
args = (ctypes.c_char_p * 3)(MARKER.encode(), b"at", None)
env = (ctypes.c_char_p * 2)(b"LD_PRELOAD=" + MARKER.encode(), None)
out["execveat"] = call(libc.syscall({NR["execveat"]}, -100, (path + "-at").encode(), args, env, 0))
report()
""", lambda pid, out, marker: {
        "exec by execve, failed": lambda e: e.ret == out["execve"] and ends(e.exe, marker),
        "exec by execveat, failed": lambda e: e.ret == out["execveat"] and ends(e.exe, f"{marker}-at")}),
    # argv of the record's size exactly, and one byte more (a continuation of one byte)
    **{f"exec of argv {total}": Action(("exec",), f"""
report()
os.execve("/bin/true", argv_of(MARKER, {total}), {{}})
""", lambda pid, out, marker, total=total: {
        f"exec of argv {total}": lambda e: (e.argv or [""])[0] == marker and e.ret == 0})
       for total in (ARGV_MAX, ARGV_MAX + 1)},
    # the failed exec's own gathering of argv, around its limit
    "failed exec at the argv limit": Action(("exec",), "\n".join(f"""
path = os.path.join(WORKDIR, MARKER + "-limit-{total}")
out["{total}"] = attempt(lambda: os.execve(path, argv_of(MARKER, {total}), {{}}))""" for total in (
        ARGV_MAX - 1, ARGV_MAX, ARGV_MAX + 1)) + "\nreport()\n", lambda pid, out, marker: {
        f"exec failed, argv {total}": lambda e, total=total: ends(e.exe, f"{marker}-limit-{total}")
        for total in (ARGV_MAX - 1, ARGV_MAX, ARGV_MAX + 1)}),
    # more ancestors than the record keeps, and SSH_CONNECTION after 300
    # other variables in the environment
    "exec deep in a process tree": Action(("exec",), """
r, w = os.pipe()
for depth in range(18):
    below = os.fork()
    if below:
        os.waitpid(below, 0)
        if depth == 0:
            out["actor"] = int(os.read(r, 16))
            report()
        os._exit(0)
os.write(w, str(os.getpid()).encode())
env = {f"V{i}": "x" * 50 for i in range(300)}
env["SSH_CONNECTION"] = MARKER
os.execve("/bin/true", ["/bin/true", MARKER, "deep"], env)
""", lambda pid, out, marker: {
        "exec deep in a process tree": lambda e: e.argv == ["/bin/true", marker, "deep"]}),
    # exec from a thread other than the leader: the exec's tid is that thread's
    "exec from a thread": Action(("exec",), """
import threading

def run():
    report()
    os.execve("/bin/true", ["/bin/true", MARKER, "thread"], {})

threading.Thread(target=run).start()
""", lambda pid, out, marker: {
        "exec from a thread": lambda e: e.argv == ["/bin/true", marker, "thread"] and e.tid != pid}),
    "exit": Action(("exit",), "report()\nos._exit(7)", lambda pid, out, marker: {"exit": lambda e: e.code == 7 << 8},
                   exit_status=7),
    "exit by a signal": Action(("exit",), "report()\nos.kill(os.getpid(), 15)",
                               lambda pid, out, marker: {"exit by SIGTERM": lambda e: e.code == 15}, exit_status=-15),
    "network": Action(("bind", "listen", "connect", "accept"), """
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(7)
client = socket.create_connection(listener.getsockname())
peer, _ = listener.accept()
unused = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
unused.bind(("::1", 0))
port = unused.getsockname()[1]
unused.close()
refused = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
out.update(listener=listener.fileno(), port=listener.getsockname()[1], client=client.fileno(), peer=peer.fileno(),
           closed=port, refused=attempt(lambda: refused.connect(("::1", port))))
taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
out["in_use"] = attempt(lambda: taken.bind(("127.0.0.1", out["port"])))
second = socket.create_connection(listener.getsockname())
out["plain"] = call(libc.accept(listener.fileno(), None, None))  # accept, not accept4 as Python's
null = os.open("/dev/null", os.O_RDONLY)
address = struct.pack("<H", socket.AF_INET) + struct.pack("!H", out["port"]) + socket.inet_aton("127.0.0.1") + bytes(8)
out["not_a_socket"] = call(libc.connect(null, address, len(address)))
report()
""", lambda pid, out, marker: {
        "bind": lambda e: e.fd == out["listener"] and e.local.port == out["port"],
        "bind in use": lambda e: e.ret == out["in_use"] and e.local.port == out["port"],
        "listen": lambda e: e.fd == out["listener"] and e.backlog == 7,
        "connect": lambda e: e.fd == out["client"] and e.remote.port == out["port"],
        "connect refused (IPv6)": lambda e: e.ret == out["refused"] and e.remote.port == out["closed"],
        "accept": lambda e: e.fd == out["listener"] and e.ret == out["peer"],
        "accept (plain)": lambda e: e.fd == out["listener"] and e.ret == out["plain"],
        "connect on a non-socket": lambda e: e.ret == out["not_a_socket"] == -errno.ENOTSOCK}),
    # in a network namespace of the child's own, a server socket on port 53
    "dns": Action(("dns",), """
if libc.unshare(0x40000000) != 0:
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    import fcntl
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", 0x1 | 0x8 | 0x40))  # lo up
servers = [socket.socket(family, socket.SOCK_DGRAM) for family in (socket.AF_INET, socket.AF_INET6)]
servers[0].bind(("127.0.0.1", 53))
servers[1].bind(("::1", 53))

def question(qtype, name=MARKER + ".example.com"):
    # a DNS query message: header (id, RD, one question), the name, qtype, class IN
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + qname + b"\\0" + struct.pack("!HH", qtype, 1)

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out["sendto"] = s.sendto(question(28), ("127.0.0.1", 53))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
out["sendmsg"] = s6.sendmsg([question(28)], [], 0, ("::1", 53))

""" + MMSG_STRUCTS + """s.connect(("127.0.0.1", 53))  # as glibc's resolver does: connect, then sendmmsg with no addresses
iovs = [iovec(question(qtype), len(question(qtype))) for qtype in (1, 16)]  # A, TXT
messages = (mmsghdr * 2)()
for message, iov in zip(messages, iovs):
    message.hdr.iov, message.hdr.iovlen = ctypes.pointer(iov), 1
out["sendmmsg"] = call(libc.sendmmsg(s.fileno(), messages, 2, 0))
longest = ".".join([(MARKER + "a" * 63)[:63], "b" * 63, "c" * 63, "d" * 61])  # 253 bytes: the most DNS allows
s.send(question(1, longest))
out["longest"] = longest
out["junk"] = s.send(b"\\0\\1not a dns message, no root label" + MARKER.encode())
report()
""", lambda pid, out, marker: {
        "dns by sendto": lambda e: e.query == f"{marker}.example.com" and e.syscall == "sendto",
        "dns by sendmsg (IPv6)": lambda e: e.query == f"{marker}.example.com" and e.syscall == "sendmsg",
        "dns by sendmmsg, first": lambda e: e.query == f"{marker}.example.com" and e.qtype == 1,
        "dns by sendmmsg, second": lambda e: e.query == f"{marker}.example.com" and e.qtype == 16,
        "dns of the longest name": lambda e: e.query == out["longest"],
        "dns that is not a query": lambda e: e.query is None and e.ret == out["junk"]}),
    "ptrace": Action(("ptrace",), f"""
import signal, time
tracee = os.fork()
if tracee == 0:
    time.sleep(60)
    os._exit(0)
out["tracee"] = tracee
out["attach"] = call(libc.ptrace(16, tracee, None, None))
os.waitpid(tracee, 0)
out["detach"] = call(libc.ptrace(17, tracee, None, None))
os.kill(tracee, signal.SIGKILL)
os.waitpid(tracee, 0)
out["nobody"] = call(libc.ptrace(16, {NO_SUCH_PID}, None, None))
report()
""", lambda pid, out, marker: {
        "ptrace attach": lambda e: e.target == out["tracee"] and e.ret == out["attach"] == 0,
        "ptrace of no such pid": lambda e: e.target == NO_SUCH_PID and e.ret == out["nobody"]}),
    "memfd_create": Action(("memfd_create",), """
out["ok"] = attempt(lambda: os.memfd_create(MARKER, os.MFD_CLOEXEC))
out["bad"] = attempt(lambda: os.memfd_create(MARKER + "-bad", 0x7ffffff0))
out["long"] = attempt(lambda: os.memfd_create(MARKER + "m" * 300, 0))
report()
""", lambda pid, out, marker: {
        "memfd_create": lambda e: e.value("name") == marker and e.ret == out["ok"],
        "memfd_create refused": lambda e: e.value("name") == f"{marker}-bad" and e.ret == out["bad"],
        "memfd_create of a long name": lambda e: ends(e.value("name"), "mmm") and "name" in e.truncated}),
    "prctl": Action(("prctl",), f"""
out["set"] = call(libc.prctl({PR_SET_NAME}, MARKER[:15].encode(), 0, 0, 0))
out["bad"] = call(libc.prctl(0x7fff1234, 0, 0, 0, 0))
report()
""", lambda pid, out, marker: {
        "prctl PR_SET_NAME": lambda e: e.option == PR_SET_NAME and e.value("name") == marker[:15],
        "prctl refused": lambda e: e.option == 0x7fff1234 and e.ret == out["bad"]}),
    "setsid": Action(("setsid",), """
out["first"] = attempt(os.setsid)
out["again"] = attempt(os.setsid)
report()
""", lambda pid, out, marker: {
        "setsid": lambda e: e.ret == pid,
        "setsid refused": lambda e: e.ret == out["again"] == -errno.EPERM}),
    # each call once: those that change something as root, then, as user
    # 1000, those that fail
    "creds_change": Action(("creds_change",), """
class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
header, caps = CapHeader(0x20080522, 0), (CapData * 2)()
assert libc.capget(ctypes.byref(header), caps) == 0
caps[0].effective &= ~(1 << 13)  # CAP_NET_RAW
caps[0].permitted &= ~(1 << 13)
out["capset"] = call(libc.capset(ctypes.byref(header), caps))
out["setgroups"] = attempt(lambda: os.setgroups([7, 8, 9]))
out["setfsuid"] = libc.setfsuid(1234)
out["setfsgid"] = libc.setfsgid(4321)
out["setresgid"] = attempt(lambda: os.setresgid(1000, 1000, 1000))
out["setuid"] = attempt(lambda: os.setuid(1000))
out["refused"] = {
    "setuid": attempt(lambda: os.setuid(0)), "setgid": attempt(lambda: os.setgid(0)),
    "setreuid": attempt(lambda: os.setreuid(0, 0)), "setregid": attempt(lambda: os.setregid(0, 0)),
    "setresuid": attempt(lambda: os.setresuid(0, 0, 0))}
report()
""", lambda pid, out, marker: {
        "creds_change by capset": lambda e: e.syscall == "capset" and e.ret == out["capset"] == 0,
        "creds_change by setgroups": lambda e: e.syscall == "setgroups",
        "creds_change by setfsuid": lambda e: e.syscall == "setfsuid",
        "creds_change by setfsgid": lambda e: e.syscall == "setfsgid",
        "creds_change by setresgid": lambda e: e.syscall == "setresgid",
        "creds_change by setuid": lambda e: e.syscall == "setuid" and e.ret == 0,
        **{f"creds_change by {call}, refused": lambda e, call=call: e.syscall == call and e.ret == ret == -errno.EPERM
           for call, ret in out["refused"].items()}}),
    # never a real module: garbage bytes by init_module, a garbage file by finit_module
    "kmod_load": Action(("kmod_load",), f"""
path = os.path.join(WORKDIR, MARKER + ".ko")
with open(path, "wb") as junk:
    junk.write({NOT_A_MODULE!r})
fd = os.open(path, os.O_RDONLY)
out["fd"] = fd
out["finit"] = call(libc.syscall({NR["finit_module"]}, fd, b"", 0))
blob = {NOT_A_MODULE!r}
out["init"] = call(libc.syscall({NR["init_module"]}, blob, len(blob), b""))
report()
""", lambda pid, out, marker: {
        "kmod_load by finit_module": lambda e: e.syscall == "finit_module" and e.fd == out["fd"],
        "kmod_load by init_module": lambda e: e.syscall == "init_module"}),
    "mount": Action(("mount",), f"""
target = os.path.join(WORKDIR, "mnt").encode()
os.mkdir(target)
out["ok"] = call(libc.mount(MARKER.encode(), target, b"tmpfs", ctypes.c_ulong({MS_NOSUID | MS_NODEV}), None))
out["umount"] = call(libc.umount2(target, 0))
out["bad"] = call(libc.mount((MARKER + "-bad").encode(), target, (MARKER + "fs").encode(), ctypes.c_ulong(1), None))
out["nulls"] = call(libc.mount(None, target, None, ctypes.c_ulong({MS_BIND | MS_REMOUNT}), None))  # not a mount point
report()
""", lambda pid, out, marker: {
        "mount": lambda e: e.source == marker and e.ret == out["ok"] == 0,
        "mount refused": lambda e: e.source == f"{marker}-bad" and e.ret == out["bad"],
        "mount with null source and fstype": lambda e: e.flags == MS_BIND | MS_REMOUNT and e.ret == out["nulls"]}),
    "files": Action(("file_create", "chmod", "rename", "unlink"), f"""
class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

path = os.path.join(WORKDIR, MARKER)
dirfd = os.open(WORKDIR, os.O_RDONLY)
fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
out["fd"] = fd
out["missing"] = attempt(lambda: os.open(path + "-none/x", os.O_CREAT | os.O_WRONLY, 0o644))
out["open"] = syscall({NR["open"]}, (path + "-open").encode(), os.O_CREAT | os.O_WRONLY, 0o640)
out["creat"] = syscall({NR["creat"]}, (path + "-creat").encode(), 0o600)
how = OpenHow(os.O_CREAT | os.O_WRONLY, 0o604, 0)
out["openat2"] = syscall({NR["openat2"]}, dirfd, (MARKER + "-2").encode(), ctypes.byref(how), ctypes.sizeof(how))

def path_of(length):
    # a path of `length` bytes under a folder that is not there
    made = path + "-long"
    while length - len(made) > 250:
        made += "/" + "d" * 200
    return made + "/" + "e" * (length - len(made) - 1)

out["long"] = {{length: attempt(lambda: os.open(path_of(length), os.O_CREAT | os.O_WRONLY))
               for length in ({PATH_MAX - 1}, {PATH_MAX}, {PATH_MAX + 1})}}
os.chmod(path, 0o640)
os.fchmod(fd, 0o1604)
out["chmod_missing"] = attempt(lambda: os.chmod(path + "-none", 0o600))
out["fchmodat"] = syscall({NR["fchmodat"]}, dirfd, (MARKER + "-2").encode(), 0o600)
out["fchmodat2"] = syscall({NR["fchmodat2"]}, dirfd, (MARKER + "-2").encode(), 0o611, 0)
os.rename(path, path + "-renamed")
out["rename_missing"] = attempt(lambda: os.rename(path, path + "-again"))
out["renameat"] = syscall({NR["renameat"]}, dirfd, (MARKER + "-2").encode(), dirfd, (MARKER + "-3").encode())
out["renameat2"] = syscall({NR["renameat2"]}, dirfd, (MARKER + "-3").encode(), dirfd, (MARKER + "-open").encode(),
                           1)  # RENAME_NOREPLACE: -EEXIST
os.unlink(path + "-renamed")
os.mkdir(path + "-dir")
os.rmdir(path + "-dir")
out["unlink_missing"] = attempt(lambda: os.unlink(path))
out["unlinkat"] = syscall({NR["unlinkat"]}, dirfd, (MARKER + "-3").encode(), 0)
report()
""", lambda pid, out, marker: {
        "file_create": lambda e: ends(e.path, marker) and e.ret == out["fd"],
        "file_create refused": lambda e: ends(e.path, f"{marker}-none/x") and e.ret == out["missing"],
        "file_create by open": lambda e: e.syscall == "open" and ends(e.path, f"{marker}-open"),
        "file_create by creat": lambda e: e.syscall == "creat" and ends(e.path, f"{marker}-creat"),
        "file_create by openat2": lambda e: e.syscall == "openat2" and e.path == f"{marker}-2",
        # kept whole up to the field's max, then cut
        **{f"file_create of a path of {length}": lambda e, kept=min(length, PATH_MAX), cut=length > PATH_MAX: (
            f"{marker}-long/" in (e.path or "") and (len(e.path), "path" in e.truncated) == (kept, cut))
           for length in (PATH_MAX - 1, PATH_MAX, PATH_MAX + 1)},
        "chmod": lambda e: e.syscall == "chmod" and e.mode == 0o640,
        "chmod by fd": lambda e: e.syscall == "fchmod" and e.fd == out["fd"],
        "chmod refused": lambda e: ends(e.path, f"{marker}-none") and e.ret == out["chmod_missing"],
        "chmod by fchmodat": lambda e: e.syscall == "fchmodat" and e.path == f"{marker}-2",
        "chmod by fchmodat2": lambda e: e.syscall == "fchmodat2" and e.path == f"{marker}-2",
        "rename": lambda e: ends(e.new_path, f"{marker}-renamed") and e.ret == 0,
        "rename refused": lambda e: ends(e.new_path, f"{marker}-again") and e.ret == out["rename_missing"],
        "rename by renameat": lambda e: e.syscall == "renameat" and e.new_path == f"{marker}-3",
        "rename by renameat2, refused": lambda e: e.syscall == "renameat2" and e.ret == out["renameat2"] < 0,
        "unlink": lambda e: ends(e.path, f"{marker}-renamed") and e.ret == 0,
        "unlink of a directory": lambda e: ends(e.path, f"{marker}-dir") and e.dir == 1,
        "unlink refused": lambda e: ends(e.path, marker) and e.ret == out["unlink_missing"],
        "unlink by unlinkat": lambda e: e.syscall == "unlinkat" and e.path == f"{marker}-3"}),
}


def run_child(action: Action, marker: str, workdir: Path) -> tuple[int, dict]:
    """Runs the action in a child; (its pid, what it reported)."""
    child = subprocess.Popen([sys.executable, "-B", "-c", PRELUDE + textwrap.dedent(action.code), marker, str(workdir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = child.communicate(timeout=LIVE_WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == action.exit_status, stderr
    return child.pid, json.loads(stdout.splitlines()[0])


def test_every_shipped_event_is_compared():
    assert {name for action in ACTIONS.values() for name in action.events} == set(EVENTS)


@pytest.mark.parametrize("action", ACTIONS)
def test_both_builds_send_the_same_bytes(builds, action, tmp_path):
    action = ACTIONS[action]
    marker = "sdx" + uuid.uuid4().hex[:12]
    try:
        pid, out = run_child(action, marker, tmp_path)
    finally:
        if os.path.ismount(tmp_path / "mnt"):  # a child stopped half-way leaves nothing mounted
            subprocess.run(["umount", str(tmp_path / "mnt")], check=False)
    pid = out.get("actor", pid)
    wanted = action.wanted(pid, out, marker)
    assert {label.split()[0] for label in wanted} == set(action.events)
    found = records_of(builds, {label: lambda e, label=label, predicate=predicate: (
        e.name == label.split()[0] and e.pid == pid and predicate(e)) for label, predicate in wanted.items()})
    for label, got in found.items():
        (core, event), (bcc, _) = got["libbpf"], got["bcc"]
        core, bcc = masked_records(core), masked_records(bcc)
        assert differences(core, bcc) == [], f"{label}: the builds' records differ (record, offset, libbpf, bcc)"
        if label == "exec with continuations":  # the rest of argv came, and was compared
            assert len(core) > 2 and not event.lost, (len(core), event.lost)
