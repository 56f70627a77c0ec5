"""Records packed by the generated C (host build) decode to exactly the values packed."""
import ipaddress
import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostc
from sdxfer import Creds, SockAddr
from sdxfer.reassembly import is_continuation
from sdxfer.record import LEN_TRUNCATED, LEN_UNKNOWN

INT_RANGES = {"u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1),
              "s8": (-(2**7), 2**7 - 1), "s16": (-(2**15), 2**15 - 1), "s32": (-(2**31), 2**31 - 1),
              "s64": (-(2**63), 2**63 - 1), "ipv4": (0, 2**32 - 1)}


def _ints(low, high):
    return st.one_of(st.sampled_from([low, high, 0 if low <= 0 else low, -1 if low < 0 else high]), st.integers(low, high))


def _no_nul(n):
    """n bytes, no NUL, with high bytes and invalid UTF-8 in the mix."""
    return st.binary(min_size=n, max_size=n).map(lambda b: b.replace(b"\0", b"\xff"))


def _string(max_len):
    edges = [0, 1, max_len - 1, max_len, max_len + 1, max_len + 2, max_len + 40]
    length = st.one_of(st.sampled_from([n for n in edges if n >= 0]), st.integers(0, max_len + 3))
    return st.one_of(st.none(), length.flatmap(_no_nul))


def _elements(max_len):
    small = st.lists(st.one_of(st.just(b""), st.binary(max_size=12).map(lambda b: b.replace(b"\0", b" "))), max_size=12)
    # near and past the limit: many elements of one size
    big = st.tuples(st.integers(0, max(1, max_len // 4)), st.integers(1, 40)).map(
        lambda t: [bytes([65 + i % 26]) * t[0] for i in range(t[1])])
    return st.one_of(small, big)


def _field_value(f):
    kind = f.type.name
    if kind in INT_RANGES:
        return _ints(*INT_RANGES[kind])
    if kind in ("str", "ustr"):
        return _string(f.max)
    if kind == "strlist":
        # (elements, whether the last one has its NUL): None means a NULL pointer
        return st.one_of(st.none(), st.tuples(_elements(f.max), st.booleans()))
    if kind in ("blob", "ublob"):
        edges = [0, 1, f.max - 1, f.max, f.max + 1, f.max + 30]
        return st.one_of(st.none(), st.sampled_from(edges).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
    if kind == "sockaddr":
        return st.one_of(st.none(), _sockaddr())
    if kind == "array":
        entry = st.fixed_dictionaries({e.name: _entry_value(e) for e in f.entries})
        return st.one_of(st.none(), st.lists(entry, max_size=f.max + 2))
    return st.one_of(st.none(), st.binary(min_size=f.fixed_size, max_size=f.fixed_size))


def _sockaddr():
    return st.tuples(st.sampled_from([socket.AF_INET, socket.AF_INET6, 1, 0xFFFF]),
                     st.integers(0, 65535), st.binary(min_size=16, max_size=16))


def _entry_value(e):
    """An array entry's field: never absent (entries hold values, not pointers)."""
    if e.type.name in INT_RANGES:
        return _ints(*INT_RANGES[e.type.name])
    if e.type.name == "sockaddr":
        return _sockaddr()
    return st.binary(min_size=e.fixed_size, max_size=e.fixed_size)


INT_FORMATS = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "s8": "<b", "s16": "<h", "s32": "<i", "s64": "<q",
               "ipv4": "<I"}


def _wire(f, value):
    """The value as the C packer receives it."""
    if value is None:
        return None
    kind = f.type.name
    if kind == "strlist":
        elements, last_nul = value
        blob = b"".join(e + b"\0" for e in elements)
        return blob if last_nul or not blob else blob[:-1]
    if kind == "sockaddr":
        family, port, addr = value
        return struct.pack("<H", family) + struct.pack(">H", port) + addr
    if kind == "array":
        return b"".join(_entry_wire(f, entry) for entry in value)
    return value


def _entry_wire(f, entry) -> bytes:
    return b"".join(struct.pack(INT_FORMATS[e.type.name], entry[e.name]) if e.type.name in INT_FORMATS
                    else _wire(e, entry[e.name]) for e in f.entries)


def _prefix_elements(elements, last_nul, room):
    """The longest prefix of the list that fits in `room` bytes, element by element."""
    out = []
    for i, e in enumerate(elements):
        nul = 1 if (last_nul or i < len(elements) - 1) else 0
        if len(e) + nul <= room:
            out.append(e)
            room -= len(e) + nul
        else:
            if room > 0:
                out.append(e[:room])
            break
    return out


def _expected(f, value):
    """(decoded value, lost) where lost is None for an unknown amount and 0 for none."""
    kind = f.type.name
    if kind in INT_RANGES and kind != "ipv4":
        return value, 0
    if kind == "ipv4":
        return ipaddress.IPv4Address(value.to_bytes(4, "little")), 0
    if kind in ("str", "ustr"):
        if value is None:
            return None, 0
        return value[: f.max].decode("utf-8", "surrogateescape"), (None if len(value) > f.max else 0)
    if kind in ("blob", "ublob"):
        return (None, 0) if value is None else (value[: f.max], max(0, len(value) - f.max))
    if kind == "array":
        if value is None:
            return None, 0
        kept = [tuple(_expected(e, entry[e.name])[0] for e in f.entries) for entry in value[: f.max]]
        return kept, max(0, len(value) - f.max) * f.entry_size
    if kind == "chars":
        raw = bytes(f.fixed_size) if value is None else value
        return raw.split(b"\0")[0].decode("utf-8", "surrogateescape"), 0
    if kind == "strlist":
        if value is None:
            return None, 0
        elements, last_nul = value
        if not last_nul and elements and not elements[-1]:
            # an empty last element without its NUL is no bytes at all: the rest are all terminated
            elements, last_nul = elements[:-1], True
        blob = _wire(f, value)
        kept = _prefix_elements(elements, last_nul, f.max) if len(blob) > f.max else elements
        return [e.decode("utf-8", "surrogateescape") for e in kept], max(0, len(blob) - f.max)
    raw = bytes(f.fixed_size) if value is None else _wire(f, value)
    if kind == "ipv6":
        return ipaddress.IPv6Address(raw), 0
    if kind == "creds":
        return Creds(*struct.unpack("<8I", raw)), 0
    if kind == "sockaddr":
        if not any(raw):
            return None, 0  # all zero: absent
        family, port = struct.unpack_from("<H", raw)[0], struct.unpack_from(">H", raw, 2)[0]
        address = {socket.AF_INET: lambda: ipaddress.IPv4Address(raw[4:8]),
                   socket.AF_INET6: lambda: ipaddress.IPv6Address(raw[4:20])}.get(family, lambda: None)()
        return SockAddr(family, port, address), 0
    return raw, 0


def _payload_bytes(f, value):
    if value is None:
        return 0
    wire = _wire(f, value)
    return min(len(wire), f.max_bytes)


@st.composite
def calls(draw, layout):
    out = []
    for _ in range(draw(st.integers(1, 4))):
        e = draw(st.sampled_from(layout.events))
        out.append((e.index, {f.name: draw(_field_value(f)) for f in e.event.fields}))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(data=st.data())
def test_round_trip(generated, data):
    layout = generated.layout
    batch = data.draw(calls(layout))
    records = generated.pack([(i, {k: _wire(f, v) for f, (k, v) in zip(layout.events[i].event.fields, values.items())})
                              for i, values in batch])
    # a field beyond its max (and within its total) goes on in continuation
    # records, numbered as any: each call's own record, with its number
    numbered = [(seq, record) for seq, record in enumerate(records) if not is_continuation(record)]
    assert len(numbered) == len(batch)
    for (index, values), (seq, record) in zip(batch, numbered):
        e = layout.events[index]
        event = generated.decoder.decode(record)
        assert event == generated.decoder.decode_with_construct(record)
        assert (event.name, event.id, event.timestamp_ns, event.cpu, event.seq) == (
            e.event.name, e.event.id, hostc.HOST_NOW_NS, hostc.HOST_CPU, seq)
        expected_lost = {}
        for f in e.event.fields:
            want, lost = _expected(f, values[f.name])
            assert event.value(f.name) == want, f.name
            if lost != 0:
                expected_lost[f.name] = lost
        assert dict(event.lost) == expected_lost
        assert event.truncated == tuple(f.name for f in e.event.fields if f.name in expected_lost)
        # the record ends where its payload does: nothing stale is sent
        assert len(record) == e.payload_off + sum(_payload_bytes(v.field, values[v.field.name]) for v in e.variables)


def test_length_unknown_beyond_max(generated):
    """A probe that only knows "more than max" passes SDXFER_LEN_UNKNOWN: max bytes are kept, loss unknown."""
    checked = 0
    for e in generated.layout.events:
        for f in (f for f in e.event.fields if f.type.takes_length):
            values = {g.name: _wire(g, None) if g.type.variable or g.type.by_pointer
                      else 0 for g in e.event.fields}
            elements = [b"x"] * f.max
            values[f.name] = (b"x\0" * f.max, LEN_UNKNOWN)
            event = generated.decoder.decode(generated.pack([(e.index, values)])[0])
            assert event.lost == {f.name: None} and event.truncated == (f.name,)
            if f.type.name == "strlist":
                assert event.value(f.name) == [x.decode() for x in _prefix_elements(elements, True, f.max)]
            else:
                assert event.value(f.name) == (b"x\0" * f.max)[: f.max]
            # SDXFER_LEN_TRUNCATED: all bytes given are kept, and the record says more existed
            values[f.name] = (b"y\0", 2 | LEN_TRUNCATED)
            event = generated.decoder.decode(generated.pack([(e.index, values)])[0])
            assert event.lost == {f.name: None}
            assert event.value(f.name) == (["y"] if f.type.name == "strlist" else b"y\0")[: f.max]
            checked += 1
    assert checked


def test_value_the_probe_could_not_tell(generated):
    """SDXFER_UNKNOWN: absent, and truncated by an unknown amount."""
    for e in generated.layout.events:
        variables = [f for f in e.event.fields if f.type.variable]
        if not variables:
            continue
        values = {g.name: hostc.UNKNOWN if g.type.variable else (
            bytes(g.fixed_size) if g.type.by_pointer else 0) for g in e.event.fields}
        event = generated.decoder.decode(generated.pack([(e.index, values)])[0])
        assert all(event.value(f.name) is None for f in variables)
        assert event.lost == {f.name: None for f in variables}


def test_array_counts_the_probe_cannot_give_exactly(generated):
    """An entry count of SDXFER_LEN_UNKNOWN keeps max entries; or'ed with
    SDXFER_LEN_TRUNCATED it keeps those given; both say truncated, amount unknown."""
    checked = 0
    for e in generated.layout.events:
        for f in (f for f in e.event.fields if f.type.takes_count):
            values = {g.name: None if g.type.variable or g.type.by_pointer else 0 for g in e.event.fields}
            entry = bytes(range(1, f.entry_size + 1))
            values[f.name] = (entry * (f.max + 1), LEN_UNKNOWN)
            event = generated.decoder.decode(generated.pack([(e.index, values)])[0])
            assert (len(event.value(f.name)), event.lost) == (f.max, {f.name: None})
            values[f.name] = (entry, 1 | LEN_TRUNCATED)
            event = generated.decoder.decode(generated.pack([(e.index, values)])[0])
            assert (len(event.value(f.name)), event.lost) == (1, {f.name: None})
            checked += 1
    assert checked or not any(f.type.takes_count for e in generated.layout.events for f in e.event.fields)
