"""Decoding speed in Go and in Python, in the same run: the exec record of the
shipped schema (bench/decode.py's, packed by the generated C) decoded by the
generated Go package (bench/go/decode) and by Python's Decoder.decode.

Go builds every value at once; Python's decoder builds its lists (argv,
ancestors) when first read, so it is timed both ways. Prints, for each,
records per second (wall clock) and per CPU-second (one core: every loop is
single-threaded), medians of rounds in which they take turns, and the
ratios Go / Python.

    .venv/bin/python bench/go_decode.py
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from operator import attrgetter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from decode import fixtures  # noqa: E402  (bench/decode.py's records)
from gosupport import go  # noqa: E402  (the tests' offline go command)

from sdxfer import default_decoder  # noqa: E402

ROUNDS = 7
GO_COUNT = 1_000_000
PY_COUNT = 100_000


def python_round(decode, record) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(PY_COUNT):
        decode(record)
    return (time.perf_counter() - wall) / PY_COUNT, (time.process_time() - cpu) / PY_COUNT


def go_round(binary: Path, record_file: Path) -> tuple[float, float]:
    out = subprocess.run([str(binary), str(record_file), str(GO_COUNT), "1"], capture_output=True, text=True,
                         check=True).stdout
    wall_ns, cpu_ns = map(int, out.split())
    return wall_ns / 1e9 / GO_COUNT, cpu_ns / 1e9 / GO_COUNT


def main():
    exec_record, _ = fixtures()
    decoder = default_decoder()
    with tempfile.TemporaryDirectory() as tmp:
        binary, record_file = Path(tmp) / "decode", Path(tmp) / "exec.record"
        go("build", "-o", str(binary), "./bench/go/decode")
        record_file.write_bytes(exec_record)
        lists = attrgetter("argv", "ancestors")
        rounds = [(go_round(binary, record_file), python_round(decoder.decode, exec_record),
                   python_round(lambda r: lists(decoder.decode(r)), exec_record)) for _ in range(ROUNDS)]
    print(f"exec record of {len(exec_record)} bytes, median of {ROUNDS} rounds (taking turns), {os.cpu_count()} CPUs")
    names = ["Go events.Decode", "Python Decoder.decode", "Python, argv and ancestors read"]
    for i, name in enumerate(names):
        wall = statistics.median(r[i][0] for r in rounds)
        cpu = statistics.median(r[i][1] for r in rounds)
        print(f"  {name:32s} {1 / wall:12,.0f} records/s  {1 / cpu:12,.0f} records/CPU-s  {wall * 1e9:8.0f} ns/record")
    for i in (1, 2):
        print(f"  Go / {names[i]}: {statistics.median(r[i][0] / r[0][0] for r in rounds):.1f}x records/s, "
              f"{statistics.median(r[i][1] / r[0][1] for r in rounds):.1f}x records/CPU-s")


if __name__ == "__main__":
    main()
