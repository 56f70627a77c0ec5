"""Live tests of the network family (bpf/net.bpf.h), both transports: a child
process connects, binds, listens, accepts and sends DNS queries, on loopback
(DNS in a network namespace of its own, where it may bind port 53), and
every event's values are checked exactly against what the child's own
sockets say (getsockname, getpeername, errno), common fields included once
the schema has them (hids_support.Identity).

PROGRAM, SCHEMA and DEFINES name what is loaded: repoint them at
bpf/hids.bpf.c and the shipped schema to run the same tests there.

Needs root and bcc; skipped otherwise.
"""
import errno
import ipaddress
import json
import secrets
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hids_support import MMSG_STRUCTS, WAIT_S, ChildProcess, Identity, events_until, wait_for
from sdxfer import SockAddr, hids

pytestmark = pytest.mark.live

HERE = Path(__file__).resolve().parent
PROGRAM = hids.PROGRAM
SCHEMA = None  # the shipped one
EVENTS = ("connect", "bind", "listen", "accept", "dns")
DEFINES = hids.defines_for(EVENTS)

FAMILIES = {"ipv4": (socket.AF_INET, "127.0.0.1"), "ipv6": (socket.AF_INET6, "::1")}
NO_ADDRESS = None  # all-zero sockaddr bytes: absent


def sockaddr(family: int, name) -> SockAddr:
    """A Python socket address (getsockname's tuple) as the decoder gives it."""
    return SockAddr(family, name[1], ipaddress.ip_address(name[0]))


# The child: helpers, "ready", then the test's code once told "go"; it
# reports what its sockets say as one JSON line and exits.
PRELUDE = """
import ctypes, errno, json, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)

def call(result):
    # a libc call's return value, or -errno, as the kernel returned it
    return -ctypes.get_errno() if result < 0 else result

def report(**values):
    print(json.dumps(values), flush=True)

def new_netns():
    # a network namespace of our own, its loopback up (SIOCSIFFLAGS)
    if libc.unshare(0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        import fcntl
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", 0x1 | 0x8 | 0x40))

"""


class Child(ChildProcess):
    """A python -c child that waits, once set up, for the test to say go."""

    def __init__(self, code: str, setup: str = ""):
        source = PRELUDE + textwrap.dedent(setup) + "\nprint('ready', flush=True)\nsys.stdin.readline()\n" + \
            textwrap.dedent(code)
        self.proc = subprocess.Popen([sys.executable, "-c", source], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        assert ready == "ready\n", ready + self.proc.stderr.read()
        self.pid = self.proc.pid
        self.identity = Identity(self.pid)  # built while the child waits, before it acts

    def go(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        out, err = self.proc.communicate(timeout=WAIT_S)
        assert self.proc.returncode == 0, err
        return json.loads(out)

    def mine(self, event) -> bool:
        """The child's event (by pid, once events carry it)."""
        return "pid" not in event.fields or event.pid == self.pid

    def wait(self, sensor, name: str, predicate):
        event = wait_for(sensor, lambda e: e.name == name and self.mine(e) and predicate(e))
        self.identity.check(event)
        return event

    def wait_all(self, sensor, name: str, *predicates) -> list:
        """One event for each predicate, in the predicates' order (wait_for
        drops the rest of a batch, so the events are gathered in one pass)."""
        found = [None] * len(predicates)

        def note(event):
            if event.name == name and self.mine(event):
                for i, predicate in enumerate(predicates):
                    if found[i] is None and predicate(event):
                        found[i] = event
                        break
            return all(e is not None for e in found)

        events_until(sensor, note)
        for event in found:
            self.identity.check(event)
        return found


def free_port(family: int, kind: int) -> int:
    """A port nothing listens on (bound and closed at once)."""
    with socket.socket(family, kind) as s:
        s.bind((FAMILIES["ipv4" if family == socket.AF_INET else "ipv6"][1], 0))
        return s.getsockname()[1]


# ---- connect -------------------------------------------------------------------

CONNECT = """
s = socket.socket(%(family)d, %(kind)d)
s.setblocking(%(blocking)s)
ret = call(libc.connect(s.fileno(), ctypes.c_char_p(bytes.fromhex(%(addr)r)), %(addrlen)d))
report(fd=s.fileno(), ret=ret, local=s.getsockname()[:2])
"""


def raw_sockaddr(family: int, host: str, port: int) -> bytes:
    """struct sockaddr_in / sockaddr_in6 as a C caller passes it."""
    if family == socket.AF_INET:
        return struct.pack("<H", family) + struct.pack("!H", port) + socket.inet_pton(family, host) + bytes(8)
    return struct.pack("<H", family) + struct.pack("!HI", port, 0) + socket.inet_pton(family, host) + bytes(4)


def connect_child(family, kind, host, port, blocking=True):
    addr = raw_sockaddr(family, host, port)
    return Child(CONNECT % {"family": family, "kind": kind, "blocking": blocking, "addr": addr.hex(),
                            "addrlen": len(addr)})


@pytest.mark.parametrize("kind, protocol", [(socket.SOCK_STREAM, socket.IPPROTO_TCP),
                                            (socket.SOCK_DGRAM, socket.IPPROTO_UDP)], ids=["tcp", "udp"])
@pytest.mark.parametrize("family_name", FAMILIES)
def test_connect(sensor, family_name, kind, protocol):
    family, host = FAMILIES[family_name]
    with socket.socket(family, kind) as listener:
        listener.bind((host, 0))
        if kind == socket.SOCK_STREAM:
            listener.listen()
        port = listener.getsockname()[1]
        with connect_child(family, kind, host, port) as child:
            got = child.go()
            event = child.wait(sensor, "connect", lambda e: e.remote.port == port and e.fd == got["fd"])
    assert got["ret"] == 0
    assert (event.fd, event.protocol, event.remote, event.local, event.ret) == (
        got["fd"], protocol, SockAddr(family, port, ipaddress.ip_address(host)), sockaddr(family, got["local"]), 0)
    assert event.local.port != 0


@pytest.mark.parametrize("family_name", FAMILIES)
def test_connect_refused(sensor, family_name):
    family, host = FAMILIES[family_name]
    port = free_port(family, socket.SOCK_STREAM)
    with connect_child(family, socket.SOCK_STREAM, host, port) as child:
        got = child.go()
        event = child.wait(sensor, "connect", lambda e: e.remote.port == port)
    assert got["ret"] == -errno.ECONNREFUSED
    # a refused connect leaves the socket unbound again (the kernel's own say: getsockname)
    assert (event.fd, event.protocol, event.remote, event.local, event.ret) == (
        got["fd"], socket.IPPROTO_TCP, SockAddr(family, port, ipaddress.ip_address(host)),
        sockaddr(family, got["local"]), -errno.ECONNREFUSED)


def test_connect_nonblocking_in_progress(sensor):
    family, host = FAMILIES["ipv4"]
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen()
        port = listener.getsockname()[1]
        with connect_child(family, socket.SOCK_STREAM, host, port, blocking=False) as child:
            got = child.go()
            event = child.wait(sensor, "connect", lambda e: e.remote.port == port)
    assert got["ret"] == -errno.EINPROGRESS
    assert (event.fd, event.protocol, event.local, event.ret) == (
        got["fd"], socket.IPPROTO_TCP, sockaddr(family, got["local"]), -errno.EINPROGRESS)
    assert event.local.port != 0  # bound by the connect already


def test_connect_on_a_non_socket(sensor):
    """An fd that is not a socket: the address asked for, no protocol and no local address."""
    port = free_port(socket.AF_INET, socket.SOCK_STREAM)
    addr = raw_sockaddr(socket.AF_INET, "127.0.0.1", port)
    code = "fd = os.open('/dev/null', os.O_RDONLY)\n" \
           f"report(fd=fd, ret=call(libc.connect(fd, bytes.fromhex({addr.hex()!r}), {len(addr)})))\n"
    with Child(code) as child:
        got = child.go()
        event = child.wait(sensor, "connect", lambda e: e.remote.port == port)
    assert (event.fd, event.protocol, event.remote, event.local, event.ret) == (
        got["fd"], 0, SockAddr(socket.AF_INET, port, ipaddress.ip_address("127.0.0.1")), NO_ADDRESS,
        -errno.ENOTSOCK)


# ---- bind and listen -----------------------------------------------------------

BIND = """
s = socket.socket(%(family)d, %(kind)d)
asked = (%(host)r, %(port)d)
try:
    s.bind(asked)
    ret = 0
except OSError as e:
    ret = -e.errno
report(fd=s.fileno(), ret=ret, local=s.getsockname()[:2])
"""


@pytest.mark.parametrize("kind, protocol", [(socket.SOCK_STREAM, socket.IPPROTO_TCP),
                                            (socket.SOCK_DGRAM, socket.IPPROTO_UDP)], ids=["tcp", "udp"])
@pytest.mark.parametrize("family_name", FAMILIES)
def test_bind_port_zero_shows_the_port_chosen(sensor, family_name, kind, protocol):
    family, host = FAMILIES[family_name]
    with Child(BIND % {"family": family, "kind": kind, "host": host, "port": 0}) as child:
        got = child.go()
        local = sockaddr(family, got["local"])
        event = child.wait(sensor, "bind", lambda e: e.local.port == local.port and e.fd == got["fd"])
    assert got["ret"] == 0 and local.port != 0
    assert (event.fd, event.protocol, event.local, event.ret) == (got["fd"], protocol, local, 0)


@pytest.mark.parametrize("family_name", FAMILIES)
def test_bind_in_use_shows_the_address_asked_for(sensor, family_name):
    family, host = FAMILIES[family_name]
    with socket.socket(family, socket.SOCK_STREAM) as taken:
        taken.bind((host, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Child(BIND % {"family": family, "kind": socket.SOCK_STREAM, "host": host, "port": port}) as child:
            got = child.go()
            event = child.wait(sensor, "bind", lambda e: e.local.port == port and e.ret < 0)
    assert got["ret"] == -errno.EADDRINUSE
    assert (event.fd, event.protocol, event.local, event.ret) == (
        got["fd"], socket.IPPROTO_TCP, SockAddr(family, port, ipaddress.ip_address(host)), -errno.EADDRINUSE)


LISTEN = """
s = socket.socket(%(family)d, %(kind)d)
s.bind((%(host)r, 0))
ret = call(libc.listen(s.fileno(), %(backlog)d))
report(fd=s.fileno(), ret=ret, local=s.getsockname()[:2])
"""


@pytest.mark.parametrize("kind, ret", [(socket.SOCK_STREAM, 0), (socket.SOCK_DGRAM, -errno.EOPNOTSUPP)],
                         ids=["tcp", "udp-refused"])
@pytest.mark.parametrize("family_name", FAMILIES)
def test_listen(sensor, family_name, kind, ret):
    family, host = FAMILIES[family_name]
    backlog = 17 if kind == socket.SOCK_STREAM else 23
    with Child(LISTEN % {"family": family, "kind": kind, "host": host, "backlog": backlog}) as child:
        got = child.go()
        local = sockaddr(family, got["local"])
        event = child.wait(sensor, "listen", lambda e: e.local == local)
    assert got["ret"] == ret
    assert (event.fd, event.local, event.backlog, event.ret) == (got["fd"], local, backlog, ret)


# ---- accept --------------------------------------------------------------------

ACCEPT = """
listener = socket.socket(%(family)d, socket.SOCK_STREAM)
listener.bind((%(host)r, 0))
listener.listen()
client = socket.socket(%(family)d, socket.SOCK_STREAM)
client.connect(listener.getsockname())
if %(accept4)s:
    ret = call(libc.accept4(listener.fileno(), None, None, %(flags)d))
else:
    ret = call(libc.accept(listener.fileno(), None, None))
peer = socket.socket(fileno=ret) if ret >= 0 else None
report(fd=listener.fileno(), ret=ret, listening=listener.getsockname()[:2], client=client.getsockname()[:2],
       local=peer.getsockname()[:2] if peer else None, remote=peer.getpeername()[:2] if peer else None)
"""


@pytest.mark.parametrize("accept4, flags", [(False, 0), (True, socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)],
                         ids=["accept", "accept4"])
@pytest.mark.parametrize("family_name", FAMILIES)
def test_accept(sensor, family_name, accept4, flags):
    family, host = FAMILIES[family_name]
    with Child(ACCEPT % {"family": family, "host": host, "accept4": accept4, "flags": flags}) as child:
        got = child.go()
        listening = sockaddr(family, got["listening"])
        event = child.wait(sensor, "accept", lambda e: e.local.port == listening.port)
    assert got["ret"] >= 0
    client = sockaddr(family, got["client"])
    assert (sockaddr(family, got["remote"]), sockaddr(family, got["local"])) == (client, listening)
    assert (event.fd, event.flags, event.remote, event.local, event.ret) == (
        got["fd"], flags, client, listening, got["ret"])


def test_accept_nothing_pending(sensor):
    """A non-blocking listener with no connection waiting: -EAGAIN, no peer, the listener's address."""
    code = """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    ret = call(libc.accept4(listener.fileno(), None, None, socket.SOCK_CLOEXEC))
    report(fd=listener.fileno(), ret=ret, listening=listener.getsockname())
    """
    with Child(code) as child:
        got = child.go()
        listening = sockaddr(socket.AF_INET, got["listening"])
        event = child.wait(sensor, "accept", lambda e: e.local == listening)
    assert (event.fd, event.flags, event.remote, event.local, event.ret) == (
        got["fd"], socket.SOCK_CLOEXEC, NO_ADDRESS, listening, -errno.EAGAIN)


# ---- dns -----------------------------------------------------------------------

def dns_query(name: str, qtype: int) -> bytes:
    """A DNS query message: header (id, RD, one question), QNAME, QTYPE, QCLASS IN."""
    labels = [label.encode() for label in name.split(".")] if name else []
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


A, AAAA, TXT = 1, 28, 16

# In a network namespace of the child's own, with a server socket on port 53
# so that nothing answers "port unreachable" and nothing on the host is touched.
DNS_SETUP = """
new_netns()
servers = {}
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    servers[family] = socket.socket(family, socket.SOCK_DGRAM)
    servers[family].bind((host, 53))
"""


def dns_child(code: str) -> Child:
    return Child(code, setup=DNS_SETUP)


def wait_dns(sensor, child, query: str, syscall: str):
    return child.wait(sensor, "dns", lambda e: e.query == query and e.syscall == syscall)


def token() -> str:
    return "t" + secrets.token_hex(4)


SERVER4 = SockAddr(socket.AF_INET, 53, ipaddress.ip_address("127.0.0.1"))
SERVER6 = SockAddr(socket.AF_INET6, 53, ipaddress.ip_address("::1"))


@pytest.mark.parametrize("family_name", FAMILIES)
def test_dns_sendto(sensor, family_name):
    family, host = FAMILIES[family_name]
    name = f"{token()}.example.com"
    message = dns_query(name, AAAA)
    code = f"""
    s = socket.socket({family}, socket.SOCK_DGRAM)
    report(ret=s.sendto(bytes.fromhex({message.hex()!r}), ({host!r}, 53)))
    """
    with dns_child(code) as child:
        got = child.go()
        event = wait_dns(sensor, child, name, "sendto")
    assert got["ret"] == len(message)
    assert (event.query, event.qtype, event.remote, event.syscall, event.ret, event.truncated) == (
        name, AAAA, SERVER4 if family == socket.AF_INET else SERVER6, "sendto", len(message), ())


def test_dns_send_on_a_connected_socket(sensor):
    name = f"{token()}.example.net"
    message = dns_query(name, A)
    code = f"""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", 53))
    report(ret=s.send(bytes.fromhex({message.hex()!r})))
    """
    with dns_child(code) as child:
        got = child.go()
        event = wait_dns(sensor, child, name, "sendto")  # glibc's send() is sendto with no address
    assert (event.query, event.qtype, event.remote, event.ret) == (name, A, SERVER4, got["ret"])
    assert got["ret"] == len(message)


def test_dns_sendmsg(sensor):
    name = f"{token()}.example.org"
    message = dns_query(name, TXT)
    code = f"""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    report(ret=s.sendmsg([bytes.fromhex({message.hex()!r})], [], 0, ("127.0.0.1", 53)))
    """
    with dns_child(code) as child:
        got = child.go()
        event = wait_dns(sensor, child, name, "sendmsg")
    assert (event.query, event.qtype, event.remote, event.ret) == (name, TXT, SERVER4, len(message))
    assert got["ret"] == len(message)


SENDMMSG = MMSG_STRUCTS + """messages = [bytes.fromhex(m) for m in %(messages)r]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", 53))   # as glibc's resolver does: connect, then sendmmsg with no addresses
iovs = [iovec(m, len(m)) for m in messages]
vec = (mmsghdr * len(messages))()
for i, iov in enumerate(iovs):
    vec[i].hdr.iov = ctypes.pointer(iov)
    vec[i].hdr.iovlen = 1
ret = call(libc.sendmmsg(s.fileno(), vec, len(messages), 0))
report(ret=ret, lens=[vec[i].len for i in range(len(messages))])
"""


def test_dns_sendmmsg_reports_every_message(sensor):
    name = f"{token()}.example.com"
    messages = [dns_query(name, A), dns_query(name, AAAA)]
    with dns_child(SENDMMSG % {"messages": [m.hex() for m in messages]}) as child:
        got = child.go()
        events = child.wait_all(sensor, "dns", *(lambda e, qtype=qtype: (e.query, e.qtype, e.syscall) == (
            name, qtype, "sendmmsg") for qtype in (A, AAAA)))
    assert got == {"ret": 2, "lens": [len(m) for m in messages]}
    assert [(e.query, e.qtype, e.remote, e.ret, e.truncated) for e in events] == [
        (name, A, SERVER4, len(messages[0]), ()), (name, AAAA, SERVER4, len(messages[1]), ())]


def test_dns_longest_name_and_root(sensor):
    """A 253-character name (255 bytes on the wire: the most DNS allows) and the root name."""
    prefix = token()
    name = ".".join([prefix + "a" * (63 - len(prefix)), "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    code = f"""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(bytes.fromhex({dns_query(name, A).hex()!r}), ("127.0.0.1", 53))
    s.sendmsg([bytes.fromhex({dns_query("", 2).hex()!r})], [], 0, ("127.0.0.1", 53))   # NS of the root
    report()
    """
    with dns_child(code) as child:
        child.go()
        longest, root = child.wait_all(sensor, "dns", lambda e: (e.query, e.syscall) == (name, "sendto"),
                                       lambda e: (e.query, e.syscall) == ("", "sendmsg"))
    assert (longest.query, longest.qtype, longest.truncated) == (name, A, ())
    assert (root.query, root.qtype, root.remote, root.truncated) == ("", 2, SERVER4, ())


def test_dns_failed_and_unparsable(sensor):
    """A send the kernel refuses (MSG_OOB on UDP: -EOPNOTSUPP) is reported with -errno; a datagram
    to port 53 that is not a DNS question, or whose name is longer than DNS allows (256 bytes on
    the wire), has no query (null, truncated) and qtype 0."""
    name = f"{token()}.example.com"
    junk = b"\x00\x01not a dns message, no root label" + b"\x7f" * 40
    too_long = dns_query(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]), A)
    code = f"""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(bytes.fromhex({dns_query(name, A).hex()!r}), socket.MSG_OOB, ("127.0.0.1", 53))
        oob = 0
    except OSError as e:
        oob = -e.errno
    s.sendto(bytes.fromhex({junk.hex()!r}), ("127.0.0.1", 53))
    s.sendto(bytes.fromhex({too_long.hex()!r}), ("127.0.0.1", 53))
    report(oob=oob)
    """
    with dns_child(code) as child:
        got = child.go()
        failed, unparsed, unbounded = child.wait_all(
            sensor, "dns", lambda e: (e.query, e.syscall) == (name, "sendto"),
            lambda e: e.query is None and e.ret == len(junk), lambda e: e.query is None and e.ret == len(too_long))
    assert got["oob"] == -errno.EOPNOTSUPP
    assert (failed.qtype, failed.remote, failed.ret) == (A, SERVER4, -errno.EOPNOTSUPP)
    for event in (unparsed, unbounded):
        assert (event.qtype, event.remote, event.syscall, event.truncated) == (0, SERVER4, "sendto", ("query",))


def test_dns_only_port_53_and_udp(sensor):
    """Queries to another port, and a TCP connection to port 53, send no dns event."""
    name = f"{token()}.example.com"
    marker = f"{token()}.marker.test"
    code = f"""
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 54))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(bytes.fromhex({dns_query(name, A).hex()!r}), ("127.0.0.1", 54))
    tcp_server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_server.bind(("127.0.0.1", 53))
    tcp_server.listen()
    tcp = socket.create_connection(("127.0.0.1", 53))
    tcp.send(bytes.fromhex({dns_query(name, A).hex()!r}))
    s.sendto(bytes.fromhex({dns_query(marker, A).hex()!r}), ("127.0.0.1", 53))
    report()
    """
    with dns_child(code) as child:
        child.go()
        seen = events_until(sensor, lambda e: e.name == "dns" and child.mine(e) and e.query == marker)
    assert [e for e in seen if e.name == "dns" and e.query == name] == []
