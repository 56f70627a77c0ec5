"""The fast read path, checked against the plain one: lists decoded on first
read equal to eager decoding, a batch decoded at once equal to one record at
a time (events, errors, and Sensor's counts), sequence gaps counted in one
step equal to counting them record by record."""
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdxfer import DecodeError, ProbeError, readers
from sdxfer import _runtime as rt
from sdxfer.reassembly import Reassembler
from sdxfer.record import HEADER_OFFSETS
from sdxfer.sensor import SensorStats, StreamDecoder
from test_continuation import _argv_bytes, _pack, spans  # noqa: F401  (spans is a fixture)
from test_fuzz import _mutations, _put, _seed_records

DEFERRABLE = ("strlist", "array")
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _deferrable_fields(event):
    return [(i, f) for i, (f, kind) in enumerate(zip(event.fields, event.kinds)) if kind in DEFERRABLE]


class Failure(str):
    """What DecodeError said."""


def _outcome(decode, record):
    try:
        return decode(record)
    except DecodeError as exc:
        return Failure(exc)


def _renumbered(record: bytes, cpu: int, seq: int) -> bytes:
    data = bytearray(record)
    if len(data) >= 32:
        _put(data, "cpu", cpu)
        _put(data, "seq", seq)
    return bytes(data)


@st.composite
def record_batches(draw, seeds, extra=()):
    """Valid records, malformed ones (test_fuzz's mutations) and `extra`, with
    CPUs and sequence numbers that run on, jump, repeat and go back."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    pool = list(seeds) + list(extra)
    batch, seq = [], {0: 0, 1: 0}
    for _ in range(draw(st.integers(0, 40))):
        record = rng.choice(pool)
        if rng.random() < 0.2:
            record = _mutations(record, rng)
        cpu = rng.choice((0, 1))
        seq[cpu] += rng.choice((1, 1, 1, 2, 7, 0, -3))
        batch.append(_renumbered(record, cpu, max(seq[cpu], 0)))
    return batch


def test_lists_are_decoded_when_first_read(generated):
    decoder = generated.decoder
    for record in _seed_records(generated):
        event, eager = decoder.decode(record), decoder.decode_with_construct(record)
        for index, field in _deferrable_fields(event):
            assert isinstance(event[4 + index], rt.Deferred)
            value = event.value(field)
            assert type(value) is list and value == eager.value(field)
            assert event.value(field) is value  # decoded once, the same list ever after
            if field != "name":
                assert getattr(event, field) is value
        assert event == eager and eager == event
        assert repr(event) == repr(eager) and event.to_dict() == eager.to_dict()


def test_a_reused_buffer_does_not_change_decoded_lists(generated):
    decoder = generated.decoder
    for record in _seed_records(generated):
        buffer = bytearray(record)
        event = decoder.decode(memoryview(buffer))
        buffer[:] = bytes(len(buffer))  # the reader's buffer, reused before the lists are read
        assert event == decoder.decode(record)


@SETTINGS
@given(data=st.data())
def test_lists_of_any_record_that_decodes_read_as_the_oracle_gives(generated, data):
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    record = _mutations(rng.choice(_seed_records(generated)), rng)
    try:
        event = generated.decoder.decode(record)
    except DecodeError:
        return
    eager = generated.decoder.decode_with_construct(record)
    for _, field in _deferrable_fields(event):
        assert event.value(field) == eager.value(field)  # reading never raises


@SETTINGS
@given(data=st.data())
def test_decode_many_is_decode_of_each(generated, data):
    decoder = generated.decoder
    batch = data.draw(record_batches(_seed_records(generated)))
    one_by_one = [_outcome(decoder.decode, record) for record in batch]
    failed = [i for i, outcome in enumerate(one_by_one) if isinstance(outcome, Failure)]
    if failed:
        first = failed[0]
        with pytest.raises(DecodeError) as raised:
            decoder.decode_many(batch)
        assert str(raised.value) == f"record {first}: {one_by_one[first]}"
    else:
        assert decoder.decode_many(batch) == one_by_one
        assert decoder.decode_many(iter(batch)) == one_by_one  # any iterable


def test_decode_run_stops_at_what_it_has_no_decoder_for(generated):
    decoder = generated.decoder
    seeds = _seed_records(generated)
    first_id = struct.unpack_from("<H", seeds[0], HEADER_OFFSETS["id"])[0]
    events = []
    # the first record's event left out of the dispatch: the run stops at once
    assert decoder.decode_run(seeds, 0, events, decoder.dispatch(excluding={first_id})) == 0 and events == []
    # it starts where it is told and stops at a record shorter than a header
    assert decoder.decode_run(seeds + [b"short"], 1, events, decoder.dispatch()) == len(seeds)
    assert events == [decoder.decode(r) for r in seeds[1:]]


@SETTINGS
@given(start=st.one_of(st.none(), st.integers(0, 50)), steps=st.lists(st.integers(-5, 9), min_size=1, max_size=30))
def test_sequence_gaps_counted_in_one_step_as_one_by_one(start, steps):
    seqs, at = [], start if start is not None else 10
    for step in steps:
        at = max(at + step, 0)
        seqs.append(at)
    one, batch = SensorStats(), SensorStats()
    for stats in (one, batch):
        if start is not None:
            stats.note_sequence(3, start)
    for seq in seqs:
        one.note_sequence(3, seq)
    batch.note_sequences(3, seqs)
    assert batch.sequence_gaps == one.sequence_gaps
    assert batch._last_seq == one._last_seq


def _stream(decoder):
    return StreamDecoder(decoder, SensorStats(decoder.events), Reassembler(decoder, keep_raw=True))


def _decoded_in_batches(decoder, records, sizes):
    stream, events, raws, at = _stream(decoder), [], [], 0
    for size in sizes:
        got, got_raws = stream.decode(records[at:at + size])
        events += got
        raws += got_raws
        at += size
    flushed, flushed_raws = stream.settle(final=True)
    return events + flushed, raws + flushed_raws, stream.stats.to_dict(), stream.reassembler.stats.to_dict()


def _check_batches_as_one_by_one(decoder, records, rng):
    one_by_one = _decoded_in_batches(decoder, records, [1] * len(records))
    sizes, left = [], len(records)
    while left:
        sizes.append(rng.randint(1, left))
        left -= sizes[-1]
    assert _decoded_in_batches(decoder, records, sizes) == one_by_one
    assert _decoded_in_batches(decoder, records, [len(records)]) == one_by_one


@SETTINGS
@given(data=st.data())
def test_stream_decoder_counts_a_batch_as_one_record_at_a_time(generated, data):
    batch = data.draw(record_batches(_seed_records(generated)))
    _check_batches_as_one_by_one(generated.decoder, batch, random.Random(data.draw(st.integers(0, 2**32))))


@SETTINGS
@given(data=st.data())
def test_stream_decoder_with_spanning_events_and_continuations(spans, data):  # noqa: F811
    records = _pack(spans, _argv_bytes([400, 700]), bytes(range(256)) * 2)
    records += _pack(spans, _argv_bytes([5]), b"x", n=2)
    assert len(records) > 3  # continuation records among them
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    batch = [rng.choice(records) if rng.random() < 0.2 else r for r in records]
    _check_batches_as_one_by_one(spans.decoder, batch, rng)


def test_the_readers_refuse_a_machine_they_cannot_read_shared_memory_on_soundly(monkeypatch):
    monkeypatch.setattr(readers.platform, "machine", lambda: "aarch64")
    with pytest.raises(ProbeError, match="^sdxfer's buffer readers rely on x86-64 memory ordering; this machine is"
                                         " aarch64$"):
        readers.check_machine()
