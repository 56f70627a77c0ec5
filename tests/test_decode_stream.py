"""`sdxfer decode` on hostile input: garbage between records, a cut tail,
devices that never end, inputs far larger than memory should hold."""
import io
import itertools
import json
import os
import random
import struct
import subprocess
import sys
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from sdxfer import Reassembler
from sdxfer.cli import main as sdxfer_main
from sdxfer.runtime.record import HEADER_OFFSETS, HEADER_SIZE, MAX_SLOT_SIZE
from sdxfer.stream.records import iter_reassembled
from test_continuation import SCHEMA as SPANS_SCHEMA, _argv_bytes, _pack, spans  # noqa: F401  (spans is a fixture)
from test_driver import call

SDXFER = [sys.executable, "-m", "sdxfer.cli", "decode"]
GUARD_S = 60  # a hang fails the test instead of stopping the run


def _three(generated) -> list[bytes]:
    e = generated.layout.events[0].event.name
    return generated.pack([call(generated, e)] * 3)


def _lines(decoder, records) -> list[str]:
    """What decoding these records gives: to_dict() as JSON, one event a line."""
    reassembler = Reassembler(decoder)
    events = [event for rec in records for event in reassembler.feed(rec)] + reassembler.flush()
    return [json.dumps(event.to_dict()) for event in events]


def _decode(generated, path, capsys):
    code = sdxfer_main(["decode", str(path), "--schema", str(generated.schema)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def _garbage(generated) -> bytes:
    """Bytes with no plausible header: a header of size 0, one with a known
    fingerprint and a wrong id, one of a known event whose size is too large, noise."""
    cls = next(iter(generated.decoder.events.values()))
    ids = {c.id for c in generated.decoder.events.values()}
    unknown_id = next(i for i in range(1, 1 << 16) if i not in ids)
    zero_size = bytes(HEADER_SIZE)
    wrong_id = bytearray(HEADER_SIZE)
    struct.pack_into("<IIH", wrong_id, HEADER_OFFSETS["size"], 100, cls.fingerprint, unknown_id)
    too_large = bytearray(HEADER_SIZE)
    struct.pack_into("<IIHH", too_large, HEADER_OFFSETS["size"], MAX_SLOT_SIZE + 1, cls.fingerprint, cls.id,
                     cls.versions[0].payload_off)
    struct.pack_into("<H", too_large, HEADER_OFFSETS["version"], 1)
    return zero_size + bytes(wrong_id) + bytes(too_large) + random.Random(7).randbytes(333)


def test_garbage_between_records_is_skipped_and_named(generated, tmp_path, capsys):
    a, b, c = _three(generated)
    garbage = _garbage(generated)
    path = tmp_path / "records.bin"
    path.write_bytes(a + garbage + b + b"\xff" * 5 + c)
    code, out, err = _decode(generated, path, capsys)
    assert code == 1
    assert out == _lines(generated.decoder, [a, b, c])  # the good records, as a clean file gives them
    assert err[0] == (f"sdxfer decode: {path}: skipped {len(garbage)} bytes at offset {len(a)}:"
                      " continuation record: fingerprint 0x00000000 is no known event's")
    assert err[1].startswith(f"sdxfer decode: {path}: skipped 5 bytes at offset {len(a) + len(garbage) + len(b)}: ")
    assert len(err) == 2
    path.write_bytes(a + b + c)
    assert _decode(generated, path, capsys) == (0, _lines(generated.decoder, [a, b, c]), [])


def test_a_cut_tail_is_skipped_after_the_records_before_it(generated, tmp_path, capsys):
    a, b, c = _three(generated)
    path = tmp_path / "records.bin"
    for tail, reason in ((c[:-1], f"a record of {len(c)} bytes, only {len(c) - 1} left"),
                         (c[:HEADER_SIZE - 1], f"{HEADER_SIZE - 1} bytes, fewer than a header's {HEADER_SIZE}")):
        path.write_bytes(a + b + tail)
        assert _decode(generated, path, capsys) == (
            1, _lines(generated.decoder, [a, b]),
            [f"sdxfer decode: {path}: skipped {len(tail)} bytes at offset {len(a) + len(b)}: {reason}"])


def test_continuations_past_garbage_still_complete_their_event(spans, tmp_path, capsys):
    records = _pack(spans, _argv_bytes([2000]), b"z" * 600)
    assert len(records) > 2
    path = tmp_path / "records.bin"
    path.write_bytes(records[0] + b"\xee" * 50 + b"".join(records[1:]))
    assert sdxfer_main(["decode", str(path), "--schema", str(SPANS_SCHEMA)]) == 1
    out, err = capsys.readouterr()
    [event] = [json.loads(line) for line in out.splitlines()]
    assert event["argv"] == ["A" * 2000] and event["truncated"] == []
    assert err.startswith(f"sdxfer decode: {path}: skipped 50 bytes at offset {len(records[0])}: ")


def test_devices_and_folders_are_refused_unless_on_standard_input(tmp_path):
    for name in ("/dev/zero", "/dev/urandom", str(tmp_path)):
        done = subprocess.run(SDXFER + [name], capture_output=True, text=True, timeout=GUARD_S, cwd=ROOT)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr == (f"sdxfer decode: {name} is not a regular file; to read it as a stream,"
                               f" give it on standard input: sdxfer decode - < {name}\n")


def _max_rss_kib(command: list[str], feed=None):
    """Run a decode; its peak resident memory (KiB), exit code and stderr lines.
    `feed`: pieces of bytes a thread writes to its standard input."""
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL if feed is None else subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    writer = None
    if feed is not None:
        def write():
            with proc.stdin:
                for piece in feed:
                    proc.stdin.write(piece)
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
    timer = threading.Timer(GUARD_S, proc.kill)
    timer.start()
    try:
        with proc.stderr:
            err = proc.stderr.read()  # until it exits: a few lines at most
        _, status, usage = os.wait4(proc.pid, 0)  # its own peak, not other children's
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if writer:
        writer.join()
    return usage.ru_maxrss, proc.returncode, err.decode().splitlines()


def test_memory_stays_bounded_for_a_huge_file_and_standard_input(generated, tmp_path):
    """256 MiB of zeros between two records, in a (sparse) file and through a
    pipe: peak memory stays near a small file's, and both records come out."""
    a, b, _ = _three(generated)
    small = tmp_path / "small.bin"
    small.write_bytes(a + b)
    schema = ["--schema", str(generated.schema)]
    baseline, code, err = _max_rss_kib(SDXFER + [str(small)] + schema)
    assert (code, err) == (0, [])
    zeros = 256 << 20
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:
        f.write(a)
        f.seek(len(a) + zeros)
        f.write(b)
    piece = 1 << 20
    pipe = itertools.chain([a], itertools.repeat(bytes(piece), zeros // piece), [b])
    for name, feed in ((str(huge), None), ("-", pipe)):
        peak, code, err = _max_rss_kib(SDXFER + [name] + schema, feed)
        assert peak < baseline + 64 * 1024, (name, peak, baseline)  # KiB: a whole-input read takes it all
        assert code == 1 and len(err) == 1 and f": skipped {zeros} bytes at offset {len(a)}: " in err[0], err


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_garbage_anywhere_between_records_is_exactly_what_is_skipped(generated, data):
    records = _three(generated) * 2
    stream, expected = b"", []
    for rec in records:
        garbage = data.draw(st.binary(max_size=300))
        if garbage:
            expected.append((len(stream), len(garbage)))
        stream += garbage + rec
    skips = []
    events = iter_reassembled(generated.decoder, io.BytesIO(stream).read1, lambda at, n, why: skips.append((at, n)))
    assert [json.dumps(e.to_dict()) for e in events] == _lines(generated.decoder, records)
    assert skips == expected
