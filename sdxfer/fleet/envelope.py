"""The fleet envelope: one message of raw records and what a central decoder
needs beside them (who sent them, with which schema, where in the sender's
run the batch sits).

Version 1, little-endian:

    magic         4 bytes   b"SDXB"
    version       u16       1 (a reader refuses versions it does not know)
    flags         u16       0 (reserved)
    batch_seq     u64       1, 2, ... per sender run
    run_id        16 bytes  random, per sender run
    wall_minus_mono_ns  s64  the sender's wall clock minus CLOCK_MONOTONIC (kernel timestamps -> wall time)
    schema_major  u16       the major version in the sender's schema lock
    count         u32       records that follow
    hostname, machine_id, boot_id, schema_digest: each u16 length + UTF-8
    records       back to back, each `size` bytes as its own header says

Records are exactly what the kernel sent: the receiver decodes them with the
schema (any version of the same major; see README "Schema evolution").
"""
from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..runtime.record import HEADER_FIELD, HEADER_SIZE
from ..stream.vocabulary import Clock, event_object

MAGIC = b"SDXB"
VERSION = 1
_FIXED = struct.Struct("<4sHHQ16sqHI")
_LEN = struct.Struct("<H")
_SIZE = HEADER_FIELD["size"]
# Records one envelope may hold: a reader's work per message is bounded (a
# sender's 256 KiB batch of the smallest records holds a few thousand).
MAX_RECORDS = 1 << 16


class EnvelopeError(ValueError):
    """A message that is not a well-formed envelope of a known version."""


@dataclass(frozen=True)
class Host:
    hostname: str
    machine_id: str
    boot_id: str

    def to_dict(self) -> dict[str, str]:
        return {"hostname": self.hostname, "machine_id": self.machine_id, "boot_id": self.boot_id}


def _first_line(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def this_host(environ: dict | None = None) -> Host:
    """This machine's identity. SDXFER_HOSTNAME, SDXFER_MACHINE_ID and
    SDXFER_BOOT_ID override it (containers that share the host's files)."""
    import os

    env = os.environ if environ is None else environ
    return Host(env.get("SDXFER_HOSTNAME") or socket.gethostname(),
                env.get("SDXFER_MACHINE_ID") or _first_line("/etc/machine-id"),
                env.get("SDXFER_BOOT_ID") or _first_line("/proc/sys/kernel/random/boot_id"))


@dataclass(frozen=True)
class Sender:
    """What every envelope of one sender run shares."""

    host: Host
    schema_digest: str
    schema_major: int
    run_id: bytes
    wall_minus_mono_ns: int

    @classmethod
    def start(cls, host: Host, schema_digest: str, schema_major: int) -> Sender:
        return cls(host, schema_digest, schema_major, uuid.uuid4().bytes, time.time_ns() - time.monotonic_ns())


@dataclass(frozen=True)
class Batch:
    sender: Sender
    batch_seq: int
    records: list[bytes]


def _text(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) > 0xFFFF:
        raise EnvelopeError(f"text field of {len(raw)} bytes does not fit an envelope")
    return _LEN.pack(len(raw)) + raw


def pack(sender: Sender, batch_seq: int, records: list[bytes]) -> bytes:
    host = sender.host
    parts = [part for raw in records for part in records_in(raw)]
    head = _FIXED.pack(MAGIC, VERSION, 0, batch_seq, sender.run_id, sender.wall_minus_mono_ns,
                       sender.schema_major, len(parts))
    texts = b"".join(_text(t) for t in (host.hostname, host.machine_id, host.boot_id, sender.schema_digest))
    return b"".join((head, texts, *parts))


def records_in(raw) -> list[bytes]:
    """The records in `raw`: one (perf pads it: it goes exactly as long as its
    header says), or a reassembled event's record and continuations back to back."""
    parts, at = [], 0
    while at + HEADER_SIZE <= len(raw):
        size = _SIZE.unpack_from(raw, at)[0]
        if size < HEADER_SIZE or at + size > len(raw):
            break  # padding
        parts.append(bytes(raw[at:at + size]))
        at += size
    return parts or [bytes(raw)]


def unpack(message: bytes) -> Batch:
    """The batch in a message; EnvelopeError when it is not one."""
    view = memoryview(message)
    try:
        magic, version, _flags, batch_seq, run_id, offset_ns, major, count = _FIXED.unpack_from(view)
    except struct.error:
        raise EnvelopeError(f"message of {len(view)} bytes is shorter than an envelope header") from None
    if magic != MAGIC:
        raise EnvelopeError("not an sdxfer envelope (bad magic)")
    if version != VERSION:
        raise EnvelopeError(f"envelope version {version}; this reader knows version {VERSION}")
    if count > MAX_RECORDS:
        raise EnvelopeError(f"envelope says {count} records, more than the {MAX_RECORDS} a reader takes")
    at = _FIXED.size
    texts = []
    for _ in range(4):
        try:
            (length,) = _LEN.unpack_from(view, at)
        except struct.error:
            raise EnvelopeError("envelope cut inside its host fields") from None
        at += _LEN.size
        if at + length > len(view):
            raise EnvelopeError("envelope cut inside its host fields")
        texts.append(bytes(view[at:at + length]).decode("utf-8", "surrogateescape"))
        at += length
    records = []
    for index in range(count):
        try:
            (size,) = _SIZE.unpack_from(view, at)
        except struct.error:
            raise EnvelopeError(f"envelope says {count} records, holds {index}") from None
        if size < HEADER_SIZE:
            raise EnvelopeError(f"record {index} of the envelope claims {size} bytes, shorter than a record header")
        if at + size > len(view):
            raise EnvelopeError(f"record {index} of the envelope claims {size} bytes, {len(view) - at} remain")
        records.append(bytes(view[at:at + size]))
        at += size
    if at != len(view):
        raise EnvelopeError(f"{len(view) - at} bytes after the envelope's {count} records")
    hostname, machine_id, boot_id, digest = texts
    sender = Sender(Host(hostname, machine_id, boot_id), digest, major, run_id, offset_ns)
    return Batch(sender, batch_seq, records)


def event_dict(event, sender: Sender) -> dict:
    """The event's JSON object every tool prints (to_dict(), `time`,
    `timestamp_ns`), with the sending `host`."""
    clock = Clock(start_ns=0, wall_minus_mono_ns=sender.wall_minus_mono_ns)
    return event_object(event, clock, host=sender.host.to_dict())


def event_json(event, sender: Sender) -> str:
    return json.dumps(event_dict(event, sender), ensure_ascii=True)
