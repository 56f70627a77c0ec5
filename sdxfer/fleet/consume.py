"""The central side: a JetStream consumer that decodes every host's records.

    from sdxfer.fleet import Consumer
    with Consumer("nats://127.0.0.1:4222/sdxfer.events", schema="schema/events.yaml",
                  durable="central") as consumer:
        for item in consumer.events():
            print(item.host.hostname, item.event.name, item.to_dict())

Each host publishes on SUBJECT.<machine-id>; the consumer reads SUBJECT.> and
takes the machine id from the subject, which the server's permissions can
tie to the host's credentials; what a message body says of its host is only
checked against it. Every message is validated (MessageDecoder); one that
fails is acked, counted and named, never handed over.

A message is acked once every event in it has been handed over (on the next
pull), so a consumer that stops mid-message gets that message again. A
message the stream sends again after an ack the server never saw (it went
away meanwhile) is known by its stream sequence and acked without being
handed over twice.
"""
from __future__ import annotations

import asyncio
import collections
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from ..errors import DecodeError
from ..stream.reassembly import Reassembler
from .envelope import EnvelopeError, Host, Sender, event_dict, unpack
from .nats_io import (FIRST_CONNECT_S, HOST_TOKEN, RETRY_S, Connection, Endpoint, FleetError, StreamLimits, connect,
                      ensure_stream, find_stream, redacted)

FETCH_BATCH = 64
FETCH_WAIT_S = 0.5
STREAM_WAIT_S = 1.0  # between looks for a stream that is not there yet
REMEMBERED_MESSAGES = 65536  # stream sequences handed over, for knowing redeliveries
MAX_RUNS_PENDING = 1024  # sender runs with an event waiting for its next message, at most
MAX_PENDING_BYTES = 256 << 20  # what those runs' reassemblers hold, together, at most (each alone: 64 MiB)
MAX_PENDING_PARTS = 1 << 18  # and their events and chunks held, together (each alone: REASSEMBLY_MAX_PARTS)
MAX_MESSAGE_BYTES = 8 << 20  # a sender's batch is 256 KiB; bigger is refused unread
MAX_JSON_DEPTH = 16  # a JSON-wire event nests 3 deep (host, an array of objects)
PROBLEM_KEYS = 1024  # (host, kind) pairs counted one by one; then under OTHER_HOSTS
OTHER_HOSTS = "(other hosts)"
BAD_SUBJECT = "(bad subject)"


@dataclass(frozen=True)
class FleetEvent:
    """One event from one host: a decoded `event`, or for a JSON-wire
    message only `record` (the object the sender wrote). `host`: the machine
    id from the subject, hostname and boot id as the message says."""

    host: Host
    sender: Sender | None
    event: object | None
    record: dict

    def to_dict(self) -> dict:
        """The event's to_dict(), its wall-clock `time` (the sender's clock) and `host`."""
        return self.record


class Problems:
    """What went wrong, per (host, kind): reported as it happens (the first
    time, then the 10th, 100th, ...), counted for the summary. Memory is
    bounded: past PROBLEM_KEYS pairs, new hosts count under OTHER_HOSTS."""

    def __init__(self, report: Callable[[str], None]):
        self.report = report
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, host: str, kind: str, detail: str, times: int = 1) -> None:
        key = (host, kind)
        if key not in self.counts and len(self.counts) >= PROBLEM_KEYS:
            key = (OTHER_HOSTS, kind)
        before = self.counts.get(key, 0)
        after = self.counts[key] = before + times
        # a power of ten passed (1, 10, 100, ...): said again, so a flood shows without flooding
        if len(str(after)) > len(str(before)) or before == 0:
            self.report(f"{key[0]}: {kind}: {detail}" + (f" ({after} so far)" if after > 1 else ""))

    def summary(self) -> list[str]:
        return [f"{host}: {kind}: {count} in all" for (host, kind), count in self.counts.items()]


@dataclass
class ConsumeStats:
    messages: int = 0
    events: int = 0
    undecodable: int = 0  # records the schema cannot decode (another major, unknown event)
    bad_messages: int = 0  # refused: not a valid envelope nor JSON-wire event, too big, or on a bad subject


class _Refused(Exception):
    """A message refused whole, with the reason."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _check_json_wire(record) -> None:
    """The JSON wire's schema: an object with `event` (text), `time` (text),
    `timestamp_ns` (an integer), `host` (hostname, machine_id, boot_id: text),
    and other fields of any JSON value nested at most MAX_JSON_DEPTH deep."""
    if not isinstance(record, dict):
        raise _Refused(f"a JSON {type(record).__name__}, not an object")
    for key, kind, named in (("event", str, "text"), ("time", str, "text"), ("timestamp_ns", int, "an integer"),
                             ("host", dict, "an object")):
        if type(record.get(key)) is not kind:
            raise _Refused(f"its {key!r} is not {named}")
    host = record["host"]
    if set(host) != {"hostname", "machine_id", "boot_id"} or not all(type(v) is str for v in host.values()):
        raise _Refused("its 'host' is not {hostname, machine_id, boot_id} as text")
    pending = [(value, 1) for value in record.values()]
    while pending:  # each value once: bounded by the message's size
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise _Refused(f"nested deeper than {MAX_JSON_DEPTH}")
            pending += [(item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)]


class MessageDecoder:
    """Messages -> events, without a connection: every message validated;
    one that is not valid is counted and named through `problems`."""

    def __init__(self, subject: str, decoder, major: int, report: Callable[[str], None],
                 max_message_bytes: int = MAX_MESSAGE_BYTES, max_pending_bytes: int = MAX_PENDING_BYTES,
                 max_pending_parts: int = MAX_PENDING_PARTS):
        self.prefix = subject + "."
        self.decoder, self.major, self.max_message_bytes = decoder, major, max_message_bytes
        self.max_pending_bytes, self.max_pending_parts = max_pending_bytes, max_pending_parts
        self.stats = ConsumeStats()
        self.problems = Problems(report)
        # per sender run: an event whose records did not fit one message waits
        # here for the rest (record time ages it out); the least recent go first
        self._reassemblers: collections.OrderedDict[tuple[str, bytes], tuple[Sender, Reassembler]] = \
            collections.OrderedDict()
        # held by all of them: a sender picks its run ids, so one host can open many
        self.pending_bytes = self.pending_parts = 0

    def items(self, subject: str, data: bytes) -> Iterator[FleetEvent]:
        """The events of one message on `subject`."""
        self.stats.messages += 1
        token = subject[len(self.prefix):] if subject.startswith(self.prefix) else ""
        if not HOST_TOKEN.fullmatch(token):
            self._refuse(BAD_SUBJECT, f"a message on {subject[:200]!r}, not {self.prefix}<machine-id>")
            return
        try:
            if len(data) > self.max_message_bytes:
                raise _Refused(f"{len(data)} bytes, more than {self.max_message_bytes}")
            yield from self._json(token, data) if data[:1] == b"{" else self._envelope(token, data)
        except _Refused as exc:
            self._refuse(token, str(exc))
        except Exception as exc:  # whatever a hostile message breaks, the consumer goes on: named, not fatal
            self._refuse(token, f"cannot be read ({type(exc).__name__}: {exc})")

    def _refuse(self, token: str, reason: str) -> None:
        self.stats.bad_messages += 1
        self.problems.add(token, "bad message", reason)

    def _host(self, token: str, claimed: Host) -> Host:
        if claimed.machine_id != token:
            self.problems.add(token, "host mismatch", f"its body says machine {claimed.machine_id[:200]!r}")
        return Host(claimed.hostname, token, claimed.boot_id)

    def _json(self, token: str, data: bytes) -> Iterator[FleetEvent]:
        try:
            record = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            raise _Refused("JSON nested too deep") from None
        except ValueError as exc:
            raise _Refused(f"not JSON ({exc})") from None
        _check_json_wire(record)
        host = self._host(token, Host(**record["host"]))
        record["host"] = host.to_dict()
        self.stats.events += 1
        yield FleetEvent(host, None, None, record)

    def _envelope(self, token: str, data: bytes) -> Iterator[FleetEvent]:
        try:
            batch = unpack(data)
        except EnvelopeError as exc:
            raise _Refused(str(exc)) from None
        sender = replace(batch.sender, host=self._host(token, batch.sender.host))
        if sender.schema_major != self.major:
            self.stats.undecodable += len(batch.records)
            self.problems.add(token, "undecodable", f"schema major {sender.schema_major}, this consumer's is"
                              f" {self.major}: its records are not decoded", len(batch.records))
            return
        # a spanning event's record and continuations may travel in several messages of one run
        key = (token, sender.run_id)
        _, reassembler = self._reassemblers.pop(key, (sender, None))
        reassembler = reassembler or Reassembler(self.decoder)
        self.pending_bytes -= reassembler.pending_bytes
        self.pending_parts -= reassembler.pending_parts
        for raw in batch.records:
            try:
                events = reassembler.feed(raw)
            except DecodeError as exc:
                self.stats.undecodable += 1
                self.problems.add(token, "undecodable", str(exc))
                continue
            yield from self._events_of(sender, events)
        if reassembler.pending:
            self._reassemblers[key] = (sender, reassembler)
            self.pending_bytes += reassembler.pending_bytes
            self.pending_parts += reassembler.pending_parts
            while (len(self._reassemblers) > MAX_RUNS_PENDING or self.pending_bytes > self.max_pending_bytes
                   or self.pending_parts > self.max_pending_parts):
                yield from self._flush_oldest()

    def flush(self) -> Iterator[FleetEvent]:
        """The events still waiting for records of a later message, as far as they came (the end)."""
        while self._reassemblers:
            yield from self._flush_oldest()

    def _flush_oldest(self) -> Iterator[FleetEvent]:
        sender, reassembler = self._reassemblers.popitem(last=False)[1]
        self.pending_bytes -= reassembler.pending_bytes
        self.pending_parts -= reassembler.pending_parts
        yield from self._events_of(sender, reassembler.flush())

    def _events_of(self, sender: Sender, events) -> Iterator[FleetEvent]:
        for event in events:
            self.stats.events += 1
            yield FleetEvent(sender.host, sender, event, event_dict(event, sender))


class Consumer:
    """create_stream: limits of the stream to create when none holds SUBJECT.>
    (else the consumer waits for one); report(line): each problem as it happens;
    inbox_prefix: where the server delivers what the consumer pulls, which a
    user allowed to subscribe to _INBOX.> (the hosts) must not be able to read."""

    def __init__(self, url: str, *, schema: str | None = None, durable: str | None = None, decoder=None,
                 connection: Connection = Connection(), create_stream: StreamLimits | None = None,
                 report: Callable[[str], None] = lambda line: None, max_message_bytes: int = MAX_MESSAGE_BYTES,
                 inbox_prefix: str = "_INBOX"):
        from .output import schema_major

        self.endpoint = Endpoint.parse(url)
        if any(token in ("*", ">") for token in self.endpoint.subject.split(".")):
            raise FleetError(f"{self.endpoint.subject}: name the subject the sensors publish to, without wildcards"
                             " (the consumer reads SUBJECT.>)")
        if not re.fullmatch(r"[\w-]+(\.[\w-]+)*", inbox_prefix, re.ASCII):
            raise FleetError(f"{inbox_prefix!r} is not an inbox prefix (tokens of letters, digits, _ and -)")
        self.durable = durable
        from .. import Decoder, default_decoder
        from ..paths import SHIPPED_SCHEMA

        # the schema's lock names the major; a decoder given too must be of that schema
        decoder = decoder or (Decoder.from_schema(schema) if schema else default_decoder())
        self.messages = MessageDecoder(self.endpoint.subject, decoder, schema_major(schema or SHIPPED_SCHEMA), report,
                                       max_message_bytes)
        self.report = report
        self._create_stream = create_stream
        self._sub = None
        self._said: set[str] = set()  # kinds of reason for not reading yet, said once each
        self._handed_over: set[int] = set()
        self._handed_order: collections.deque[int] = collections.deque()
        self._options = connection.options() | {"inbox_prefix": inbox_prefix}
        self._loop = asyncio.new_event_loop()
        try:
            self._nc, self._js = self._loop.run_until_complete(self._open())
        except BaseException:
            self._loop.close()
            raise

    @property
    def stats(self) -> ConsumeStats:
        return self.messages.stats

    @property
    def problems(self) -> Problems:
        return self.messages.problems

    async def _open(self):
        errors = collections.deque(maxlen=16)  # the callback stays for the connection's life

        async def note(exc) -> None:
            errors.append(exc)

        try:
            nc = await asyncio.wait_for(connect(self.endpoint, self._options, error_cb=note), FIRST_CONNECT_S)
        except Exception:  # a timeout: nats-py retries for ever
            # the server's own word (authorization, TLS) says more than the broken pipe after it
            telling = [exc for exc in errors if not isinstance(exc, OSError)] or list(errors)
            last = f" (last: {telling[-1] or type(telling[-1]).__name__})" if telling else ""
            raise FleetError(f"cannot reach {redacted(self.endpoint.server)} in {FIRST_CONNECT_S:g} s{last}") from None
        js = nc.jetstream()
        try:
            if self._create_stream:
                await ensure_stream(js, self.endpoint, self._create_stream)
            else:  # JetStream's answer (none yet is fine: events() waits) tells a server without it at once
                await find_stream(js, self.endpoint.stream_subject)
        except FleetError:
            await nc.close()
            raise
        except Exception as exc:
            await nc.close()
            raise FleetError(f"{redacted(self.endpoint.server)}: JetStream does not answer ({exc or type(exc).__name__})") \
                from None
        return nc, js

    async def _subscribe(self) -> tuple[str, str] | None:
        """None once subscribed; else why not yet: (kind, line), the line empty while the server is away."""
        try:
            stream = await find_stream(self._js, self.endpoint.stream_subject)
        except Exception:  # the server is away: nats-py reconnects, a later look finds it
            return "away", ""
        if stream is None:
            return "no stream", (f"waiting for a stream that holds {self.endpoint.stream_subject} on"
                                 f" {redacted(self.endpoint.server)} (a sensor with --output creates it, or --create-stream)")
        try:
            self._sub = await self._js.pull_subscribe(self.endpoint.stream_subject, durable=self.durable,
                                                      stream=stream)
        except Exception as exc:  # a timeout too: what a user without the permission gets
            return "refused", f"cannot read stream {stream} ({exc or type(exc).__name__}); trying again"
        return None

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator[FleetEvent]:
        """Every host's events until stop() is true (checked between pulls: every
        second or so); then those still waiting for a later message's records."""
        yield from self._pulled(stop)
        yield from self.messages.flush()

    def _pulled(self, stop: Callable[[], bool]) -> Iterator[FleetEvent]:
        from nats.errors import Error as NatsError

        while not stop():
            if self._sub is None:
                why = self._loop.run_until_complete(self._subscribe())
                if why is not None:
                    kind, line = why
                    if line and kind not in self._said:
                        self._said.add(kind)
                        self.report(line)
                    self._loop.run_until_complete(asyncio.sleep(STREAM_WAIT_S))
                    continue
            try:
                messages = self._loop.run_until_complete(self._sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S))
            except (NatsError, asyncio.TimeoutError):
                # nothing yet, or the server is away: nats-py reconnects, the next pull resumes
                self._loop.run_until_complete(asyncio.sleep(RETRY_S))
                continue
            for message in messages:
                if stop():  # the rest of the batch comes again, unacked
                    return
                sequence = message.metadata.sequence.stream
                if sequence not in self._handed_over:
                    yield from self.messages.items(message.subject, message.data)
                    self._remember(sequence)
                try:
                    self._loop.run_until_complete(message.ack())
                except NatsError:  # not acked: the stream sends it again, and it is known
                    pass

    def _remember(self, sequence: int) -> None:
        self._handed_over.add(sequence)
        self._handed_order.append(sequence)
        if len(self._handed_order) > REMEMBERED_MESSAGES:
            self._handed_over.discard(self._handed_order.popleft())

    def close(self) -> None:
        if not self._loop.is_closed():
            try:
                self._loop.run_until_complete(self._nc.close())
            except (Exception, asyncio.CancelledError):  # a connection that went away mid-close is closed
                pass
            finally:
                self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
