"""What the command-line tools share: terminal-safe text, kernel time as
wall-clock time, a stop flag raised by Ctrl+C or SIGTERM, and a readable
`key=value` rendering of any decoded event."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import pwd
import re
import signal
import time

from ._runtime import Creds, SockAddr

# Characters that could move the cursor, recolour or retitle a terminal, or
# reorder text: C0, DEL, C1 and the bidirectional controls.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_char(match: re.Match) -> str:
    char = match.group(0)
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # a non-UTF-8 byte carried by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def escape(text: str) -> str:
    """Text safe to print on a terminal; every unsafe character becomes a visible escape."""
    return _UNSAFE.sub(_escape_char, text)


def quote(arg: str) -> str:
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Clock:
    """Turns kernel timestamps (CLOCK_MONOTONIC ns) into wall-clock time."""

    def __init__(self, start_ns: int | None = None, wall_minus_mono_ns: int | None = None):
        # another host's offset turns that host's kernel timestamps into wall time
        self.wall_minus_mono_ns = time.time_ns() - time.monotonic_ns() if wall_minus_mono_ns is None \
            else wall_minus_mono_ns
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns

    def wall(self, timestamp_ns: int) -> datetime.datetime:
        # integer arithmetic: ns / 1e9 as a float loses microseconds at today's epoch
        seconds, ns = divmod(timestamp_ns + self.wall_minus_mono_ns, 1_000_000_000)
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc) + datetime.timedelta(
            microseconds=ns // 1000)

    def iso(self, timestamp_ns: int) -> str:
        return self.wall(timestamp_ns).isoformat(timespec="microseconds").replace("+00:00", "Z")

    def local_hms(self, timestamp_ns: int) -> str:
        return self.wall(timestamp_ns).astimezone().strftime("%H:%M:%S")

    def seconds_since_start(self, timestamp_ns: int) -> float:
        return (timestamp_ns - self.start_ns) / 1e9


@contextlib.contextmanager
def stop_on_signals():
    """Yields stop(), which turns true at SIGINT or SIGTERM; restores the old handlers."""
    stopping = []
    previous = {sig: signal.signal(sig, lambda _sig, _frame: stopping.append(True))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)




def format_value(value) -> str:
    """One field's value, readable and terminal-safe."""
    if value is None:
        return "null"
    if isinstance(value, str):
        text = escape(value)  # control characters become visible escapes
        return '"' + text.replace('"', '\\"') + '"' if not text or re.search(r'[ "=]', text) else text
    if isinstance(value, list):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, SockAddr):
        if value.address is None:
            return f"family{value.family}:{value.port}"
        host = f"[{value.address}]" if isinstance(value.address, ipaddress.IPv6Address) else str(value.address)
        return f"{host}:{value.port}"
    if isinstance(value, Creds):
        return ",".join(f"{name}:{getattr(value, name)}" for name in Creds._fields)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # an array's entry
        return "{" + ",".join(f"{k}={format_value(v)}" for k, v in value._asdict().items()) + "}"
    return str(value)


def event_fields(event, skip: tuple[str, ...] = ()) -> str:
    """`key=value ...` for every field of an event, then what was truncated."""
    parts = [f"{name}={format_value(event.value(name))}" for name in event.fields if name not in skip]
    if event.truncated:
        parts.append("truncated=" + ",".join(event.truncated))
    return " ".join(parts)


def user_id(text: str) -> int:
    """argparse type: a user name or number, as a UID."""
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {text}") from None


def regex(text: str) -> re.Pattern:
    """argparse type: a compiled regular expression."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"bad regular expression {text!r}: {exc}") from None
