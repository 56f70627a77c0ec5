"""Files: NDJSON for log shippers (Vector, Fluent Bit, Filebeat) to tail
(RotatingFile), and raw captures that `sdxfer decode` reads (RawFile).

NDJSON:

PATH is always the file being written; at rotation it becomes PATH.1, PATH.1
becomes PATH.2 and so on, and PATH.KEEP goes (renames keep inodes, which is
how the shippers follow a rotated file). Lines are written only whole, with
O_APPEND, and a rotation happens only between lines, so no line is ever torn
across files.
"""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from ..runtime.record import HEADER_FIELD, HEADER_SIZE


class RotatingFile:
    def __init__(self, path: str | Path, max_bytes: int, max_age_s: float, keep: int):
        self.path = Path(path)
        self.max_bytes, self.max_age_s, self.keep = max_bytes, max_age_s, keep
        self.rotations = 0
        self.lines = 0
        self._fd = -1
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._opened = time.monotonic()

    def _old(self) -> bool:
        return self._size > 0 and self.max_age_s > 0 and time.monotonic() - self._opened >= self.max_age_s

    def rotate(self) -> None:
        os.close(self._fd)
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
        by a single line longer than that. Age is checked once per call."""
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
        self.lines += len(lines)

    def _write(self, chunk: list[bytes], used: int) -> None:
        view = memoryview(b"".join(chunk))
        while view:
            view = view[os.write(self._fd, view):]
        self._size += used

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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        info = os.fstat(fd)
        problem = ("not a regular file" if not stat.S_ISREG(info.st_mode)
                   else f"owned by uid {info.st_uid}, not this user ({os.geteuid()})" if info.st_uid != os.geteuid()
                   else f"mode {stat.S_IMODE(info.st_mode):o} lets others read it (chmod 600)"
                   if info.st_mode & 0o077 else None)
        if problem:
            os.close(fd)
            raise PermissionError(f"{self.path}: {problem}")
        self._fd = fd

    def write(self, blobs) -> None:
        records = [record for blob in blobs for record in records_in(blob)]
        chunk = b"".join(records)
        self.records += len(records)
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._fd, view):]
        self.bytes += len(chunk)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
