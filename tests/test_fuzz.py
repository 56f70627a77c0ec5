"""Malformed records: DecodeError with a reason, never another exception, and
nothing beyond a record's own size is ever read."""
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdxfer import DecodeError, Event
from sdxfer.record import HEADER, HEADER_OFFSETS

HEAD = {name: (HEADER_OFFSETS[name], "<" + fmt) for name, _, fmt in HEADER}


def _get(data, name: str) -> int:
    offset, fmt = HEAD[name]
    return struct.unpack_from(fmt, data, offset)[0]


def _put(data: bytearray, name: str, value: int) -> None:
    offset, fmt = HEAD[name]
    struct.pack_into(fmt, data, offset, value & ((1 << 8 * struct.calcsize(fmt)) - 1))


def _seed_records(generated):
    """Valid records of every event, with strings and lists present."""
    calls = []
    for e in generated.layout.events:
        values = {}
        for f in e.event.fields:
            kind = f.type.name
            if f.type.takes_count:
                values[f.name] = bytes(range(2 * f.entry_size))
            elif f.type.variable:
                values[f.name] = b"a\0bc\0" if kind == "strlist" else b"xyz"
            elif f.type.by_pointer:
                values[f.name] = bytes(range(f.fixed_size))
            else:
                values[f.name] = 7
        calls.append((e.index, values))
    return generated.pack(calls)


def _outcome(decoder, buf):
    try:
        return decoder.decode(buf)
    except DecodeError as exc:
        assert str(exc)
        return DecodeError
    # any other exception fails the test


def _mutations(record: bytes, rng: random.Random):
    data = bytearray(record)
    choice = rng.randrange(7)
    if choice == 0:  # flip bits
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif choice == 1:  # cut short
        del data[rng.randrange(len(data)):]
    elif choice == 2:  # random header field values
        name = rng.choice(["size", "id", "payload_off", "fingerprint", "version"])
        _put(data, name, rng.getrandbits(64))
    elif choice == 3 and len(data) > 40:  # a descriptor or fixed field overwritten
        i = rng.randrange(32, len(data) - 4)
        struct.pack_into("<I", data, i, rng.getrandbits(32))
    elif choice == 4:  # random bytes of random length
        data = bytearray(rng.randbytes(rng.randrange(0, 200)))
    elif choice == 5:  # size field grown past the buffer
        _put(data, "size", len(data) + rng.randint(1, 1000))
    else:  # said to be of a newer version, perhaps with bytes appended to the fixed part
        grow = rng.choice([0, 0, 4, 8])
        size, payload_off = _get(data, "size"), _get(data, "payload_off")
        data[payload_off:payload_off] = rng.randbytes(grow)
        _put(data, "size", size + grow)
        _put(data, "payload_off", payload_off + grow)
        _put(data, "version", _get(data, "version") + rng.randint(1, 3))
    return bytes(data)


def test_ten_thousand_malformed_records(generated):
    decoder = generated.decoder
    seeds = _seed_records(generated)
    rng = random.Random(1234)
    outcomes = {Event: 0, DecodeError: 0}
    for n in range(10_000):
        record = _mutations(rng.choice(seeds), rng)
        result = _outcome(decoder, record)
        outcomes[DecodeError if result is DecodeError else Event] += 1
        try:
            assert decoder.decode_with_construct(record) == result  # the oracle agrees
        except DecodeError:
            assert result is DecodeError
        if result is not DecodeError:
            # the answer depends on the record's own bytes only
            size = _get(record, "size")
            assert _outcome(decoder, record[:size] + rng.randbytes(rng.randrange(0, 64))) == result
    assert outcomes[DecodeError] > 1000 and outcomes[Event] > 100, outcomes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(generated, data):
    _outcome(generated.decoder, data)


def test_padding_after_the_record_is_ignored(generated):
    for record in _seed_records(generated):
        assert generated.decoder.decode(record + bytes(7)) == generated.decoder.decode(record)


@pytest.mark.parametrize("bad, reason", [
    (b"", "shorter than its 32-byte header"),
    (None, "not bytes"),
    ("text", "not bytes"),
])
def test_reasons(generated, bad, reason):
    with pytest.raises(DecodeError, match=reason):
        generated.decoder.decode(bad)


def test_reason_names_the_problem(generated):
    record = bytearray(_seed_records(generated)[0])
    _put(record, "id", 4242)
    with pytest.raises(DecodeError, match="unknown event id 4242"):
        generated.decoder.decode(bytes(record))
    record = bytearray(_seed_records(generated)[0])
    _put(record, "fingerprint", 0xDEADBEEF)
    with pytest.raises(DecodeError, match="different schemas"):
        generated.decoder.decode(bytes(record))
