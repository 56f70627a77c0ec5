"""The central side: a JetStream consumer that decodes every host's records.

    from sdxfer.fleet import Consumer
    with Consumer("nats://127.0.0.1:4222/sdxfer.events", schema="schema/events.yaml",
                  durable="central") as consumer:
        for item in consumer.events():
            print(item.host.hostname, item.event.name, item.to_dict())

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
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import DecodeError
from ..stream.reassembly import Reassembler
from .envelope import Batch, EnvelopeError, Host, Sender, event_dict, unpack
from .nats_io import FIRST_CONNECT_S, RETRY_S, Connection, Endpoint, FleetError, connect, find_stream

FETCH_BATCH = 64
FETCH_WAIT_S = 0.5
REMEMBERED_MESSAGES = 65536  # stream sequences handed over, for knowing redeliveries


@dataclass(frozen=True)
class FleetEvent:
    """One event from one host: a decoded `event`, or for a JSON-wire
    message only `record` (the dict the sender wrote)."""

    sender: Sender | None
    event: object | None
    record: dict

    @property
    def host(self) -> Host:
        host = self.record.get("host") or {}
        return self.sender.host if self.sender else Host(host.get("hostname", ""), host.get("machine_id", ""),
                                                         host.get("boot_id", ""))

    def to_dict(self) -> dict:
        """The event's to_dict(), its wall-clock `time` (the sender's clock) and `host`."""
        return self.record


@dataclass
class ConsumeStats:
    messages: int = 0
    events: int = 0
    undecodable: int = 0  # records the schema cannot decode (another major, unknown event)
    bad_messages: int = 0  # not an envelope of a known version, nor JSON
    problems: list[str] = field(default_factory=list)  # one line each, for stderr


class Consumer:
    def __init__(self, url: str, *, schema: str | None = None, durable: str | None = None, decoder=None,
                 connection: Connection = Connection()):
        from .output import schema_major

        self.endpoint = Endpoint.parse(url)
        self.durable = durable
        from .. import Decoder, default_decoder
        from ..paths import SHIPPED_SCHEMA

        # the schema's lock names the major; a decoder given too must be of that schema
        self.decoder = decoder or (Decoder.from_schema(schema) if schema else default_decoder())
        self.major = schema_major(schema or SHIPPED_SCHEMA)
        self.stats = ConsumeStats()
        self._said: set[tuple] = set()
        self._handed_over: set[int] = set()
        self._handed_order: collections.deque[int] = collections.deque()
        self._options = connection.options()
        self._loop = asyncio.new_event_loop()
        try:
            self._nc, self._sub = self._loop.run_until_complete(self._open())
        except BaseException:
            self._loop.close()
            raise

    async def _open(self):
        errors = []

        async def note(exc) -> None:
            errors.append(exc)

        try:
            nc = await asyncio.wait_for(connect(self.endpoint, self._options, error_cb=note), FIRST_CONNECT_S)
        except Exception:  # a timeout: nats-py retries for ever
            # the server's own word (authorization, TLS) says more than the broken pipe after it
            telling = [exc for exc in errors if not isinstance(exc, OSError)] or errors
            last = f" (last: {telling[-1] or type(telling[-1]).__name__})" if telling else ""
            raise FleetError(f"cannot reach {self.endpoint.server} in {FIRST_CONNECT_S:g} s{last}") from None
        js = nc.jetstream()
        try:
            stream = await find_stream(js, self.endpoint.subject)
        except Exception as exc:
            await nc.close()
            raise FleetError(f"{self.endpoint.server}: JetStream does not answer ({exc or type(exc).__name__})") \
                from None
        if stream is None:
            await nc.close()
            raise FleetError(f"no JetStream stream holds {self.endpoint.subject} on {self.endpoint.server} "
                             "(a sensor with --output creates it)")
        sub = await js.pull_subscribe(self.endpoint.subject, durable=self.durable, stream=stream)
        return nc, sub

    def _say(self, key: tuple, line: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.stats.problems.append(line)

    def _decoded(self, batch: Batch) -> Iterator[FleetEvent]:
        sender = batch.sender
        if sender.schema_major != self.major:
            self.stats.undecodable += len(batch.records)
            self._say(("major", sender.host, sender.schema_major),
                      f"{sender.host.hostname}: schema major {sender.schema_major}, this consumer's is {self.major}:"
                      f" its records are not decoded")
            return
        # a spanning event travels as its record and continuations, in one batch
        reassembler = Reassembler(self.decoder)
        for raw in batch.records:
            try:
                events = reassembler.feed(raw)
            except DecodeError as exc:
                self.stats.undecodable += 1
                self._say(("decode", sender.host, str(exc)), f"{sender.host.hostname}: {exc}")
                continue
            yield from self._events_of(sender, events)
        yield from self._events_of(sender, reassembler.flush())

    def _events_of(self, sender: Sender, events) -> Iterator[FleetEvent]:
        for event in events:
            self.stats.events += 1
            yield FleetEvent(sender, event, event_dict(event, sender))

    def _items(self, data: bytes) -> Iterator[FleetEvent]:
        if data[:1] == b"{":
            try:
                record = json.loads(data)
            except ValueError:
                record = None
            if isinstance(record, dict):
                self.stats.events += 1
                yield FleetEvent(None, None, record)
                return
        try:
            batch = unpack(data)
        except EnvelopeError as exc:
            self.stats.bad_messages += 1
            self._say(("envelope", str(exc)), f"a message on {self.endpoint.subject}: {exc}")
            return
        yield from self._decoded(batch)

    def events(self, stop: Callable[[], bool] = lambda: False) -> Iterator[FleetEvent]:
        """Every host's events until stop() is true (checked at least every half second)."""
        from nats.errors import Error as NatsError

        while not stop():
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
                    self.stats.messages += 1
                    yield from self._items(message.data)
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
