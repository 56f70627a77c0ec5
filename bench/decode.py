"""Decoding speed of an exec record: sdxfer's decoder (the path agents use),
a hand-written struct.unpack_from decoder of the same record, and plain
construct. Prints µs per record and records/s (median of 7 runs) and the ratio.

    .venv/bin/python bench/decode.py
"""
import statistics
import struct
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostc  # noqa: E402  (the tests' host-C harness packs the fixture)

from sdxfer import default_decoder  # noqa: E402
from sdxfer.codegen import load_schema  # noqa: E402
from sdxfer.codegen.layout import compute_layout  # noqa: E402

HEAD_AND_EXEC = struct.Struct("<QQIIHHHHIIIIIiHHIHHIHHIHHIHHI")


def hand_written(buf):
    """What an agent author would write by hand for this one record."""
    (ts, seq, size, fp, event_id, poff, cpu, version, pid, tid, ppid, uid, gid, ret,
     comm_off, comm_len, comm_lost, exe_off, exe_len, exe_lost, argv_off, argv_len, argv_lost,
     ssh_off, ssh_len, ssh_lost, ld_off, ld_len, ld_lost) = HEAD_AND_EXEC.unpack_from(buf)

    def text(off, n):
        return str(buf[off:off + n], "utf-8", "surrogateescape") if off else None

    argv = str(buf[argv_off:argv_off + argv_len], "utf-8", "surrogateescape").split("\0")
    if argv_len and buf[argv_off + argv_len - 1] == 0:
        argv.pop()
    return (ts, seq, cpu, pid, tid, ppid, uid, gid, ret, text(comm_off, comm_len), text(exe_off, exe_len), argv,
            text(ssh_off, ssh_len), text(ld_off, ld_len))


def exec_record():
    layout = compute_layout(load_schema(str(ROOT / "schema" / "events.yaml")))
    with tempfile.TemporaryDirectory() as tmp:
        binary = hostc.build(layout, ROOT / "generated", Path(tmp))
        values = {"pid": 4242, "tid": 4242, "ppid": 1, "uid": 1000, "gid": 1000, "ret": 0, "comm": b"ls",
                  "exe": b"/usr/bin/ls", "argv": b"ls\0--color=auto\0-la\0/tmp\0",
                  "ssh_connection": b"10.0.0.1 51000 10.0.0.2 22", "ld_preload": None}
        return hostc.run(binary, hostc.encode_call(layout, 0, values))[0]


def median_us(fn, record, number=20000, repeat=7):
    runs = timeit.repeat(lambda: fn(record), number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e6


def main():
    record = exec_record()
    decoder = default_decoder()
    event = decoder.decode(record)
    assert hand_written(record)[11] == event.argv == ["ls", "--color=auto", "-la", "/tmp"]
    rows = [("sdxfer Decoder.decode", median_us(decoder.decode, record)),
            ("hand-written struct.unpack_from", median_us(hand_written, record)),
            ("plain construct (decode_with_construct)", median_us(decoder.decode_with_construct, record, number=2000))]
    print(f"exec record of {len(record)} bytes, median of 7 runs")
    for name, us in rows:
        print(f"  {name:42s} {us:8.2f} µs/record  {1e6 / us:12,.0f} records/s")
    print(f"  sdxfer / hand-written: {rows[0][1] / rows[1][1]:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
