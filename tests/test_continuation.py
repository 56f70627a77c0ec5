"""Fields beyond one record: the host-C packers' continuation records, reassembled.

Records come from the generated header compiled as host C; the reassembler
gets them lost, reordered and duplicated, and must give back either the exact
value or an exactly flagged prefix, never bytes spliced over a gap.
"""
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Generated
from sdxfer import record
from sdxfer.reassembly import Reassembler, is_continuation

SCHEMA = Path(__file__).resolve().parent / "schemas" / "spans.yaml"
ARGV_MAX, ARGV_TOTAL, DATA_MAX, DATA_TOTAL = 64, 3000, 32, 1000
CHUNK = record.continuation_chunk(512)


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    return Generated(SCHEMA, tmp_path_factory.mktemp("spans"))


def _pack(spans, argv: bytes, data: bytes | None, n=1, argv_len=None):
    values = {"n": n, "argv": (argv, len(argv) if argv_len is None else argv_len), "data": data}
    return spans.pack([(0, values)])


def _argv_bytes(sizes):
    return b"".join(bytes([65 + i % 26]) * size + b"\0" for i, size in enumerate(sizes))


def _expected_list(raw: bytes):
    items = raw.decode("utf-8", "surrogateescape").split("\0")
    if raw and raw[-1] == 0:
        items.pop()
    return items if raw else []


def _feed_all(reassembler, records):
    out = []
    for rec in records:
        out += reassembler.feed(rec)
    return out + reassembler.flush()


def test_ordinary_values_send_one_record(spans):
    records = _pack(spans, _argv_bytes([10, 20]), b"x" * DATA_MAX)
    assert len(records) == 1
    [event] = _feed_all(Reassembler(spans.decoder), records)
    assert event.argv == ["A" * 10, "B" * 20] and event.data == b"x" * DATA_MAX and event.truncated == ()


def test_continuations_carry_the_rest_linked_by_cpu_seq_and_offset(spans):
    argv = _argv_bytes([400, 700])
    records = _pack(spans, argv, bytes(range(256)) * 2)
    parent, conts = records[0], records[1:]
    assert all(is_continuation(c) for c in conts) and not is_continuation(parent)
    # the record alone: the field marked incomplete, by exactly the bytes that follow
    alone = spans.decoder.decode(parent)
    assert alone.lost == {"argv": len(argv) - ARGV_MAX, "data": 512 - DATA_MAX}
    fields = [struct.unpack_from(record.CONTINUATION_FORMAT, c) for c in conts]
    head_seq = alone.seq
    for values, raw in zip(fields, conts):
        parent_seq, offset, field, flags = values[8], values[9], values[12], values[13]
        assert parent_seq == head_seq and values[6] == alone.cpu
        assert len(raw) - record.CONTINUATION_PAYLOAD_OFF <= CHUNK
        assert field in (1, 2) and offset >= (ARGV_MAX if field == 1 else DATA_MAX)
    assert sum(1 for v in fields if v[13] & record.CONTINUATION_LAST) == 2
    [event] = _feed_all(Reassembler(spans.decoder), records)
    assert event.argv == _expected_list(argv) and event.data == bytes(range(256)) * 2
    assert event.truncated == () and event.lost == {}


def test_beyond_total_is_cut_and_counted_exactly(spans):
    argv = _argv_bytes([ARGV_TOTAL + 500])
    [event] = _feed_all(Reassembler(spans.decoder), _pack(spans, argv, None))
    assert event.argv == [("A" * ARGV_TOTAL)] and event.lost == {"argv": len(argv) - ARGV_TOTAL}
    assert event.data is None


def test_length_truncated_by_the_probe_stays_unknown(spans):
    argv = _argv_bytes([300])
    [event] = _feed_all(Reassembler(spans.decoder), _pack(spans, argv, None, argv_len=len(argv) | record.LEN_TRUNCATED))
    assert event.argv == ["A" * 300] and event.lost == {"argv": None}


def test_unknown_length_sends_an_empty_last_continuation(spans):
    records = _pack(spans, _argv_bytes([ARGV_MAX]), None, argv_len=record.LEN_UNKNOWN)
    assert len(records) == 2 and len(records[1]) == record.CONTINUATION_PAYLOAD_OFF
    [event] = _feed_all(Reassembler(spans.decoder), records)
    assert event.lost == {"argv": None} and len("".join(event.argv)) == ARGV_MAX


def _sizes():
    return st.lists(st.integers(0, 900), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=_sizes(), data_len=st.one_of(st.none(), st.integers(0, DATA_TOTAL + 50)),
       drop=st.sets(st.integers(0, 40), max_size=3), dup=st.sets(st.integers(0, 40), max_size=3),
       order=st.randoms(use_true_random=False), parent_last=st.booleans())
def test_round_trip_with_continuations_lost_reordered_duplicated(spans, sizes, data_len, drop, dup, order, parent_last):
    argv = _argv_bytes(sizes)
    data = None if data_len is None else bytes((i * 7) % 256 for i in range(data_len))
    parent, *conts = _pack(spans, argv, data)
    kept = [c for i, c in enumerate(conts) if i not in drop] + [c for i, c in enumerate(conts) if i in dup]
    order.shuffle(kept)
    stream = kept + [parent] if parent_last else [parent] + kept
    reassembler = Reassembler(spans.decoder)
    [event] = _feed_all(reassembler, stream)
    assert reassembler.pending == 0 and reassembler.pending_bytes == 0
    for name, raw, total, record_max in (("argv", argv, ARGV_TOTAL, ARGV_MAX), ("data", data, DATA_TOTAL, DATA_MAX)):
        value = event.value(name)
        if raw is None:
            assert value is None and name not in event.lost
            continue
        # the value is exactly the first `kept` bytes, and lost says exactly how many did not arrive
        kept = len(raw) - event.lost.get(name, 0)
        assert min(len(raw), record_max) <= kept <= min(len(raw), total)
        assert value == (_expected_list(raw[:kept]) if name == "argv" else raw[:kept])
        assert (name in event.truncated) == (kept < len(raw))
        if not drop:
            assert kept == min(len(raw), total)


def test_interleaved_cpus_and_events_reassemble_separately(spans):
    first = _pack(spans, _argv_bytes([500]), None, n=1)
    second = _pack(spans, _argv_bytes([800]), None, n=2)
    # as if packed on another CPU: same sequence numbers, another cpu
    second = [_with_cpu(r, 5) for r in second]
    stream = [x for pair in zip(first, second) for x in pair] + first[len(second):] + second[len(first):]
    events = _feed_all(Reassembler(spans.decoder), stream)
    assert sorted((e.n, e.argv, e.truncated) for e in events) == [(1, ["A" * 500], ()), (2, ["A" * 800], ())]


def _with_cpu(rec, cpu):
    raw = bytearray(rec)
    struct.pack_into("<H", raw, record.HEADER_OFFSETS["cpu"], cpu)
    return bytes(raw)


def test_age_limit_delivers_once_flagged(spans):
    parent, *conts = _pack(spans, _argv_bytes([1000]), None)
    reassembler = Reassembler(spans.decoder, max_age_ns=1000)
    assert reassembler.feed(parent, now_ns=0) == []
    assert reassembler.feed(conts[0], now_ns=500) == []
    assert reassembler.expire(1000) == []
    [event] = reassembler.expire(1001)
    assert event.lost == {"argv": 1001 - ARGV_MAX - CHUNK} and event.argv == ["A" * (ARGV_MAX + CHUNK)]
    assert reassembler.stats.incomplete == 1 and reassembler.expire(10**12) == [] and reassembler.flush() == []
    # what comes later for it is an orphan, dropped once its own age passes
    assert reassembler.feed(conts[1], now_ns=2000) == [] and reassembler.expire(10**6) == []
    assert reassembler.stats.orphans == 1


def test_pending_bytes_limit_evicts_the_oldest(spans):
    first = _pack(spans, _argv_bytes([1000]), None, n=1)
    second = [_with_cpu(r, 1) for r in _pack(spans, _argv_bytes([1000]), None, n=2)]
    reassembler = Reassembler(spans.decoder, max_pending_bytes=1100)
    out = reassembler.feed(first[0]) + reassembler.feed(first[1]) + reassembler.feed(second[0])
    out += reassembler.feed(second[1])
    assert reassembler.pending_bytes == 2 * (ARGV_MAX + CHUNK)
    assert (reassembler.pending, reassembler.pending_parts) == (2, 4)  # two events, a chunk each
    assert out == []
    out = reassembler.feed(second[2])
    assert out == []
    out = reassembler.feed(second[3])  # 4 * 320 held: over the limit
    assert [e.n for e in out] == [1] and out[0].truncated == ("argv",)
    assert reassembler.stats.evicted == 1 and reassembler.pending_bytes <= 1100
    rest = _feed_all(reassembler, second[4:] + first[2:])
    assert [(e.n, e.truncated) for e in rest] == [(2, ())]
    assert reassembler.stats.orphans == len(first) - 2


_NAMES = [name for name, _, _ in record.HEADER] + [name for name, _, _ in record.CONTINUATION]


def _fields_of(continuation: bytes) -> dict:
    return dict(zip(_NAMES, struct.unpack_from(record.CONTINUATION_FORMAT, continuation)))


def _continuation(fields: dict, payload: bytes = b"") -> bytes:
    return struct.pack(record.CONTINUATION_FORMAT, *(fields[name] for name in _NAMES)) + payload


def _split(continuation: bytes, size: int) -> list[bytes]:
    """A continuation record cut into records of `size` payload bytes each (the last keeps its flags)."""
    fields = _fields_of(continuation)
    payload = continuation[record.CONTINUATION_PAYLOAD_OFF:fields["size"]]
    return [_continuation({**fields, "size": record.CONTINUATION_PAYLOAD_OFF + len(payload[at:at + size]),
                           "offset": fields["offset"] + at,
                           "flags": fields["flags"] if at + size >= len(payload) else 0}, payload[at:at + size])
            for at in range(0, len(payload), size)]


def test_a_field_of_thousands_of_chunks_reassembles_in_any_order(spans):
    """One-byte chunks, in order and last first: the field's bytes are joined once, at the end."""
    argv = _argv_bytes([1400, 1500])
    parent, *conts = _pack(spans, argv, None)
    chunks = [piece for c in conts for piece in _split(c, 1)]
    assert len(chunks) > 2800
    for order in (chunks, chunks[::-1]):
        [event] = _feed_all(Reassembler(spans.decoder), [parent, *order])
        assert event.argv == _expected_list(argv) and event.truncated == ()


def _relabelled(rec: bytes, name: str, value: int) -> bytes:
    raw = bytearray(rec)
    struct.pack_into("<" + dict((n, f) for n, _, f in record.HEADER)[name], raw, record.HEADER_OFFSETS[name], value)
    return bytes(raw)


@pytest.mark.parametrize("name, value", [("fingerprint", 0xDEADBEEF), ("version", 77)])
def test_a_continuation_of_another_lineage_or_version_is_rejected(spans, name, value):
    parent, *conts = _pack(spans, _argv_bytes([1000]), None)
    reassembler = Reassembler(spans.decoder)
    [event] = _feed_all(reassembler, [parent, _relabelled(conts[0], name, value), *conts[1:]])
    assert event.truncated == ("argv",) and event.argv == ["A" * ARGV_MAX]
    assert reassembler.stats.rejected == 1


def test_chunks_of_no_bytes_are_bounded_in_number(spans):
    """Orphans that carry nothing hold no bytes but still cost memory: the
    events and chunks held stay within max_pending_parts, the oldest given up first."""
    _, first, *_ = _pack(spans, _argv_bytes([1000]), None)
    empty = {**_fields_of(first), "size": record.CONTINUATION_PAYLOAD_OFF}
    reassembler = Reassembler(spans.decoder, max_pending_parts=100)
    for seq in range(5000):
        assert reassembler.feed(_continuation({**empty, "parent_seq": 10**6 + seq})) == []
        assert reassembler.pending_parts <= 100 and reassembler.pending_bytes == 0
    assert reassembler.stats.orphans > 4900 and reassembler.pending <= 50
    assert Reassembler(spans.decoder).max_pending_parts == record.REASSEMBLY_MAX_PARTS


def test_a_plain_decoder_reads_events_that_never_span(spans):
    [rec] = spans.pack([(1, {"tag": b"hi"})])
    assert Reassembler(spans.decoder).feed(rec)[0].tag == "hi"


def test_sdxfer_decode_reassembles_a_file(spans, tmp_path, capsys):
    import json

    from sdxfer.cli import main

    records = _pack(spans, _argv_bytes([2000]), b"z" * 600)
    path = tmp_path / "records.bin"
    path.write_bytes(b"".join(records))
    assert main(["decode", "--schema", str(SCHEMA), str(path)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert event["argv"] == ["A" * 2000] and event["data"] == (b"z" * 600).hex() and event["truncated"] == []
    # its first continuation lost: the record's part only, never bytes spliced over the gap
    path.write_bytes(records[0] + b"".join(records[2:]))
    assert main(["decode", "--schema", str(SCHEMA), str(path)]) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["truncated"] == ["argv"] and event["lost"]["argv"] == 2001 - ARGV_MAX
    with pytest.raises(SystemExit) as stopped:
        main(["decode", "--max-age-ms", "-1", str(path)])
    assert stopped.value.code == 2 and "--max-age-ms: '-1' is not a whole number >= 0" in capsys.readouterr().err


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzzed_streams_raise_only_decode_errors(spans, data):
    """Flipped bytes and cut records in a stream of continuations: a DecodeError or events, nothing else."""
    from sdxfer import DecodeError

    records = [bytearray(r) for r in _pack(spans, _argv_bytes([700]), b"q" * 300)]
    for _ in range(data.draw(st.integers(1, 6))):
        rec = records[data.draw(st.integers(0, len(records) - 1))]
        at = data.draw(st.integers(0, len(rec) - 1))
        rec[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(records) - 1))
        records[cut] = records[cut][: data.draw(st.integers(0, len(records[cut])))]
    reassembler = Reassembler(spans.decoder, max_pending_bytes=data.draw(st.integers(0, 4000)))
    for rec in records:
        try:
            for event in reassembler.feed(bytes(rec)):
                event.to_dict()
        except DecodeError:
            pass
    for event in reassembler.flush():
        event.to_dict()
    assert reassembler.pending == 0 and reassembler.pending_bytes == 0
