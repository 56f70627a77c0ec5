"""Decoding records into typed events."""
from __future__ import annotations

import struct
import types
from collections.abc import Iterable, Iterator

from . import _runtime as rt
from .errors import DecodeError
from .record import HEADER_OFFSETS, HEADER_SIZE

_EVENT_ID = struct.Struct(f"<{HEADER_OFFSETS['id']}xH")
_SIZE = struct.Struct(f"<{HEADER_OFFSETS['size']}xI")


class Decoder:
    """Turns raw records (bytes-like; trailing padding allowed) into events.

    `Decoder.from_schema(path)` builds one for any schema file;
    `sdxfer.default_decoder()` is the one for the shipped schema.
    """

    def __init__(self, specs: Iterable[rt.EventSpec], schema_digest: str = ""):
        self.schema_digest = schema_digest
        self._by_id = {spec.cls.id: spec for spec in specs}
        self.events: dict[str, type[rt.Event]] = {spec.cls.name: spec.cls for spec in self._by_id.values()}

    @classmethod
    def from_module(cls, module: types.ModuleType) -> Decoder:
        return cls(module.EVENTS, module.SCHEMA_DIGEST)

    @classmethod
    def from_schema(cls, path: str) -> Decoder:
        """Generate decoders for the schema at `path` in memory (needs jinja2).

        Raises sdxfer.codegen.schema.SchemaError when the schema is invalid.
        """
        from .codegen import generate_python  # the generator stays out of the runtime's imports

        return cls.from_module(cls.module_from_source(generate_python(path), path))

    @staticmethod
    def module_from_source(source: str, schema_path: str) -> types.ModuleType:
        """A generated events.py, given as text, imported as a module."""
        module = types.ModuleType(f"sdxfer_schema_{abs(hash(schema_path))}")
        exec(compile(source, f"<sdxfer decoders for {schema_path}>", "exec"), module.__dict__)
        return module

    def _spec(self, buf) -> rt.EventSpec:
        try:
            (event_id,) = _EVENT_ID.unpack_from(buf)
        except (struct.error, TypeError) as exc:
            raise DecodeError(f"record shorter than its {HEADER_SIZE}-byte header or not bytes: {exc}") from None
        spec = self._by_id.get(event_id)
        if spec is None:
            raise DecodeError(f"unknown event id {event_id}")
        return spec

    def decode(self, buf) -> rt.Event:
        """Decode one record; raise DecodeError, and nothing else, when it is malformed."""
        try:
            spec = self._by_id[_EVENT_ID.unpack_from(buf)[0]]
        except (KeyError, struct.error, TypeError):
            spec = self._spec(buf)  # raises DecodeError saying which
        try:
            return spec.decode(buf)
        except struct.error:
            raise DecodeError(f"{spec.cls.name}: {len(buf)} bytes, shorter than its {spec.cls.payload_off}-byte fixed part") from None

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
            offset += _SIZE.unpack_from(record)[0]
