"""NATS JetStream, both ways: the connection options, the stream (created if
absent), and the publisher's sending thread.

nats-py is asyncio; the tools are not. The publisher runs its own event loop
in a thread and takes messages from a Backlog, oldest first, one JetStream
ack at a time per message; a message leaves the backlog only once acked, and
a resend carries the same Nats-Msg-Id, so the server keeps one copy.
"""
from __future__ import annotations

import asyncio
import collections
import re
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

ACK_TIMEOUT_S = 2.0
RETRY_S = 0.25
DUPLICATE_WINDOW_S = 120.0
FIRST_CONNECT_S = 5.0
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # NATS's default, until the server's INFO says otherwise
HEADERS_ROOM = 512  # the Nats-Msg-Id header counts against max_payload too


class FleetError(Exception):
    """Bad fleet settings, or a server that refuses them: one line."""


HOST_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a machine id as one subject token


def redacted(url: str) -> str:
    """The URL as it may be printed: a `user:password@` or `token@` in it becomes `***@`."""
    netloc = urlsplit(url).netloc
    return url.replace(netloc, "***@" + netloc.rpartition("@")[2], 1) if "@" in netloc else url


@dataclass(frozen=True)
class Endpoint:
    server: str  # nats://[user:pass@]host:port
    subject: str  # SUBJECT: each host publishes on SUBJECT.<machine-id>, the stream holds SUBJECT.>
    host: str = ""  # a sender's machine id (for_host)

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        subject = parts.path.lstrip("/")
        if parts.scheme not in ("nats", "tls") or not parts.hostname or not subject:
            raise FleetError(f"{redacted(url)!r} is not nats://HOST:PORT/SUBJECT")
        if not re.fullmatch(r"[^\s/]+", subject) or ".." in subject or subject.startswith("."):
            raise FleetError(f"{subject!r} is not a NATS subject")
        try:
            port = parts.port or 4222
        except ValueError:
            raise FleetError(f"bad port in {redacted(url)!r}") from None
        netloc = parts.netloc if parts.port else f"{parts.netloc}:{port}"
        return cls(f"{parts.scheme}://{netloc}", subject)

    def for_host(self, machine_id: str) -> Endpoint:
        """The endpoint a sender publishes to: its machine id is the subject's last
        token, so the server's permissions can tie each host to its own subject."""
        if not HOST_TOKEN.fullmatch(machine_id):
            raise FleetError(f"machine id {machine_id!r} cannot name a NATS subject (1-128 letters, digits, _ or -;"
                             " SDXFER_MACHINE_ID sets it)")
        return Endpoint(self.server, self.subject, machine_id)

    @property
    def publish_subject(self) -> str:
        return f"{self.subject}.{self.host}"

    @property
    def stream_subject(self) -> str:
        """What the stream holds and the consumer reads: every host's subject."""
        return f"{self.subject}.>"

    @property
    def default_stream(self) -> str:
        """A stream name from the subject: sdxfer.events -> SDXFER_EVENTS (wildcards dropped)."""
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", self.subject.replace(">", "").replace("*", "")).strip("_")
        return name.upper() or "SDXFER"


@dataclass(frozen=True)
class Connection:
    """How to reach the server: TLS and credentials, as nats-py offers them."""

    creds: str | None = None  # a .creds file (JWT + NKey seed)
    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def options(self) -> dict:
        options = {}
        if self.creds:
            options["user_credentials"] = self.creds
        if self.token:
            options["token"] = self.token
        if self.tls_ca or self.tls_cert:
            try:
                context = ssl.create_default_context(cafile=self.tls_ca)
                if self.tls_cert:
                    context.load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise FleetError(f"TLS settings: {exc}") from None
            options["tls"] = context
        return options


@dataclass(frozen=True)
class StreamLimits:
    name: str | None = None  # default: from the subject
    max_bytes: int = -1
    max_msgs: int = -1
    max_age_s: float = 0.0  # 0: no limit
    replicas: int = 1

    @classmethod
    def from_args(cls, args) -> StreamLimits:
        """From add_stream_arguments' options."""
        return cls(args.stream, args.stream_max_bytes, args.stream_max_msgs, args.stream_max_age, args.stream_replicas)


async def _quiet(_exc) -> None:
    """nats-py prints every connection error with a traceback; the callers report state instead."""


async def connect(endpoint: Endpoint, options: dict, **settings):
    """A connection that reconnects for ever (first connect included); options:
    Connection.options(), made before (its errors belong to the caller's thread);
    settings: more of nats.connect's (callbacks)."""
    import nats

    settings.setdefault("error_cb", _quiet)
    return await nats.connect(servers=[endpoint.server], connect_timeout=2, reconnect_time_wait=RETRY_S,
                              max_reconnect_attempts=-1, allow_reconnect=True, **options, **settings)


async def find_stream(js, subject: str) -> str | None:
    from nats.js.errors import NotFoundError

    try:
        return await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        return None


async def ensure_stream(js, endpoint: Endpoint, limits: StreamLimits) -> str:
    """The stream that holds the subject; created with the limits if there is none."""
    from nats.js.api import StreamConfig
    from nats.js.errors import BadRequestError

    name = await find_stream(js, endpoint.stream_subject)
    if name:
        return name
    name = limits.name or endpoint.default_stream
    config = StreamConfig(name=name, subjects=[endpoint.stream_subject], max_bytes=limits.max_bytes,
                          max_msgs=limits.max_msgs, max_age=limits.max_age_s or None,
                          num_replicas=limits.replicas, duplicate_window=DUPLICATE_WINDOW_S)
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        raise FleetError(f"cannot create stream {name} for {endpoint.stream_subject}: {exc.description}") from None
    return name


@dataclass
class SendStats:
    published_messages: int = 0  # acked: each in the stream once
    published_events: int = 0
    duplicates: int = 0  # of those, resends the server already had (their first ack was lost)
    taken_messages: int = 0  # sent once, yet the server had their id: another publisher took it
    taken_events: int = 0  # lost with them
    disconnects: int = 0
    oversized_messages: int = 0  # above the server's max_payload: dropped, never sent
    oversized_events: int = 0
    restarts: int = 0  # of the sending thread, after a failure


class Sender:
    """Sends a Backlog's messages to JetStream from a thread of its own."""

    def __init__(self, endpoint: Endpoint, connection: Connection, limits: StreamLimits, backlog):
        self.endpoint, self.limits, self.backlog = endpoint, limits, backlog
        self._options = connection.options()
        self.stats = SendStats()
        self.max_payload = DEFAULT_MAX_PAYLOAD  # the server's, read at every connect and reconnect
        self.notes: collections.deque[str] = collections.deque()  # lines for the operator, taken by the output
        self._stopping = threading.Event()
        self._fatal: str | None = None
        self._failures: set[str] = set()  # each said once
        self._away_since: float | None = None  # since when the server is away
        self._closing = False  # closing a connection ourselves: its disconnect is not the server's
        self._thread = threading.Thread(target=self._main, name="sdxfer-nats", daemon=True)
        self._thread.start()

    @property
    def fatal(self) -> str | None:
        """A reason the sender gave up (a bad setting the server refuses), else None."""
        return self._fatal

    def _main(self) -> None:
        while True:
            try:
                asyncio.run(self._run())
                return
            except FleetError as exc:
                self._fatal = str(exc)
                return
            except Exception as exc:  # unforeseen: said, and sending starts again (what waits stays queued)
                self.stats.restarts += 1
                line = f"the sending thread failed ({type(exc).__name__}: {exc}); restarted"
                if line not in self._failures:
                    self._failures.add(line)
                    self.notes.append(line)
                if self._stopping.wait(RETRY_S):
                    return

    def _away(self) -> None:
        """Said once when the server goes (or is not there at start)."""
        if self._away_since is None and not self._closing:
            self._away_since = time.monotonic()
            self.notes.append("the server is away; events wait in memory (and the spool, if any) until it is back")

    async def _back(self) -> None:
        """Said once when it is back, with what waited for it."""
        if self._away_since is not None:
            self.notes.append(f"the server is back after {time.monotonic() - self._away_since:.0f} s;"
                              f" {self.backlog.waiting_events()} events waited")
            self._away_since = None

    async def _open(self):
        nc = None

        async def disconnected():
            self.stats.disconnects += 1
            self._away()

        async def reconnected():
            if nc is not None:  # the server that took us back may allow less (or more): nats-py has its word
                self.max_payload = nc.max_payload
            await self._back()

        while not self._stopping.is_set():
            try:
                # pending_size 0: a publish while the server is away fails at once (the message stays in
                # the backlog) instead of waiting in nats-py's buffer, sent on reconnect before we know
                # the new server's max_payload: one above it makes the server end the connection
                nc = await asyncio.wait_for(connect(self.endpoint, self._options, disconnected_cb=disconnected,
                                                    reconnected_cb=reconnected, pending_size=0), FIRST_CONNECT_S)
            except Exception:  # no server yet (timeouts, nats-py's NoServersError): try again
                self._away()
                continue
            self.max_payload = nc.max_payload
            try:
                js = nc.jetstream(timeout=ACK_TIMEOUT_S)
                await ensure_stream(js, self.endpoint, self.limits)
            except FleetError:
                await self._close(nc)
                raise
            except Exception:  # the server went away again, or JetStream is not up yet
                await self._close(nc)
                await asyncio.sleep(RETRY_S)
                continue
            await self._back()
            return nc, js
        return None, None

    async def _run(self) -> None:
        nc, js = await self._open()
        if nc is None:
            return
        try:
            while True:
                item = await asyncio.to_thread(self.backlog.oldest, 0.1)
                if item is None:
                    if self._stopping.is_set():
                        return
                    continue
                message, payload = item
                while True:
                    if len(payload) + HEADERS_ROOM > nc.max_payload:
                        ack = None  # built before the server said its limit (or by an earlier run): never fits
                        break
                    message.attempts += 1
                    try:
                        ack = await js.publish(self.endpoint.publish_subject, payload, timeout=ACK_TIMEOUT_S,
                                               headers={"Nats-Msg-Id": message.message_id})
                        break
                    except Exception:  # timeout, no responders, reconnecting: the same message again
                        if self._stopping.is_set():
                            return  # it stays in the backlog
                        if nc.is_closed:  # nats-py gave the connection up (the server ended it): a new one
                            await self._close(nc)
                            nc, js = await self._open()
                            if nc is None:
                                return
                            continue
                        await asyncio.sleep(RETRY_S)
                self.backlog.done(message)
                if ack is None:
                    self._oversized(message, len(payload), nc.max_payload)
                    continue
                if ack.duplicate and message.attempts == 1:
                    # never sent before, yet the server has its id: what it holds is not ours
                    self.stats.taken_messages += 1
                    self.stats.taken_events += message.events
                    self.notes.append(f"error: JetStream already held message id {message.message_id}, sent only"
                                      f" once: another publisher used it; its {message.events} events are lost")
                    continue
                self.stats.published_messages += 1
                self.stats.published_events += message.events
                self.stats.duplicates += bool(ack.duplicate)
        finally:
            try:
                await self._close(nc)
            except Exception:
                pass

    def _oversized(self, message, size: int, limit: int) -> None:
        """A message above the server's max_payload: dropped, counted, said the first time."""
        self.stats.oversized_messages += 1
        self.stats.oversized_events += message.events
        if self.stats.oversized_messages == 1:
            self.notes.append(f"a message of {size} bytes ({message.events} events) is above the server's"
                              f" max_payload ({limit} bytes): dropped (all such are counted at exit)")

    async def _close(self, nc) -> None:
        """Closes a connection of ours: not the server going away."""
        self._closing = True
        try:
            await nc.close()
        finally:
            self._closing = False

    def close(self, timeout_s: float) -> None:
        """Sends what waits for up to timeout_s, then stops."""
        deadline = time.monotonic() + timeout_s
        while len(self.backlog) and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        self._stopping.set()
        self._thread.join(timeout=ACK_TIMEOUT_S + 1)
