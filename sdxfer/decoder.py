"""Decoding records into typed events."""
from __future__ import annotations

import struct
import types
from collections.abc import Iterable, Iterator

from . import _runtime as rt
from .errors import DecodeError

_HEAD = struct.Struct("<QQIIHHI")
HEADER_SIZE = _HEAD.size


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

        module = types.ModuleType(f"sdxfer_schema_{abs(hash(path))}")
        exec(compile(generate_python(path), f"<sdxfer decoders for {path}>", "exec"), module.__dict__)
        return cls.from_module(module)

    def _check(self, buf) -> tuple[rt.EventSpec, int, int, int, int]:
        try:
            timestamp_ns, seq, size, fingerprint, event_id, payload_off, cpu = _HEAD.unpack_from(buf)
        except (struct.error, TypeError) as exc:
            raise DecodeError(f"record shorter than its {HEADER_SIZE}-byte header or not bytes: {exc}") from None
        spec = self._by_id.get(event_id)
        if spec is None:
            raise DecodeError(f"unknown event id {event_id}")
        event = spec.cls
        if fingerprint != event.fingerprint:
            raise DecodeError(
                f"{event.name}: layout fingerprint {fingerprint:#010x} is not this decoder's {event.fingerprint:#010x}"
                " (sensor and decoder were generated from different schemas)"
            )
        if payload_off != event.payload_off:
            raise DecodeError(f"{event.name}: payload offset {payload_off}, expected {event.payload_off}")
        if not payload_off <= size <= event.max_size:
            raise DecodeError(f"{event.name}: size {size} outside {payload_off}..{event.max_size}")
        if size > len(buf):
            raise DecodeError(f"{event.name}: record says {size} bytes, only {len(buf)} given")
        return spec, size, timestamp_ns, seq, cpu

    def decode(self, buf) -> rt.Event:
        """Decode one record; raise DecodeError, and nothing else, when it is malformed."""
        spec, size, timestamp_ns, seq, cpu = self._check(buf)
        return spec.decode(buf, size, timestamp_ns, seq, cpu)

    def decode_with_construct(self, buf) -> rt.Event:
        """Like decode, through construct's parser alone: slower, for cross-checks."""
        spec, size, _, _, _ = self._check(buf)
        return rt.decode_with_construct(spec, buf, size)

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
            offset += _HEAD.unpack_from(record)[2]
