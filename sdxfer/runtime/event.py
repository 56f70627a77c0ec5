"""What generated decoders call: value types, field readers, the Event base
(re-exported, with the API version check, by sdxfer.runtime)."""
from __future__ import annotations

import ipaddress
import socket
import struct
from collections import namedtuple
from functools import partial
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Callable, NamedTuple, NoReturn

from construct import Array, Bytes, ConstructError, Int16ub, Int16ul, Int32ul, Int64ul, Struct

from ..errors import DecodeError
from .record import (CREDS_MEMBERS, DESCRIPTOR, HEADER, HEADER_SIZE, LOST_UNKNOWN, SOCKADDR_SIZE,
                     VARIABLE_DECODING)

NO_LOSS = MappingProxyType({})
# Variable fields whose value is a list of objects, costly to build: decoded
# on first read (Deferred). Text and bytes are one object each, built at once.
DEFERRED_DECODINGS = frozenset({"list", "entries"})

_CONSTRUCT_INT = {"Q": Int64ul, "I": Int32ul, "H": Int16ul}
HEAD = Struct(*(name / _CONSTRUCT_INT[fmt] for name, _, fmt in HEADER))
VAR = Struct(*(name / _CONSTRUCT_INT[fmt] for name, _, fmt in DESCRIPTOR))
SOCKADDR = Struct("family" / Int16ul, "port" / Int16ub, "addr" / Bytes(SOCKADDR_SIZE - 4))
CREDS = Struct(*(name / Int32ul for name in CREDS_MEMBERS))


class SockAddr(NamedTuple):
    family: int
    port: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # None for other families


Creds = NamedTuple("Creds", [(name, int) for name in CREDS_MEMBERS])


def ipv4(raw: bytes) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(raw)


def ipv6(raw: bytes) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(raw)


def sockaddr(raw: bytes) -> SockAddr | None:
    """An address; None (absent) for all zero bytes: no address at all."""
    if not any(raw):
        return None
    family = raw[0] | raw[1] << 8
    port = raw[2] << 8 | raw[3]
    if family == socket.AF_INET:
        return SockAddr(family, port, ipaddress.IPv4Address(raw[4:8]))
    if family == socket.AF_INET6:
        return SockAddr(family, port, ipaddress.IPv6Address(raw[4:20]))
    return SockAddr(family, port, None)


def creds(raw: bytes) -> Creds:
    return Creds(*(int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)))


def chars(raw: bytes) -> str:
    """Fixed-length text: everything before the first NUL."""
    return str(raw.split(b"\0", 1)[0], "utf-8", "surrogateescape")


class EntryType:
    """The entries of one array field: a NamedTuple class per entry, the
    struct format of one entry and the generated function that builds the
    entries from its rows (fast path), its construct Struct (oracle)."""

    def __init__(self, field: str, class_name: str, names: tuple[str, ...], kinds: tuple[str, ...], fmt: str,
                 construct: Struct, rows: Callable[[Callable, Any], list]):
        self.field = field
        self.cls = namedtuple(class_name, names)
        self.struct = struct.Struct(fmt)
        self.construct = construct
        self.kinds = kinds
        self._rows = rows  # (new, struct rows) -> entries, each row's values converted
        # the NamedTuple from a tuple of values, without _make's Python-level call
        self._new = partial(tuple.__new__, self.cls)

    def bad_length(self, length: int) -> NoReturn:
        raise DecodeError(f"field {self.field}: {length} bytes is not a whole number of"
                          f" {self.struct.size}-byte entries")

    def decode(self, data) -> list:
        if len(data) % self.struct.size:
            self.bad_length(len(data))
        return self._rows(self._new, self.struct.iter_unpack(data))

    def decode_with_construct(self, data) -> list:
        if len(data) % self.struct.size:
            self.bad_length(len(data))
        parsed = Array(len(data) // self.struct.size, self.construct).parse(bytes(data))
        return [self.cls._make(FIXED_CONVERTERS[kind](entry[name]) if kind in FIXED_CONVERTERS else entry[name]
                               for name, kind in zip(self.cls._fields, self.kinds)) for entry in parsed]


def split_list(buf, start: int, end: int) -> list[str]:
    """A NUL-separated list: every element ends with a NUL, a truncated last one may not."""
    if start == end:
        return []
    items = str(buf[start:end], "utf-8", "surrogateescape").split("\0")
    if buf[end - 1] == 0:
        items.pop()
    return items


_UNREAD = object()


class Deferred(partial):
    """A list-valued field (strlist, array) decoded when first read: a call of
    its decoder on the field's own bytes, which decoding checked already, so
    it cannot fail. The event's attribute (and value(), to_dict()) gives the
    decoded value, the same object on every read. Only indexing the event's
    tuple shows the Deferred itself, which compares, prints, iterates and
    indexes as its value, so events compare as if decoded eagerly."""

    __slots__ = ()

    def resolve(self):
        cache = self.__dict__
        value = cache.get("value", _UNREAD)
        if value is _UNREAD:
            value = cache["value"] = self()
        return value

    def __eq__(self, other):
        return self.resolve() == (other.resolve() if isinstance(other, Deferred) else other)

    __hash__ = None  # its values are lists

    def __repr__(self) -> str:
        return repr(self.resolve())

    def __iter__(self):
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def __getitem__(self, index):
        return self.resolve()[index]


def _resolved(index: int) -> property:
    """A field that may hold a Deferred: its value, decoded on first read."""

    def get(event):
        value = event[index]
        return value.resolve() if value.__class__ is Deferred else value

    return property(get)


def bad_field(name: str, off: int, length: int, payload_off: int, size: int) -> NoReturn:
    if off == 0:
        raise DecodeError(f"field {name}: absent but {length} bytes long")
    raise DecodeError(f"field {name}: bytes {off}..{off + length} lie outside the payload {payload_off}..{size}")


class Span(NamedTuple):
    """A field whose bytes beyond `max` (up to `total`) come in continuation records."""

    index: int  # among the event's fields
    descriptor_off: int
    max: int
    total: int


class Version(NamedTuple):
    """One published version of an event, as its decoder checks records of it."""

    field_count: int  # the first field_count of the event's fields
    payload_off: int
    max_size: int
    spans: tuple[Span, ...] = ()


def decoding_version(cls: type[Event], version: int) -> int:
    """Which published version's decoder reads a record of `version`: its own, or the newest for a newer one."""
    if version < 1:
        raise DecodeError(f"{cls.name}: version {version}; versions start at 1")
    return min(version, len(cls.versions))


def bad_head(cls: type[Event], known: int, buffer_size: int, fingerprint: int, version: int, payload_off: int,
             size: int) -> None:
    """Raise DecodeError naming what is wrong with a record's header for the decoder of version `known`.

    Returns when the record is of a version newer than any this decoder
    knows (given to the newest decoder) and fit to be decoded as far as it knows.
    """
    if fingerprint != cls.fingerprint:
        raise DecodeError(
            f"{cls.name}: lineage fingerprint {fingerprint:#010x} is not this decoder's {cls.fingerprint:#010x}"
            " (sensor and decoder were generated from different schemas)"
        )
    newest = len(cls.versions)
    layout = cls.versions[known - 1]
    if version > newest and known == newest:
        if payload_off < layout.payload_off:
            raise DecodeError(f"{cls.name}: version {version} record has payload offset {payload_off},"
                              f" below version {newest}'s {layout.payload_off}")
        if not payload_off <= size <= buffer_size:
            raise DecodeError(f"{cls.name}: size {size} outside {payload_off}..{buffer_size} (the bytes given)")
        return
    if version != known:
        raise DecodeError(f"{cls.name}: a version {version} record, not version {known}")
    if payload_off != layout.payload_off:
        raise DecodeError(f"{cls.name}: payload offset {payload_off}, expected {layout.payload_off}")
    if not layout.payload_off <= size <= layout.max_size:
        raise DecodeError(f"{cls.name}: size {size} outside {layout.payload_off}..{layout.max_size}")
    if size > buffer_size:
        raise DecodeError(f"{cls.name}: record says {size} bytes, only {buffer_size} given")


# Field names a schema may use although every event has an attribute of that
# name; such a field is read with event.value(name) (and to_dict()).
SHADOWED_BY_EVENT = frozenset({"name"})


class Event(tuple):
    """A decoded record: header values, one attribute per schema field, and
    `truncated` (names of fields that lost bytes) with `lost` (name -> bytes
    lost, None when the kernel could not tell).

    `version` is the record's published version of the event. A record of an
    older version lacks the fields named in `missing` (their values are None);
    one of a newer version than this decoder knows has `newer` set and gives
    the fields this decoder knows.

    Subclasses are generated; they set name, id, fields, kinds and versions.
    """

    __slots__ = ()
    name: str = ""
    id: int = 0
    fingerprint: int = 0
    payload_off: int = 0  # of the newest version known
    max_size: int = 0
    fields: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    versions: tuple[Version, ...] = ()  # every published version, from 1
    entry_types: dict[str, EntryType] = {}  # array field -> its entries

    timestamp_ns = property(itemgetter(0))
    seq = property(itemgetter(1))
    cpu = property(itemgetter(2))
    version = property(itemgetter(3))
    truncated = property(itemgetter(-2))
    lost = property(itemgetter(-1))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for index, (field, kind) in enumerate(zip(cls.fields, cls.kinds), start=4):
            if field not in SHADOWED_BY_EVENT:
                deferrable = VARIABLE_DECODING.get(kind) in DEFERRED_DECODINGS
                setattr(cls, field, _resolved(index) if deferrable else property(itemgetter(index)))

    def value(self, field: str) -> Any:
        """A field's value by name; the one way to reach a field called `name`
        (event.name is the event's own name)."""
        value = self[4 + self.fields.index(field)]
        return value.resolve() if value.__class__ is Deferred else value

    @property
    def newer(self) -> bool:
        return self[3] > len(self.versions)

    @property
    def missing(self) -> tuple[str, ...]:
        if self.newer:
            return ()
        return self.fields[self.versions[self[3] - 1].field_count:]

    def __repr__(self) -> str:
        values = ", ".join(f"{f}={self.value(f)!r}" for f in self.fields)
        extra = (f" truncated={self.truncated!r}" if self.truncated else "") + (
            f" missing={self.missing!r}" if self.missing else "") + (" newer" if self.newer else "")
        return f"<{self.name} v{self.version} #{self.seq} cpu {self.cpu} {values}{extra}>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: addresses as text, bytes as hex, sockaddr and creds as objects.

        "missing" and "newer" appear only when they say something, so a record
        of the decoder's own version gives the same keys as ever.
        """
        out: dict[str, Any] = {"event": self.name, "id": self.id, "timestamp_ns": self.timestamp_ns,
                               "seq": self.seq, "cpu": self.cpu}
        for field in self.fields:
            out[field] = jsonable(self.value(field))
        out["truncated"] = list(self.truncated)
        out["lost"] = dict(self.lost)
        missing = self.missing
        if missing:
            out["missing"] = list(missing)
        if self.newer:
            out["newer"] = True
        return out


def jsonable(value: Any) -> Any:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, SockAddr):
        return {"family": value.family, "port": value.port,
                "address": None if value.address is None else str(value.address)}
    if isinstance(value, Creds):
        return value._asdict()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # an array's entry
        return {name: jsonable(item) for name, item in value._asdict().items()}
    return value


class EventSpec(NamedTuple):
    """One event as a generated module describes it; per published version,
    index version - 1, the newest also decoding records of newer versions."""

    cls: type[Event]
    structs: tuple[Struct, ...]  # construct definitions of header and fixed part
    decoders: tuple[Callable[..., Event], ...]  # fast paths: buf -> Event


# construct's values of fixed types -> the decoded value
FIXED_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "ipv4": ipv4,
    "ipv6": ipv6,
    "sockaddr": lambda c: sockaddr(SOCKADDR.build(c)),
    "creds": lambda c: Creds(**{k: c[k] for k in Creds._fields}),
    "chars": chars,
}


def decode_with_construct(spec: EventSpec, buf) -> Event:
    """The same result as the spec's decoders, through construct's parser (slower; a cross-check)."""
    cls = spec.cls
    try:
        head = HEAD.parse(bytes(buf[:HEADER_SIZE]))
        version = head.version
        known = decoding_version(cls, version)
        bad_head(cls, known, len(buf), head.fingerprint, version, head.payload_off, head.size)
        layout = cls.versions[known - 1]
        parsed = spec.structs[known - 1].parse(bytes(buf[: layout.payload_off]))
    except ConstructError as exc:
        raise DecodeError(f"{cls.name}: {exc}") from None
    lost: dict = {}
    values = []
    for field, kind in zip(cls.fields[: layout.field_count], cls.kinds):
        value = parsed[field]
        decoding = VARIABLE_DECODING.get(kind)
        if decoding:
            if value.lost:
                lost[field] = None if value.lost == LOST_UNKNOWN else value.lost
            end = value.off + value.len
            if value.off == 0 and value.len == 0:
                value = None
            elif value.off < head.payload_off or end > head.size:
                bad_field(field, value.off, value.len, head.payload_off, head.size)
            elif decoding == "list":
                value = split_list(buf, value.off, end)
            elif decoding == "bytes":
                value = bytes(buf[value.off:end])
            elif decoding == "entries":
                value = cls.entry_types[field].decode_with_construct(buf[value.off:end])
            else:
                value = str(buf[value.off:end], "utf-8", "surrogateescape")
        elif kind in FIXED_CONVERTERS:
            value = FIXED_CONVERTERS[kind](value)
        values.append(value)
    values += [None] * (len(cls.fields) - layout.field_count)
    return cls((head.timestamp_ns, head.seq, head.cpu, version, *values, tuple(lost), lost))
