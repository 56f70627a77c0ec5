"""NDJSON files for log shippers (Vector, Fluent Bit, Filebeat) to tail.

PATH is always the file being written; at rotation it becomes PATH.1, PATH.1
becomes PATH.2 and so on, and PATH.KEEP goes (renames keep inodes, which is
how the shippers follow a rotated file). Lines are written only whole, a
batch at a time with O_APPEND, and a rotation happens only between batches,
so no line is ever torn across files.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


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

    def _due(self, adding: int) -> bool:
        if self._size == 0:
            return False
        return (self._size + adding > self.max_bytes
                or (self.max_age_s > 0 and time.monotonic() - self._opened >= self.max_age_s))

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
        """Appends whole lines (no newlines inside), rotating first when size or age say so."""
        data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
        if self._due(len(data)):
            self.rotate()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._size += len(data)
        self.lines += len(lines)

    def tick(self) -> None:
        """Rotates an old file even while nothing is written."""
        if self._due(0):
            self.rotate()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
