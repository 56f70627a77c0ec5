"""The generated header under BCC: a program calling every packer passes the
verifier on both transports, and the records it sends are byte-identical to
the host build's for the same inputs (timestamp, sequence and CPU aside)."""
import ctypes
import os
import struct

import pytest

import hostc

bcc = pytest.importorskip("bcc", reason="needs Debian's python3-bpfcc (scripts/setup.sh)")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")

HEADERS = os.path.join(os.path.dirname(__file__), "..", "build", "kernel-headers")


def _user_value(f, n):
    if f.type.name == "strlist":
        return b"first\0\0third arg\0" + bytes([0xC3, 0x28]) + b"\0"
    if f.type.name == "ublob":
        return bytes(range(n, n + 12)) + b"\0\xff"
    return f"user-{f.name}-{n}".encode()


def _inputs(layout, user_fields_on_stack=False):
    """Per event: the host harness values and the C expressions handing the same values to the packer."""
    user_buffers = []  # keeps the ctypes buffers alive
    plans = []
    for e in layout.events:
        values, args, decls = {}, ["args"], []
        for i, f in enumerate(e.event.fields):
            kind = f.type.name
            if f.type.from_user and user_fields_on_stack:
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
            elif kind == "str":
                text = f"kernel-{f.name}"
                values[f.name] = text.encode()
                decls.append(f'char v{i}[] = "{text}";')
                args.append(f"v{i}")
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


def _program(layout, header_text, plans, tgid):
    calls = []
    for e, (_, decls, args) in zip(layout.events, plans):
        calls.append("    {\n        " + "\n        ".join(decls + [f"{e.event.name}_print({', '.join(args)});"]) + "\n    }")
    return header_text + f"""
#define TGID {tgid}ULL
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{{
    if (bpf_get_current_pid_tgid() >> 32 != TGID)
        return 0;
{chr(10).join(calls)}
    return 0;
}}
"""


def _collect(program, transport):
    os.environ.setdefault("BCC_KERNEL_SOURCE", HEADERS)
    cflags = ["-DSDXFER_RINGBUF"] if transport == "ringbuf" else []
    b = bcc.BPF(text=program.encode(), cflags=cflags)
    got = []

    def keep(_cpu_or_ctx, data, size):
        got.append(ctypes.string_at(data, size))
        return 0

    if transport == "ringbuf":
        b[b"sdxfer_events"].open_ring_buffer(lambda ctx, data, size: keep(ctx, data, size))
        poll, consume = b.ring_buffer_poll, b.ring_buffer_consume
    else:
        b[b"sdxfer_events"].open_perf_buffer(lambda cpu, data, size: keep(cpu, data, size))
        poll, consume = b.perf_buffer_poll, b.perf_buffer_consume
    # pin to one CPU so the perf buffer keeps order
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    try:
        os.getppid()
        os.getppid()
    finally:
        os.sched_setaffinity(0, affinity)
    poll(100)
    consume()
    b.cleanup()
    return got


@pytest.mark.parametrize("transport, user_fields_on_stack", [("perf", False), ("ringbuf", False), ("perf", True)],
                         ids=["perf", "ringbuf", "user-fields-from-bpf-memory"])
def test_bpf_records_equal_host_records(generated, transport, user_fields_on_stack, capfd):
    layout = generated.layout
    plans, keep_alive = _inputs(layout, user_fields_on_stack)
    header = (generated.out / "xfer.h").read_text()
    records = _collect(_program(layout, header, plans, os.getpid()), transport)
    assert "warning" not in capfd.readouterr().err  # clang under BCC is silent about the header
    host = generated.pack([(e.index, values) for e, (values, _, _) in zip(layout.events, plans)])
    n = len(layout.events)
    assert len(records) == 2 * n  # two getppid calls
    for bpf_record, host_record in zip(records, host + host):
        size = struct.unpack_from("<I", bpf_record, 16)[0]
        bpf_record = bpf_record[:size]  # perf pads the sample
        assert len(bpf_record) == len(host_record)
        # timestamp and seq (bytes 0..16) and cpu (28..30) differ by nature
        assert bpf_record[16:28] == host_record[16:28]
        assert bpf_record[30:] == host_record[30:]
        generated.decoder.decode(bpf_record)
    seqs = [struct.unpack_from("<Q", r, 8)[0] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + 2 * n))
    del keep_alive
