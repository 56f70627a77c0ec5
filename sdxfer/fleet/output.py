"""`--output` for hidsmon, execmon and `sdxfer run`: where accepted events go
instead of standard output.

    nats://HOST:PORT/SUBJECT   raw records in envelopes (or one JSON object per
                               message with --wire json) to NATS JetStream
    file:PATH                  NDJSON, rotated by size and age
    raw:FILE                   the raw records, back to back, as `sdxfer decode` reads them

An output takes (raw record, decoded event) pairs, says on stderr what the
operator must know as it happens (drops), and ends with a summary line.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import time
from pathlib import Path

from .envelope import Sender, event_json, pack, records_in, this_host

BATCH_BYTES = 256 * 1024  # well under NATS's default 1 MiB max_payload
BATCHES_IN_MEMORY = 4  # at least: small bounds drop a few events at a time, not a whole read
_SIZE = re.compile(r"(\d+)([KMG]?)(i?B)?", re.IGNORECASE)


def size(text: str) -> int:
    """A byte count: 65536, 64K, 64M, 1G (powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 64K, 64M, 1G)")
    return int(match.group(1)) * 1024 ** " KMG".index((match.group(2) or " ").upper())


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def count(text: str) -> int:
    if not text.isdigit():
        # both wordings: scripts matched either before the validators were one
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0 (not a non-negative number)")
    return int(text)


def output_url(text: str) -> str:
    from .nats_io import redacted

    if not text.startswith(("nats://", "tls://", "file:", "raw:")):
        raise argparse.ArgumentTypeError(f"{redacted(text)!r}: an output is nats://HOST:PORT/SUBJECT or file:PATH, or raw:FILE for a capture")
    if text.startswith("file:") and not text[5:]:
        raise argparse.ArgumentTypeError("file: needs a path (file:/var/log/sdxfer/events.ndjson)")
    if text.startswith("raw:") and not text[4:]:
        raise argparse.ArgumentTypeError("raw: needs a path (raw:/tmp/capture.sdxr)")
    return text


def token_file(path: str) -> str:
    """--token-file: the token in a file (its first line)."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise argparse.ArgumentTypeError(f"{path}: no token in it")
    return token


def add_connection_arguments(group) -> None:
    group.add_argument("--creds", metavar="FILE", help="NATS credentials file (JWT and NKey seed)")
    group.add_argument("--token", metavar="TOKEN", default=os.environ.get("SDXFER_NATS_TOKEN") or None,
                       help="NATS authentication token; every local user sees it in ps: prefer --token-file or the"
                       " SDXFER_NATS_TOKEN environment variable (so too for user:password@ in the URL)")
    group.add_argument("--token-file", dest="token", type=token_file, metavar="FILE",
                       help="NATS authentication token, read from this file's first line")
    group.add_argument("--tls-ca", metavar="FILE", help="CA bundle that signs the server's certificate (TLS)")
    group.add_argument("--tls-cert", metavar="FILE", help="client certificate (TLS)")
    group.add_argument("--tls-key", metavar="FILE", help="client certificate's key (TLS)")


def add_stream_arguments(group) -> None:
    """The stream created when none holds SUBJECT.> (a sensor's, or sdxfer consume --create-stream)."""
    group.add_argument("--stream", metavar="NAME", help="JetStream stream to create if none holds the subject"
                       " (default: the subject in capitals, dots as _)")
    group.add_argument("--stream-max-bytes", type=size, default=-1, metavar="SIZE", help="created stream's size limit")
    group.add_argument("--stream-max-msgs", type=count, default=-1, metavar="N", help="created stream's message limit")
    group.add_argument("--stream-max-age", type=seconds, default=0.0, metavar="SECONDS",
                       help="created stream's age limit")
    group.add_argument("--stream-replicas", type=count, default=1, metavar="N", help="created stream's replicas")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fleet output (instead of standard output)")
    group.add_argument("--output", type=output_url, metavar="URL",
                       help="nats://HOST:PORT/SUBJECT (JetStream), file:PATH (rotated NDJSON) or raw:FILE"
                       " (records as sdxfer decode reads them)")
    group.add_argument("--wire", choices=("raw", "json"), default="raw",
                       help="NATS messages: raw records in batches (default) or one JSON event each")
    add_connection_arguments(group)
    add_stream_arguments(group)
    group.add_argument("--memory-bytes", type=size, default=size("64M"), metavar="SIZE",
                       help="messages held in memory while the server is away (default 64M); Ctrl+C and SIGTERM"
                       " spool them, but kill -9, a crash or a power loss loses them, up to this much: with"
                       " --memory-bytes 0 every message waits on disk in the spool instead")
    group.add_argument("--spool", metavar="DIR", help="then spool messages to files here (resent by the next run too)")
    group.add_argument("--spool-bytes", type=size, default=size("1G"), metavar="SIZE",
                       help="most bytes in the spool (default 1G); beyond memory and spool, events are dropped"
                       " and counted")
    group.add_argument("--flush-timeout", type=seconds, default=10.0, metavar="SECONDS",
                       help="at exit, wait this long for the server to ack what waits (default 10)")
    group.add_argument("--rotate-bytes", type=size, default=size("64M"), metavar="SIZE",
                       help="file: rotate when the file would pass this size (default 64M)")
    group.add_argument("--rotate-seconds", type=seconds, default=3600.0, metavar="SECONDS",
                       help="file: rotate a file this old (default 3600; 0: never)")
    group.add_argument("--keep", type=count, default=5, metavar="N", help="file: rotated files kept (default 5)")


def schema_major(schema_path: str | Path) -> int:
    """The major version in the schema's lock (1 where there is no lock yet)."""
    from ..codegen.lock import lock_path, read_lock

    history = read_lock(lock_path(str(schema_path)))
    return history.major if history else 1


def _drained(notes) -> list[str]:
    return [notes.popleft() for _ in range(len(notes))]


def _dropped(drops) -> str:
    return f", {drops.events} events dropped (the disk refused them)" if drops.events else ""


class FileOutput:
    def __init__(self, path: str, sender: Sender, max_bytes: int, max_age_s: float, keep: int):
        from .files import Drops, RotatingFile

        self.sender = sender
        self.file = RotatingFile(path, max_bytes, max_age_s, keep)
        self.drops = Drops()

    def send(self, pairs) -> None:
        lines = [event_json(event, self.sender) for _, event in pairs]
        written = self.file.lines
        try:
            if lines:
                self.file.write_lines(lines)
            else:
                self.file.tick()
        except OSError as exc:  # a full disk: the lines it did not take whole are counted
            self.drops.add(len(lines) - (self.file.lines - written), self.file.path, exc)

    def notices(self) -> list[str]:
        return _drained(self.drops.notes)

    def close(self) -> str:
        self.file.close()
        return (f"{self.file.lines} events written to {self.file.path} ({self.file.rotations} rotations)"
                f"{_dropped(self.drops)}")


class RawOutput:
    def __init__(self, path: str):
        from .files import Drops, RawFile

        self.file = RawFile(path)
        self.drops = Drops()

    def send(self, pairs) -> None:
        try:
            self.file.write([raw for raw, _ in pairs])
        except OSError as exc:  # a full disk: none of these records were kept
            self.drops.add(len(pairs), self.file.path, exc)

    def notices(self) -> list[str]:
        return _drained(self.drops.notes)

    def close(self) -> str:
        self.file.close()
        return f"{self.file.records} records ({self.file.bytes} bytes) written to {self.file.path}{_dropped(self.drops)}"


class NatsOutput:
    def __init__(self, url: str, sender: Sender, args):
        from .backlog import Backlog
        from .nats_io import HEADERS_ROOM, Connection, Endpoint, Sender as NatsSender, StreamLimits, redacted

        self.url, self.sender, self.json_wire = redacted(url), sender, args.wire == "json"
        self.flush_timeout = args.flush_timeout
        self.batch_bytes = max(1, min(BATCH_BYTES, args.memory_bytes // BATCHES_IN_MEMORY))
        self._seq = 0
        # JetStream de-duplicates by message id: one that readers of the stream cannot
        # foretell (run_id is in every envelope; this is not) cannot be taken before us
        self._id_secret = secrets.token_hex(16)
        self._room = -HEADERS_ROOM - (0 if self.json_wire else len(pack(sender, 0, [])))  # plus max_payload
        self.oversized_events = 0
        self._oversized_named = False
        self._run_key = time.time_ns()
        self.backlog = Backlog(args.memory_bytes, args.spool, args.spool_bytes)
        self._dropped_reported = 0
        self._fatal_reported = False
        limits = StreamLimits.from_args(args)
        connection = Connection(args.creds, args.token, args.tls_ca, args.tls_cert, args.tls_key)
        self.nats = NatsSender(Endpoint.parse(url).for_host(sender.host.machine_id), connection, limits, self.backlog)

    def message_id(self, seq: int) -> str:
        return f"{self.sender.host.machine_id}.{self._id_secret}.{seq}"

    def _put(self, payload: bytes, events: int) -> None:
        self._seq += 1
        self.backlog.put((self._run_key, self._seq), self.message_id(self._seq), payload, events)

    def _oversized(self, event, size: int) -> None:
        """An event whose record alone is above what one message may carry: dropped, counted, named once."""
        self.oversized_events += 1
        if not self._oversized_named:
            self._oversized_named = True
            name = f"a {event.name} event" if event is not None else "an event"
            self.nats.notes.append(f"{name} with a record of {size} bytes does not fit the server's max_payload"
                                   f" ({self.nats.max_payload} bytes): dropped (all such are counted at exit)")

    def send(self, pairs) -> None:
        limit = self.nats.max_payload + self._room  # bytes of records (or JSON) one message may carry
        if self.json_wire:
            for _, event in pairs:
                payload = event_json(event, self.sender).encode()
                if len(payload) > limit:
                    self._oversized(event, len(payload))
                else:
                    self._put(payload, 1)
            return
        batch_bytes = min(self.batch_bytes, limit)
        batch, used, events = [], 0, 0

        def flush():
            nonlocal batch, used, events
            if batch:
                self._put(pack(self.sender, self._seq + 1, batch), events)
            batch, used, events = [], 0, 0

        for raw, event in pairs:
            parts = records_in(raw)  # a spanning event: its record and continuations
            largest = max(map(len, parts))
            if largest > limit:
                self._oversized(event, largest)
                continue
            size = sum(map(len, parts))
            if used + size > batch_bytes and size <= batch_bytes:
                flush()  # an event that fits one message travels in one
            for index, part in enumerate(parts):  # else its records go in as many messages as they need, in order
                if batch and used + len(part) > batch_bytes:
                    flush()
                batch.append(part)
                used += len(part)
                if index == 0:
                    events += 1  # counted in the message that carries its record
        flush()

    def notices(self) -> list[str]:
        notes = [f"{self.url}: {note}" for note in _drained(self.nats.notes)] + _drained(self.backlog.notes)
        dropped = self.backlog.stats.dropped_events
        if dropped > self._dropped_reported:
            notes.append(f"{dropped - self._dropped_reported} events dropped: memory ({self.backlog.memory_bytes}"
                         f" bytes) and spool full while {self.url} is away ({dropped} in all)")
            self._dropped_reported = dropped
        if self.nats.fatal and not self._fatal_reported:
            notes.append(f"{self.url}: {self.nats.fatal}; events are kept in memory and spool only")
            self._fatal_reported = True
        return notes

    def close(self) -> str:
        self.nats.close(self.flush_timeout)
        unsent = self.backlog.spill()
        spooled = self.backlog.waiting_events()
        stats, drops = self.nats.stats, self.backlog.stats
        parts = [f"{stats.published_events} events published in {stats.published_messages} messages to {self.url}",
                 f"{drops.dropped_events} dropped (memory and spool full)"]
        oversized = self.oversized_events + stats.oversized_events
        if oversized:
            parts.append(f"{oversized} dropped (above the server's max_payload of {self.nats.max_payload} bytes)")
        if stats.duplicates:
            parts.append(f"{stats.duplicates} messages JetStream already had (resent after a lost ack)")
        if stats.taken_events:
            parts.append(f"{stats.taken_events} lost (another publisher had taken their message ids)")
        if drops.bad_files:
            parts.append(f"{drops.bad_files} damaged spool files moved into {self.backlog.spool_dir / 'bad'}")
        if spooled:
            parts.append(f"{spooled} left in the spool {self.backlog.spool_dir} for the next run")
        if unsent:
            parts.append(f"{unsent} lost (never acked in {self.flush_timeout:g} s, and no room in a spool)")
        return ", ".join(parts)


def open_output(args, decoder, schema_path: str | Path):
    """The output --output names, or None for standard output; FleetError on bad settings."""
    import importlib.util

    from .nats_io import FleetError

    if not getattr(args, "output", None):
        return None
    sender = Sender.start(this_host(), decoder.schema_digest, schema_major(schema_path))
    try:
        if args.output.startswith("raw:"):
            return RawOutput(args.output[4:])
        if args.output.startswith("file:"):
            return FileOutput(args.output[5:], sender, args.rotate_bytes, args.rotate_seconds, args.keep)
        if importlib.util.find_spec("nats") is None:
            raise FleetError("NATS output needs nats-py: pip install 'sdxfer[fleet]'")
        return NatsOutput(args.output, sender, args)
    except OSError as exc:
        raise FleetError(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)) from None


def deliver(output, pairs, tool: str, stderr) -> None:
    """Hands (raw record, event) pairs to the output; its notices go to stderr."""
    output.send(pairs)
    for note in output.notices():
        print(f"{tool}: {note}", file=stderr)
