"""Messages waiting for the server's ack: bounded memory, then a bounded
on-disk spool, then exact, counted drops.

Every message has an order key (sender run start, sequence): the oldest is
sent first, wherever it waits. A spool file is one line `SDXS MESSAGE_ID
EVENTS` and the payload, written under a temporary name and renamed, so a
file in the spool is always whole; files left by an earlier run are picked up
(and resent, under their own message ids) by the next one.
"""
from __future__ import annotations

import heapq
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

SPOOL_SUFFIX = ".sdxb"
_MAGIC = b"SDXS"


@dataclass(order=True)
class Message:
    key: tuple[int, int]
    message_id: str = field(compare=False)
    payload: bytes = field(compare=False, repr=False)
    events: int = field(compare=False)
    path: Path | None = field(default=None, compare=False)  # in the spool, not in memory


@dataclass
class BacklogStats:
    dropped_events: int = 0
    dropped_messages: int = 0
    spooled_messages: int = 0  # ever written to the spool
    restored_messages: int = 0  # found in the spool at start


class Backlog:
    def __init__(self, memory_bytes: int, spool_dir: str | Path | None = None, spool_bytes: int = 0):
        self.memory_bytes, self.spool_bytes = memory_bytes, spool_bytes
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.stats = BacklogStats()
        self._heap: list[Message] = []
        self._in_memory = 0
        self._in_spool = 0
        self._cond = threading.Condition()
        if self.spool_dir:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._restore()

    def _restore(self) -> None:
        for path in sorted(self.spool_dir.glob("*" + SPOOL_SUFFIX)):
            with path.open("rb") as file:
                head = file.readline().split()
            try:
                magic, message_id, events = head
                key = tuple(int(part) for part in path.stem.split("-"))
                if magic != _MAGIC or len(key) != 2:
                    raise ValueError
                events = int(events)
            except ValueError:
                path.rename(path.with_suffix(".bad"))  # not ours: kept for a human, never sent
                continue
            heapq.heappush(self._heap, Message(key, message_id.decode(), b"", events, path))
            self._in_spool += path.stat().st_size
            self.stats.restored_messages += 1

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
            elif self._spool_has_room(message_id, events, payload):
                self._push_spooled(Message(key, message_id, payload, events))
            else:
                self.stats.dropped_events += events
                self.stats.dropped_messages += 1
                return False
            self._cond.notify()
            return True

    @staticmethod
    def _head(message_id: str, events: int) -> bytes:
        return b"%s %s %d\n" % (_MAGIC, message_id.encode(), events)

    def _spool_has_room(self, message_id: str, events: int, payload: bytes) -> bool:
        size = len(self._head(message_id, events)) + len(payload)
        return self.spool_dir is not None and self._in_spool + size <= self.spool_bytes

    def _push_spooled(self, message: Message) -> None:
        path = self.spool_dir / f"{message.key[0]:020d}-{message.key[1]:012d}{SPOOL_SUFFIX}"
        partial = path.with_suffix(".partial")
        partial.write_bytes(self._head(message.message_id, message.events) + message.payload)
        os.replace(partial, path)
        self._in_spool += path.stat().st_size
        self.stats.spooled_messages += 1
        heapq.heappush(self._heap, Message(message.key, message.message_id, b"", message.events, path))

    def oldest(self, timeout: float) -> tuple[Message, bytes] | None:
        """The oldest message and its payload, waiting up to timeout for one; it stays queued until done()."""
        with self._cond:
            if not self._heap:
                self._cond.wait(timeout)
            if not self._heap:
                return None
            message = self._heap[0]
        if message.path is None:
            return message, message.payload
        return message, message.path.read_bytes().split(b"\n", 1)[1]

    def done(self, message: Message) -> None:
        """The server has the message: forget it."""
        with self._cond:
            if self._heap and self._heap[0] is message:
                heapq.heappop(self._heap)
            else:  # spill() moved it to the spool while its ack was on the way
                message = next((entry for entry in self._heap if entry.key == message.key), None)
                if message is None:
                    return
                self._heap.remove(message)
                heapq.heapify(self._heap)
            if message.path:
                self._in_spool -= message.path.stat().st_size
                message.path.unlink()
            else:
                self._in_memory -= len(message.payload)

    def spill(self) -> int:
        """At exit: what waits in memory goes to the spool (room permitting), for
        the next run to send; returns the events that could not be kept."""
        with self._cond:
            lost = 0
            in_memory = sorted(message for message in self._heap if message.path is None)
            self._heap = [message for message in self._heap if message.path is not None]
            heapq.heapify(self._heap)
            for message in in_memory:
                if self._spool_has_room(message.message_id, message.events, message.payload):
                    self._push_spooled(message)
                else:
                    lost += message.events
            self._in_memory = 0
            return lost

    def waiting_events(self) -> int:
        with self._cond:
            return sum(message.events for message in self._heap)
