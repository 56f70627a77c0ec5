"""Files: NDJSON for log shippers (Vector, Fluent Bit, Filebeat) to tail
(RotatingFile), and raw captures that `sdxfer decode` reads (RawFile).

NDJSON:

PATH is always the file being written; at rotation it becomes PATH.1, PATH.1
becomes PATH.2 and so on, and PATH.KEEP goes (renames keep inodes, which is
how the shippers follow a rotated file). Lines are written only whole, with
O_APPEND, and a rotation happens only between lines, so no line is ever torn
across files. Files are made 0600 and never opened through a symbolic link
(open_private), and a full disk cuts off what it could not take whole.
"""
from __future__ import annotations

import collections
import os
import time
from pathlib import Path

from ..private import open_private
from ..runtime.record import HEADER_FIELD, HEADER_SIZE


class Drops:
    """Events a file could not take (a full disk): counted, each reason said once."""

    def __init__(self):
        self.events = 0
        self.notes: collections.deque[str] = collections.deque()  # lines for the operator, taken by the output
        self._said: set[str] = set()

    def add(self, events: int, where, exc: OSError) -> None:
        self.events += events
        reason = exc.strerror or str(exc)
        if reason not in self._said:
            self._said.add(reason)
            self.notes.append(f"{where}: {reason}: events dropped (all are counted at exit)")


def write_whole(fd: int, data: bytes, size: int) -> None:
    """Appends data to a file of `size` bytes, all of it or nothing: a write
    that fails midway (a full disk) is cut off again, then raised."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.ftruncate(fd, size)
        raise


class RotatingFile:
    def __init__(self, path: str | Path, max_bytes: int, max_age_s: float, keep: int):
        self.path = Path(path)
        self.max_bytes, self.max_age_s, self.keep = max_bytes, max_age_s, keep
        self.rotations = 0
        self.lines = 0
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self._fd = open_private(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        self._size = os.fstat(self._fd).st_size
        self._opened = time.monotonic()
        if self._size and os.pread(self._fd, 1, self._size - 1) != b"\n":
            write_whole(self._fd, b"\n", self._size)  # an earlier run's torn last line: ours start on their own
            self._size += 1

    def _old(self) -> bool:
        return self._size > 0 and self.max_age_s > 0 and time.monotonic() - self._opened >= self.max_age_s

    def rotate(self) -> None:
        self.close()
        for index in range(self.keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if index == self.keep:
                older.unlink(missing_ok=True)
            else:
                newer = self.path.with_name(f"{self.path.name}.{index + 1}")
                if older.exists():
                    os.replace(older, newer)
        if self.keep:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self.rotations += 1
        self._open()

    def write_lines(self, lines: list[str]) -> None:
        """Appends whole lines (no newlines inside); a file passes max_bytes only
        by a single line longer than that. Age is checked once per call.
        OSError (a full disk) leaves no part of a line: `lines` counts those written."""
        if self._fd < 0:
            self._open()  # a rotation that failed
        if self._old():
            self.rotate()
        chunk: list[bytes] = []
        used = 0
        for line in lines:
            data = line.encode("utf-8", "surrogateescape") + b"\n"
            if self._size + used + len(data) > self.max_bytes and self._size + used > 0:
                self._write(chunk, used)
                chunk, used = [], 0
                self.rotate()
            chunk.append(data)
            used += len(data)
        self._write(chunk, used)

    def _write(self, chunk: list[bytes], used: int) -> None:
        write_whole(self._fd, b"".join(chunk), self._size)
        self._size += used
        self.lines += len(chunk)

    def tick(self) -> None:
        """Rotates an old file even while nothing is written."""
        if self._old():
            self.rotate()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def records_in(blob) -> list:
    """The records of a blob holding one or more back to back, each as long as
    its header says: a perf record's padding is left out."""
    view = memoryview(blob)
    records, at = [], 0
    while at + HEADER_SIZE <= len(view):
        size = HEADER_FIELD["size"].unpack_from(view, at)[0]
        if size < HEADER_SIZE or at + size > len(view):
            break
        records.append(view[at:at + size])
        at += size
    return records


class RawFile:
    """A capture: records back to back, exactly as `sdxfer decode` reads them
    (an event's continuation records right after it). Never follows a link,
    appends only to a regular file of this user's that nobody else may read
    (0600 when made here)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records = 0
        self.bytes = 0
        self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._size = os.fstat(self._fd).st_size

    def write(self, blobs) -> None:
        """Appends the records; OSError (a full disk) leaves none of them."""
        records = [record for blob in blobs for record in records_in(blob)]
        chunk = b"".join(records)
        write_whole(self._fd, chunk, self._size)
        self._size += len(chunk)
        self.records += len(records)
        self.bytes += len(chunk)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
