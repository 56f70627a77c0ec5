"""Messages waiting for the server's ack: bounded memory, then a bounded
on-disk spool, then exact, counted drops.

Every message has an order key (sender run start, sequence): the oldest is
sent first, wherever it waits. A spool file is one line `SDXS MESSAGE_ID
EVENTS LENGTH CRC32` and the payload, written under a temporary name
(`.partial`) and renamed; files left by an earlier run are picked up (and
resent, under their own message ids) by the next one. A file whose head,
length or checksum is wrong (or that is not a file) is moved into `bad/`,
counted and named, and never sent. The spool is 0700, its files 0600, and
no file in it is opened through a symbolic link.
"""
from __future__ import annotations

import collections
import heapq
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..private import open_private, private_dir

SPOOL_SUFFIX = ".sdxb"
_MAGIC = b"SDXS"
_HEAD_MAX = 1024  # a head is far shorter: a longer first line is not ours


@dataclass(order=True)
class Message:
    key: tuple[int, int]
    message_id: str = field(compare=False)
    payload: bytes = field(compare=False, repr=False)
    events: int = field(compare=False)
    path: Path | None = field(default=None, compare=False)  # in the spool, not in memory
    spooled: int = field(default=0, compare=False)  # the spool file's bytes
    attempts: int = field(default=0, compare=False)  # publishes tried; an earlier run's may have reached the server


@dataclass
class BacklogStats:
    dropped_events: int = 0
    dropped_messages: int = 0
    spooled_messages: int = 0  # ever written to the spool
    restored_messages: int = 0  # found in the spool at start
    bad_files: int = 0  # moved into bad/: damaged, never sent
    bad_events: int = 0  # the events those said they held (when their head could be read)


class BadSpoolFile(ValueError):
    """A spool file that is not whole, or not one of ours."""


def _read_spooled(path: Path, payload: bool) -> tuple[str, int, bytes]:
    """(message id, events, payload) of a spool file, its length checked (and
    with payload, its checksum); BadSpoolFile or OSError otherwise."""
    fd = open_private(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as file:
        head = file.readline(_HEAD_MAX)
        try:
            magic, message_id, events, length, crc = head.split()
            events, length, crc = int(events), int(length), int(crc, 16)
        except ValueError:
            raise BadSpoolFile("not a spool file's head") from None
        if magic != _MAGIC:
            raise BadSpoolFile("not a spool file's head")
        if os.fstat(fd).st_size != len(head) + length:
            raise BadSpoolFile(f"{os.fstat(fd).st_size - len(head)} bytes after its head, which says {length}")
        data = file.read() if payload else b""
    if payload and zlib.crc32(data) != crc:
        raise BadSpoolFile("checksum does not match")
    return message_id.decode(), events, data


class Backlog:
    def __init__(self, memory_bytes: int, spool_dir: str | Path | None = None, spool_bytes: int = 0):
        self.memory_bytes, self.spool_bytes = memory_bytes, spool_bytes
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.stats = BacklogStats()
        self.notes: collections.deque[str] = collections.deque()  # lines for the operator, taken by the output
        self._said: set[str] = set()
        self._heap: list[Message] = []
        self._in_memory = 0
        self._in_spool = 0
        self._cond = threading.Condition()
        if self.spool_dir:
            private_dir(self.spool_dir)
            self._restore()

    def _restore(self) -> None:
        for path in self.spool_dir.glob("*.partial"):
            path.unlink()  # a write an earlier run did not finish: never a message
        for path in sorted(self.spool_dir.glob("*" + SPOOL_SUFFIX)):
            try:
                message_id, events, _ = _read_spooled(path, payload=False)
                key = tuple(int(part) for part in path.stem.split("-"))
                if len(key) != 2:
                    raise BadSpoolFile("not a spool file's name")
            except (BadSpoolFile, OSError) as exc:
                self._move_aside(path, exc)
                continue
            size = path.stat().st_size
            heapq.heappush(self._heap, Message(key, message_id, b"", events, path, size, attempts=1))
            self._in_spool += size
            self.stats.restored_messages += 1

    def _say(self, key: str, line: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.notes.append(line)

    def _move_aside(self, path: Path, exc: Exception, events: int = 0) -> None:
        """A damaged spool file goes into bad/ (kept for a human, never sent): counted and named."""
        bad = private_dir(self.spool_dir / "bad")
        try:
            os.replace(path, bad / path.name)
        except OSError:
            pass  # gone meanwhile: never sent either way
        self.stats.bad_files += 1
        self.stats.bad_events += events
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self._say(f"bad {path.name}", f"spool file {path.name}: {reason}: moved into {bad}, not sent")

    @property
    def memory_used(self) -> int:
        return self._in_memory

    @property
    def spool_used(self) -> int:
        return self._in_spool

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, key: tuple[int, int], message_id: str, payload: bytes, events: int) -> bool:
        """Queues a message; False (and counted) when neither memory nor the spool has room."""
        with self._cond:
            if self._in_memory + len(payload) <= self.memory_bytes:
                heapq.heappush(self._heap, Message(key, message_id, payload, events))
                self._in_memory += len(payload)
            elif not (self._spool_has_room(message_id, events, payload)
                      and self._push_spooled(Message(key, message_id, payload, events))):
                self.stats.dropped_events += events
                self.stats.dropped_messages += 1
                return False
            self._cond.notify()
            return True

    @staticmethod
    def _head(message_id: str, events: int, payload: bytes) -> bytes:
        return b"%s %s %d %d %08x\n" % (_MAGIC, message_id.encode(), events, len(payload), zlib.crc32(payload))

    def _spool_has_room(self, message_id: str, events: int, payload: bytes) -> bool:
        size = len(self._head(message_id, events, payload)) + len(payload)
        return self.spool_dir is not None and self._in_spool + size <= self.spool_bytes

    def _push_spooled(self, message: Message) -> bool:
        """Writes a message to the spool; False (said once per reason) when the disk refuses it."""
        path = self.spool_dir / f"{message.key[0]:020d}-{message.key[1]:012d}{SPOOL_SUFFIX}"
        partial = path.with_suffix(".partial")
        try:
            fd = open_private(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(self._head(message.message_id, message.events, message.payload) + message.payload)
            except BaseException:
                partial.unlink()
                raise
            os.replace(partial, path)
        except OSError as exc:  # a full disk, or a file in the way
            self._say(f"spool {exc.strerror}", f"spool {self.spool_dir}: {exc.strerror or exc}: events dropped"
                      " (all are counted at exit)")
            return False
        size = path.stat().st_size
        self._in_spool += size
        self.stats.spooled_messages += 1
        heapq.heappush(self._heap, Message(message.key, message.message_id, b"", message.events, path, size,
                                           message.attempts))
        return True

    def oldest(self, timeout: float) -> tuple[Message, bytes] | None:
        """The oldest message and its payload, waiting up to timeout for one; it
        stays queued until done(). A damaged spool file is moved aside and skipped."""
        while True:
            with self._cond:
                if not self._heap:
                    self._cond.wait(timeout)
                if not self._heap:
                    return None
                message = self._heap[0]
            if message.path is None:
                return message, message.payload
            try:
                return message, _read_spooled(message.path, payload=True)[2]
            except (BadSpoolFile, OSError) as exc:
                with self._cond:
                    self._forget(message)
                    self._move_aside(message.path, exc, message.events)

    def done(self, message: Message) -> None:
        """The server has the message: forget it."""
        with self._cond:
            message = self._forget(message)
            if message and message.path:
                message.path.unlink()

    def _forget(self, message: Message) -> Message | None:
        """Takes a message out of the queue and its bytes out of the counts; the
        entry it had (spill() may have moved it to the spool meanwhile), or None."""
        if self._heap and self._heap[0] is message:
            heapq.heappop(self._heap)
        else:
            message = next((entry for entry in self._heap if entry.key == message.key), None)
            if message is None:
                return None
            self._heap.remove(message)
            heapq.heapify(self._heap)
        if message.path:
            self._in_spool -= message.spooled
        else:
            self._in_memory -= len(message.payload)
        return message

    def spill(self) -> int:
        """At exit: what waits in memory goes to the spool (room permitting), for
        the next run to send; returns the events that could not be kept."""
        with self._cond:
            lost = 0
            in_memory = sorted(message for message in self._heap if message.path is None)
            self._heap = [message for message in self._heap if message.path is not None]
            heapq.heapify(self._heap)
            for message in in_memory:
                if not (self._spool_has_room(message.message_id, message.events, message.payload)
                        and self._push_spooled(message)):
                    lost += message.events
            self._in_memory = 0
            return lost

    def waiting_events(self) -> int:
        with self._cond:
            return sum(message.events for message in self._heap)
