"""Decoding records into typed events."""
from __future__ import annotations

import struct
import types
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from operator import call
from typing import NoReturn

from .. import runtime as rt
from ..errors import DecodeError
from ..runtime.record import CONTINUATION_ID, HEADER_FIELD, HEADER_OFFSETS, HEADER_SIZE, parse_header

# (id, version): the key of a known version's decoder, in one unpack
_KEY = struct.Struct(f"<{HEADER_OFFSETS['id']}xH{HEADER_OFFSETS['version'] - HEADER_OFFSETS['id'] - 2}xH")


class Decoder:
    """Turns raw records (bytes-like; trailing padding allowed) into events.

    `Decoder.from_schema(path)` builds one for any schema file;
    `sdxfer.default_decoder()` is the one for the shipped schema. Records of
    every published version of an event decode, and those of newer versions
    as far as this decoder knows them.
    """

    def __init__(self, specs: Iterable[rt.EventSpec], schema_digest: str = "", common_fields: tuple[str, ...] = ()):
        self.schema_digest = schema_digest
        self.common_fields = common_fields  # what every event carries
        self._by_id = {spec.cls.id: spec for spec in specs}
        self._by_key = {(spec.cls.id, version): decode
                        for spec in self._by_id.values() for version, decode in enumerate(spec.decoders, start=1)}
        self.events: dict[str, type[rt.Event]] = {spec.cls.name: spec.cls for spec in self._by_id.values()}

    @classmethod
    def from_module(cls, module: types.ModuleType) -> Decoder:
        return cls(module.EVENTS, module.SCHEMA_DIGEST, module.COMMON_FIELDS)

    @classmethod
    def from_schema(cls, path: str) -> Decoder:
        """Generate decoders for the schema at `path` in memory (needs jinja2),
        for every version published in the lock file beside it, if there is one.

        Raises sdxfer.codegen.schema.SchemaError when the schema is invalid or
        incompatible with its lock file.
        """
        from ..codegen import generate_python  # the generator stays out of the runtime's imports

        return cls.from_module(cls.module_from_source(generate_python(path), path))

    @staticmethod
    def module_from_source(source: str, schema_path: str) -> types.ModuleType:
        """A generated events.py, given as text, imported as a module."""
        module = types.ModuleType(f"sdxfer_schema_{abs(hash(schema_path))}")
        exec(compile(source, f"<sdxfer decoders for {schema_path}>", "exec"), module.__dict__)
        return module

    def _spec(self, buf) -> rt.EventSpec:
        try:
            event_id, _ = _KEY.unpack_from(buf)
        except (struct.error, TypeError) as exc:
            raise DecodeError(f"record shorter than its {HEADER_SIZE}-byte header or not bytes: {exc}") from None
        spec = self._by_id.get(event_id)
        if spec is None:
            if event_id == CONTINUATION_ID:
                raise DecodeError("a continuation record (event id 0) carries the rest of an earlier record's field "
                                  "and decodes only with it: feed the stream to sdxfer.Reassembler")
            raise DecodeError(f"unknown event id {event_id}")
        return spec

    def _other_version(self, buf):
        """The decoder for a record of a version newer than any known; DecodeError for other misses."""
        spec = self._spec(buf)
        return spec.decoders[rt.decoding_version(spec.cls, HEADER_FIELD["version"].unpack_from(buf)[0]) - 1]

    def decode(self, buf) -> rt.Event:
        """Decode one record; raise DecodeError, and nothing else, when it is malformed."""
        try:
            decode = self._by_key[_KEY.unpack_from(buf)]
        except (KeyError, struct.error, TypeError):
            decode = self._other_version(buf)  # or raises DecodeError saying what is wrong
        try:
            return decode(buf)
        except struct.error:
            self._short(buf)

    def decode_many(self, records: Iterable) -> list[rt.Event]:
        """Decode a batch of records (a transport's, say): the events of
        [decode(r) for r in records], faster; DecodeError naming the record's
        index for the first malformed one, and nothing else."""
        records = records if isinstance(records, (list, tuple)) else list(records)
        events: list[rt.Event] = []
        at = 0
        while (at := self.decode_run(records, at, events, self._by_key)) < len(records):
            try:  # a version newer than any known, or a malformed record: decode() tells which
                events.append(self.decode(records[at]))
            except DecodeError as exc:
                raise DecodeError(f"record {at}: {exc}") from None
            at += 1
        return events

    def dispatch(self, excluding: Iterable[int] = ()) -> dict:
        """(event id, version) -> decoder for every version known, of every event but the ids excluded."""
        excluded = frozenset(excluding)
        return {key: decode for key, decode in self._by_key.items() if key[0] not in excluded}

    @staticmethod
    def decode_run(records: Sequence, start: int, into: list, dispatch: dict) -> int:
        """Appends the events of records[start:] to `into`, decoded through
        `dispatch` (see dispatch()), up to the first record it has no decoder
        for or that does not decode; returns that record's index (len(records)
        when there is none). Raises nothing: decode() says what that record is."""
        before = len(into)
        try:
            # one loop in C: key, decoder and call, no Python frame between records
            into.extend(map(call, map(dispatch.__getitem__, map(_KEY.unpack_from, islice(records, start, None))),
                            islice(records, start, None)))
        except (KeyError, struct.error, TypeError, DecodeError):
            pass  # extend kept the events before it
        return start + len(into) - before

    def _short(self, buf) -> NoReturn:
        """A record shorter than its fixed part: say so, unless its header is wrong already."""
        cls = self._spec(buf).cls
        head = parse_header(buf)
        version = head["version"]
        rt.bad_head(cls, rt.decoding_version(cls, version), len(buf), head["fingerprint"], version,
                    head["payload_off"], head["size"])
        raise DecodeError(f"{cls.name}: {len(buf)} bytes, shorter than its fixed part") from None

    def decode_with_construct(self, buf) -> rt.Event:
        """Like decode, through construct's parser alone: slower, for cross-checks."""
        return rt.decode_with_construct(self._spec(buf), buf)

    def iter_decode(self, data) -> Iterator[tuple[int, rt.Event]]:
        """Decode back-to-back records; yields (offset, event)."""
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            record = view[offset:]
            try:
                event = self.decode(record)
            except DecodeError as exc:
                raise DecodeError(f"record at byte {offset}: {exc}") from None
            yield offset, event
            offset += HEADER_FIELD["size"].unpack_from(record)[0]
