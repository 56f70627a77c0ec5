"""The generated header under BCC: a program calling every packer passes the
verifier on both transports, and the records it sends are byte-identical to
the host build's for the same inputs (timestamp, sequence and CPU aside).
The program is loaded through Sensor, which generates its header from the schema."""
import ctypes
import os
import struct
import threading
import time

import pytest

from conftest import LIVE_WAIT_S
from hids_support import Identity
from sdxfer import Sensor
from sdxfer.codegen.model import SOURCES
from sdxfer.record import HEADER, HEADER_OFFSETS

pytestmark = pytest.mark.live


def _user_value(f, n):
    if f.type.name == "strlist":
        return b"first\0\0third arg\0" + bytes([0xC3, 0x28]) + b"\0"
    if f.type.name == "ublob":
        return bytes(range(n, n + 12)) + b"\0\xff"
    return f"user-{f.name}-{n}".encode()


def _sources_here() -> dict:
    """Every common-field source, as a packer running in this process finds it
    (start_ns: /proc has it in ticks only; the test takes the packer's once
    it agrees with them)."""
    me = Identity(os.getpid())
    return {"pid": me.pid, "tid": threading.get_native_id(), "ppid": me.ppid, "pgid": os.getpgid(0), "sid": me.sid,
            "uid": me.uid, "gid": me.gid, "euid": os.geteuid(), "egid": os.getegid(), "cgroup_id": me.cgroup_id,
            "mntns": me.mntns, "comm": me.comm.encode(), "start_ns": None, "loginuid": me.loginuid,
            "sessionid": me.sessionid, "pidns": me.pidns, "nodename": me.nodename.encode(),
            "exe_path": me.exe_path.encode()}


SOURCES_HERE = _sources_here()


def _inputs(layout, user_fields_on_stack=False):
    """Per event: the host harness values and the C expressions handing the same values to the packer."""
    user_buffers = []  # keeps the ctypes buffers alive
    plans = []
    for e in layout.events:
        values, args, decls = {}, ["args"], []
        for i, f in enumerate(e.event.fields):
            kind = f.type.name
            if f.source:
                values[f.name] = SOURCES_HERE[f.source]  # what the packer finds for this process
            elif kind == "array":
                values[f.name] = bytes([0x50 + i]) * (2 * f.entry_size)
                decls.append(f"__u8 v{i}[{2 * f.entry_size}]; __builtin_memset(v{i}, {0x50 + i}, {2 * f.entry_size});")
                args += [f"v{i}", "2"]
            elif f.type.from_user and user_fields_on_stack:
                data = _user_value(f, i)
                values[f.name] = data
                initial = ", ".join(str(b) for b in data + b"\0")
                decls.append(f"__u8 v{i}[{len(data) + 1}] = {{{initial}}};")
                args += [f"(const char *)v{i}", str(len(data))] if f.type.takes_length else [f"(const char *)v{i}"]
            elif f.type.from_user:
                data = _user_value(f, i)
                buf = ctypes.create_string_buffer(data, len(data) + 1)
                user_buffers.append(buf)
                values[f.name] = data
                ptr = f"(const char *){ctypes.addressof(buf)}ULL"
                # a length the verifier cannot bound (it equals len(data) at run time)
                args += [ptr, f"(__u32)((bpf_get_current_pid_tgid() >> 32) - TGID + {len(data)})"] if f.type.takes_length else [ptr]
            elif kind == "str":  # a literal: read-only data, off the program's 512-byte stack
                text = f"kernel-{f.name}"
                values[f.name] = text.encode()
                args.append(f'"{text}"')
            elif kind == "blob":
                values[f.name] = bytes([0x30 + i]) * 10
                decls.append(f"__u8 v{i}[10]; __builtin_memset(v{i}, {0x30 + i}, 10);")
                args += [f"v{i}", "10"]
            elif f.type.by_pointer:
                values[f.name] = bytes([0x40 + i]) * f.fixed_size
                decls.append(f"__u8 v{i}[{f.fixed_size}]; __builtin_memset(v{i}, {0x40 + i}, {f.fixed_size});")
                args.append(f"v{i}")
            else:
                value = -(i + 1) if f.type.signed else 0x10 + i
                values[f.name] = value
                args.append(str(value))
        plans.append((values, decls, args))
    return plans, user_buffers


def _program(layout, plans):
    """Every packer once per getppid call, in the events' order: the first
    half at its sys_enter, the rest at its sys_exit. In one program, the
    eighteen inlined packers came to over 32,768 instructions, a jump's
    16-bit range, and BCC's build of it read its literal strings wrong."""
    calls = []
    for e, (_, decls, args) in zip(layout.events, plans):
        calls.append("    {\n        " + "\n        ".join(decls + [f"{e.event.name}_print({', '.join(args)});"]) + "\n    }")
    half = (len(calls) + 1) // 2
    probes = []
    for when, part in (("enter", calls[:half]), ("exit", calls[half:])):
        probes.append(f"""TRACEPOINT_PROBE(syscalls, sys_{when}_getppid)
{{
    if (bpf_get_current_pid_tgid() >> 32 != TGID)
        return 0;
{chr(10).join(part)}
    return 0;
}}
""")
    return '#include "xfer.h"\n' + "".join(probes)


def _collect(generated, program, transport, expected):
    with Sensor(program, schema=generated.schema, transport=transport, defines={"TGID": f"{os.getpid()}ULL"}) as sensor:
        # pin to one CPU so the perf buffer keeps order
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(affinity)})
        try:
            os.getppid()
            os.getppid()
        finally:
            os.sched_setaffinity(0, affinity)
        got = []
        deadline = time.monotonic() + LIVE_WAIT_S
        while len(got) < expected and time.monotonic() < deadline:
            got += [r.data for r in sensor.read(100) if r.data]
        return got


def _take_start_ns(layout, plans, first) -> None:
    """The start_ns the packers sent (the first record's), checked against
    /proc's ticks, as every plan's value."""
    name = next(f.name for f in layout.events[0].event.fields if f.source == "start_ns")
    start_ns = first.value(name)
    assert Identity(os.getpid()).started_at(start_ns), start_ns
    for e, (values, _, _) in zip(layout.events, plans):
        values.update({f.name: start_ns for f in e.event.fields if f.source == "start_ns"})


def _varying(raw: bytes) -> bytes:
    """The record with the fields that differ by nature (time, sequence, CPU) zeroed."""
    out = bytearray(raw)
    for name, _, fmt in HEADER:
        if name in ("timestamp_ns", "seq", "cpu"):
            start = HEADER_OFFSETS[name]
            out[start:start + struct.calcsize(fmt)] = bytes(struct.calcsize(fmt))
    return bytes(out)


@pytest.mark.parametrize("transport, user_fields_on_stack", [("perf", False), ("ringbuf", False), ("perf", True)],
                         ids=["perf", "ringbuf", "user-fields-from-bpf-memory"])
def test_bpf_records_equal_host_records(generated, transport, user_fields_on_stack, capfd):
    layout = generated.layout
    assert set(SOURCES_HERE) == set(SOURCES)  # every source is checked against the kernel's answer
    plans, keep_alive = _inputs(layout, user_fields_on_stack)
    n = len(layout.events)
    records = _collect(generated, _program(layout, plans), transport, 2 * n)  # two getppid calls
    assert "warning" not in capfd.readouterr().err  # clang under BCC is silent about the header
    _take_start_ns(layout, plans, generated.decoder.decode(records[0]))
    host = generated.pack([(e.index, values) for e, (values, _, _) in zip(layout.events, plans)])
    assert len(records) == 2 * n
    for bpf_record, host_record in zip(records, host + host):
        size = struct.unpack_from("<I", bpf_record, HEADER_OFFSETS["size"])[0]
        bpf_record = bpf_record[:size]  # perf pads the sample
        assert _varying(bpf_record) == _varying(host_record)
        generated.decoder.decode(bpf_record)
    seqs = [struct.unpack_from("<Q", r, HEADER_OFFSETS["seq"])[0] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + 2 * n))
    del keep_alive
