"""Text for people: terminal-safe strings, a readable `key=value` rendering
of any decoded event, argparse types, and a stop flag raised by Ctrl+C or
SIGTERM."""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import pwd
import re
import signal

from ..runtime import Creds, SockAddr
from ..stream.vocabulary import Clock
from .readable import READABLE

# Characters that could move the cursor, recolour or retitle a terminal, or
# reorder or break text: C0, DEL, C1, the bidirectional controls and the
# line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\udc80-\udcff]")
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
        # a backslash doubled, so `\\n` is not taken for an escaped newline;
        # control characters become visible escapes
        text = escape(value.replace("\\", "\\\\"))
        return '"' + text.replace('"', '\\"') + '"' if not text or re.search(r'[\s"=]', text) else text
    if isinstance(value, list):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):  # a JSON-wire message's object: its keys are the sender's text too
        return "{" + ",".join(f"{escape(key)}={format_value(item)}" for key, item in value.items()) + "}"
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
    """`key=value ...` for every field of an event, numbers that mean something
    made readable (sdxfer.tools.readable), then what was truncated."""
    parts = []
    for name in event.fields:
        if name in skip:
            continue
        value = event.value(name)
        readable = READABLE.get((event.name, name))
        if readable is not None and isinstance(value, int):
            parts += [f"{key}={text}" for key, text in readable(value)]
        else:
            parts.append(f"{name}={format_value(value)}")
    if event.truncated:
        parts.append("truncated=" + ",".join(event.truncated))
    return " ".join(parts)


SHORT_PATH_WIDTH = 32
_DELETED = " (deleted)"  # what the kernel appends to the path of a file with no link left


def path_token(path: str) -> str:
    """A path as one token of a text line: escaped and quoted as a value is
    (format_value), with the kernel's own " (deleted)" at its end left
    outside the quotes (/memfd:NAME (deleted) stays as the kernel shows it)."""
    if path.endswith(_DELETED) and len(path) > len(_DELETED):
        return format_value(path[:-len(_DELETED)]) + _DELETED
    return format_value(path)


def short_path(path: str | None, width: int = SHORT_PATH_WIDTH, unknown: bool = False) -> str:
    """A path in at most `width` characters (path_token's): whole when it
    fits, else its last components after "...", or the last characters of
    its last component, cut between characters of the path, never inside an
    escape; "-" for none, "?" for one unknown (a field the kernel flagged
    without text)."""
    if not path:
        return "?" if unknown else "-"
    shown = path_token(path)
    if len(shown) <= width:
        return shown
    starts = range(len(path) - 1, 0, -1)
    components = (at for at in starts if path[at] == "/")
    return _longest_tail(path, components, width) or _longest_tail(path, starts, width) or "..."


def _longest_tail(path: str, starts, width: int) -> str | None:
    """"..." and the longest path[start:] (starts given shortest first) that
    fits `width` as a token; None when even the first does not. A longer
    tail never renders shorter, so the first that does not fit ends the search."""
    shown = None
    for start in starts:
        tail = path_token("..." + path[start:])
        if len(tail) > width:
            break
        shown = tail
    return shown


def event_line(event, clock: Clock, skip: tuple[str, ...] = ()) -> str:
    """One text line: local time, event, pid, comm, the executable's path
    (short form) when the event has it, then the other fields as key=value
    (those in skip left out: the common ones, which JSON carries)."""
    stamp = clock.wall(event.timestamp_ns).astimezone().strftime("%H:%M:%S.%f")[:-3]
    pid = event.value("pid") if "pid" in event.fields else "-"
    # one token, as a value is: a name like "x ret=0" cannot pass for fields
    comm = format_value(event.value("comm") or "") if "comm" in event.fields else "-"
    exe = ""
    if "exe_path" in event.fields:
        path = short_path(event.value("exe_path"), unknown="exe_path" in event.truncated)
        exe = f"{path:<{SHORT_PATH_WIDTH}} "
    own = event_fields(event, skip=tuple(skip) + ("pid", "comm", "exe_path"))
    return f"{stamp} {event.name:<13} {pid!s:<7} {comm:<16} {exe}{own}".rstrip()


def silence_stdout(stdout) -> None:
    """The reader of stdout went away (... | head): send the rest, and the
    interpreter's final flush, nowhere instead of failing on the closed pipe."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


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
