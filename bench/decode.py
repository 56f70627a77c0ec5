"""Decoding speed: sdxfer's decoder (the path agents use) beside a hand-written
struct.unpack_from decoder of the same record, and plain construct.

- the exec record of the shipped schema (every field filled, two ancestors),
  decoded, and decoded with its lists read (they are built when first read);
- the small record of bench/throughput.py's stream (five integers and a
  12-byte comm), one at a time and a transport batch at once (decode_many).

Prints µs per record and records/s (medians of rounds in which the cases
take turns) and the ratios (medians of each round's ratio).

    .venv/bin/python bench/decode.py

Goals (issue 10): sdxfer / hand-written <= 1.0 on the exec record, and
>= 1,000,000 small records/s.
"""
import statistics
import struct
import sys
import tempfile
import timeit
from operator import attrgetter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostc  # noqa: E402  (the tests' host-C harness packs the fixtures)

from sdxfer import Decoder, default_decoder  # noqa: E402
from sdxfer.codegen import generate, plan  # noqa: E402

SMALL_SCHEMA = ROOT / "bench" / "throughput.yaml"
BATCH = 1000  # records per decode_many call, about one wake-up's worth

# header, then exec's fixed part: eight u32 ids, cgroup_id, mntns, comm, ret,
# exe, argv, ssh_connection, ld_preload, ancestors (a descriptor is u16 off, u16 len, u32 lost)
HEAD_AND_EXEC = struct.Struct("<QQIIHHHH8IQIHHIiHHIHHIHHIHHIHHI")
ANCESTOR = struct.Struct("<I16s")
HEAD_AND_SMALL = struct.Struct("<QQIIHHHHIIIiQHHI")


def hand_written_exec(buf):
    """What an agent author would write by hand for this one record: every
    value sdxfer gives, without its checks and loss accounting."""
    (ts, seq, size, fp, event_id, poff, cpu, version, pid, tid, ppid, pgid, sid, uid, gid, euid, cgroup_id, mntns,
     comm_off, comm_len, comm_lost, ret, exe_off, exe_len, exe_lost, argv_off, argv_len, argv_lost,
     ssh_off, ssh_len, ssh_lost, ld_off, ld_len, ld_lost, anc_off, anc_len, anc_lost) = HEAD_AND_EXEC.unpack_from(buf)

    def text(off, n):
        return str(buf[off:off + n], "utf-8", "surrogateescape") if off else None

    argv = str(buf[argv_off:argv_off + argv_len], "utf-8", "surrogateescape").split("\0")
    if argv_len and buf[argv_off + argv_len - 1] == 0:
        argv.pop()
    ancestors = [(pid_, str(name.split(b"\0", 1)[0], "utf-8", "surrogateescape"))
                 for pid_, name in ANCESTOR.iter_unpack(buf[anc_off:anc_off + anc_len])]
    return (ts, seq, cpu, version, pid, tid, ppid, pgid, sid, uid, gid, euid, cgroup_id, mntns, text(comm_off, comm_len),
            ret, text(exe_off, exe_len), argv, text(ssh_off, ssh_len), text(ld_off, ld_len), ancestors)


def hand_written_small(buf):
    (ts, seq, size, fp, event_id, poff, cpu, version, pid, tid, uid, nr, pid_tgid,
     comm_off, comm_len, comm_lost) = HEAD_AND_SMALL.unpack_from(buf)
    return (ts, seq, cpu, version, pid, tid, uid, nr, pid_tgid,
            str(buf[comm_off:comm_off + comm_len], "utf-8", "surrogateescape") if comm_off else None)


def pack(schema: Path, event: str, values: dict, workdir: Path) -> bytes:
    """One record of `event`, packed by the generated C packer (host build)."""
    layout = plan(str(schema))
    for name, text in generate(str(schema)).items():
        (workdir / name).write_text(text)
    index = next(e.index for e in layout.events if e.event.name == event)
    common = {f.name: 0 for f in layout.schema.common}
    return hostc.run(hostc.build(layout, workdir, workdir), hostc.encode_call(layout, index, {**common, **values}))[0]


def fixtures() -> tuple[bytes, bytes]:
    ancestors = struct.pack("<I16s", 4100, b"bash") + struct.pack("<I16s", 1, b"systemd")
    with tempfile.TemporaryDirectory() as tmp:
        exec_record = pack(ROOT / "schema" / "events.yaml", "exec", {
            "pid": 4242, "tid": 4242, "ppid": 4100, "pgid": 4242, "sid": 4100, "uid": 1000, "gid": 1000,
            "euid": 1000, "egid": 1000, "cgroup_id": 12345, "mntns": 4026531841, "comm": b"ls", "ret": 0,
            "exe": b"/usr/bin/ls", "argv": b"ls\0--color=auto\0-la\0/tmp\0",
            "ssh_connection": b"10.0.0.1 51000 10.0.0.2 22", "ld_preload": None, "ancestors": ancestors,
        }, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        small_record = pack(SMALL_SCHEMA, "getppid_call", {
            "pid": 4242, "tid": 4243, "uid": 0, "nr": 110, "pid_tgid": 4242 << 32 | 4243, "comm": b"getppid_loop",
        }, Path(tmp))
    return exec_record, small_record


REPEAT = 9


def measure(cases) -> list[list[float]]:
    """µs per record of each (name, fn, arg, records per call, calls), the
    cases taking turns in each of REPEAT rounds, so drift hits them alike."""
    rounds = []
    for _ in range(REPEAT):
        rounds.append([timeit.timeit(lambda fn=fn, arg=arg: fn(arg), number=calls) / calls / per_call * 1e6
                       for _, fn, arg, per_call, calls in cases])
    return rounds


def show(title, cases, ratios):
    """Each case's median, then each ratio (a over b) as the median of the rounds' ratios."""
    rounds = measure(cases)
    print(f"{title}, median of {REPEAT} rounds")
    for i, (name, *_) in enumerate(cases):
        us = statistics.median(r[i] for r in rounds)
        print(f"  {name:44s} {us:8.3f} µs/record  {1e6 / us:12,.0f} records/s")
    for label, a, b in ratios:
        print(f"  {label}: {statistics.median(r[a] / r[b] for r in rounds):.2f}x")


def main():
    exec_record, small_record = fixtures()
    decoder = default_decoder()
    event = decoder.decode(exec_record)
    # the comparison is honest only if both give the same values
    values = [[tuple(a) for a in event.value(f)] if f == "ancestors" else event.value(f) for f in event.fields]
    assert hand_written_exec(exec_record) == (event.timestamp_ns, event.seq, event.cpu, event.version, *values)
    lists = attrgetter("argv", "ancestors")  # built when first read: this builds them
    show(f"exec record of {len(exec_record)} bytes", [
        ("sdxfer Decoder.decode", decoder.decode, exec_record, 1, 20000),
        ("hand-written struct.unpack_from", hand_written_exec, exec_record, 1, 20000),
        ("sdxfer decode, then argv and ancestors read", lambda r: lists(decoder.decode(r)), exec_record, 1, 20000),
        ("plain construct (decode_with_construct)", decoder.decode_with_construct, exec_record, 1, 500),
    ], [("sdxfer / hand-written (goal <= 1.0x)", 0, 1), ("with its lists read / hand-written", 2, 1)])

    small = Decoder.from_schema(str(SMALL_SCHEMA))
    event = small.decode(small_record)
    assert hand_written_small(small_record) == (event.timestamp_ns, event.seq, event.cpu, event.version,
                                                *map(event.value, event.fields))
    show(f"small record of {len(small_record)} bytes (bench/throughput.py's; goal >= 1,000,000 records/s)", [
        ("sdxfer Decoder.decode", small.decode, small_record, 1, 100000),
        (f"sdxfer Decoder.decode_many ({BATCH} records)", small.decode_many, [small_record] * BATCH, BATCH, 100),
        ("hand-written struct.unpack_from", hand_written_small, small_record, 1, 100000),
    ], [("sdxfer decode / hand-written", 0, 2), ("decode_many / hand-written", 1, 2)])

if __name__ == "__main__":
    main()
