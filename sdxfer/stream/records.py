"""Events of a byte stream of back-to-back records (a file of records, a
pipe), as `sdxfer decode` reads it.

The stream is read a piece at a time, so memory stays bounded whatever its
length: at most one piece and one record (a record fits one scratch slot,
MAX_SLOT_SIZE) besides what the Reassembler holds.

A record is taken when its header is plausible (a known event's id,
fingerprint, version, payload offset and size agree, or a continuation
record's header carries a known event's fingerprint) and the Reassembler
takes it. Anything else starts a run of skipped bytes that ends at the next
record taken; the next candidate is found by searching for a known
fingerprint where a header holds it. Each run is reported once: its offset,
its length and why its first byte was not a record.
"""
from __future__ import annotations

import operator
import re
import struct
from collections.abc import Callable, Iterator

from .. import runtime as rt
from ..errors import DecodeError
from ..runtime.record import (CONTINUATION_ID, CONTINUATION_PAYLOAD_OFF, HEADER, HEADER_FIELD, HEADER_OFFSETS,
                              HEADER_SIZE, HEADER_STRUCT, MAX_SLOT_SIZE)
from .reassembly import Reassembler

READ_SIZE = 1 << 20  # bytes asked of the stream at once
_FINGERPRINT_OFF = HEADER_OFFSETS["fingerprint"]
# the header fields a plausible header is judged by, from one unpack
_SHAPE = operator.itemgetter(*([name for name, _, _ in HEADER].index(name)
                               for name in ("id", "fingerprint", "version", "payload_off", "size")))


class _Heads:
    """Which record headers are plausible for a decoder's events."""

    def __init__(self, decoder):
        self.by_id = {cls.id: cls for cls in decoder.events.values()}
        self.fingerprints = {cls.fingerprint for cls in self.by_id.values()}
        # (id, fingerprint, version, payload offset) of each published version -> its largest size
        self.known = {(cls.id, cls.fingerprint, number, version.payload_off): version.max_size
                      for cls in self.by_id.values() for number, version in enumerate(cls.versions, start=1)}
        # every plausible header holds one of these bytes at _FINGERPRINT_OFF
        self.search = re.compile(b"|".join(re.escape(struct.pack("<I", fingerprint))
                                           for fingerprint in sorted(self.fingerprints))).search

    def problem(self, buf: bytes, at: int) -> str | None:
        """Why the header at buf[at:] (HEADER_SIZE bytes at least) is not plausible; None when it is."""
        event_id, fingerprint, version, payload_off, size = _SHAPE(HEADER_STRUCT.unpack_from(buf, at))
        most = self.known.get((event_id, fingerprint, version, payload_off))
        if most is not None and payload_off <= size <= most:
            return None  # a published version's record: one look-up, as nearly every record is
        if event_id == CONTINUATION_ID:
            if fingerprint not in self.fingerprints:
                return f"continuation record: fingerprint {fingerprint:#010x} is no known event's"
            if payload_off != CONTINUATION_PAYLOAD_OFF or not payload_off <= size <= MAX_SLOT_SIZE:
                return f"continuation record: payload offset {payload_off}, size {size}"
            return None
        cls = self.by_id.get(event_id)
        if cls is None:
            return f"unknown event id {event_id}"
        try:  # the decoder's own header checks (newer versions too), against the largest record there can be
            rt.bad_head(cls, rt.decoding_version(cls, version), MAX_SLOT_SIZE, fingerprint, version, payload_off, size)
        except DecodeError as exc:
            return str(exc)
        return None


class _Window:
    """The stream's unread bytes: buf[pos:], the first at stream offset base + pos."""

    def __init__(self, read: Callable[[int], bytes]):
        self.read = read
        self.buf, self.pos, self.base, self.eof = b"", 0, 0, False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return len(self.buf) - self.pos

    def fill(self, n: int) -> bool:
        """Read until n bytes are unread: False if the stream ends first."""
        while len(self.buf) - self.pos < n:
            if self.eof:
                return False
            piece = self.read(READ_SIZE)
            self.eof = not piece
            self.base += self.pos
            self.buf, self.pos = self.buf[self.pos:] + piece, 0  # the bytes read drop out
        return True

    def next_candidate(self, search) -> bool:
        """Move past this byte to the next place a header may start; False at the stream's end."""
        self.pos += 1
        while True:
            match = search(self.buf, self.pos + _FINGERPRINT_OFF)
            if match:
                self.pos = match.start() - _FINGERPRINT_OFF
                return True
            # keep only the bytes a header whose fingerprint is still unread could start in
            self.pos = max(self.pos, len(self.buf) - _FINGERPRINT_OFF - 3)
            if not self.fill(self.left + 1):
                self.pos = len(self.buf)
                return False


def iter_reassembled(decoder, read: Callable[[int], bytes], skipped: Callable[[int, int, str], None],
                     **limits) -> Iterator[rt.Event]:
    """Events of the back-to-back records `read(n)` gives (a binary file's
    read1), continuations reassembled (limits: the Reassembler's);
    skipped(offset, length, reason) for each run of bytes that are no record."""
    reassembler = Reassembler(decoder, **limits)
    heads = _Heads(decoder)
    window = _Window(read)
    run = None  # (offset, reason): the start of the bytes being skipped
    while True:
        if not window.fill(HEADER_SIZE):
            if not window.left:
                break
            reason = f"{window.left} bytes, fewer than a header's {HEADER_SIZE}"
        elif (reason := heads.problem(window.buf, window.pos)) is None:
            size = HEADER_FIELD["size"].unpack_from(window.buf, window.pos)[0]
            if not window.fill(size):
                reason = f"a record of {size} bytes, only {window.left} left"
            else:
                try:
                    events = reassembler.feed(window.buf[window.pos:window.pos + size])
                except DecodeError as exc:
                    reason = str(exc)
                else:
                    if run is not None:
                        skipped(run[0], window.offset - run[0], run[1])
                        run = None
                    window.pos += size
                    yield from events
                    continue
        if run is None:
            run = (window.offset, reason)
        if not window.next_candidate(heads.search):
            break
    if run is not None:
        skipped(run[0], window.offset - run[0], run[1])
    yield from reassembler.flush()
