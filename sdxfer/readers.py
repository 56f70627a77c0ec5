"""Transport readers: perf buffer and BPF ring buffer, one shape.

Both hand over `Record`s (bytes, cpu, lost); decoding is separate. A reader
is opened before the probe's programs are attached (see Sensor), so no
record is refused for want of a reader.
"""
from __future__ import annotations

import ctypes
from collections import deque
from typing import Callable, NamedTuple


class Record(NamedTuple):
    """One item from a transport: a raw record (lost == 0), or a loss notice
    (data == b"", lost > 0). cpu is -1 where the transport does not say."""

    data: bytes
    cpu: int
    lost: int


class PerfReader:
    def __init__(self, bpf, table_name: bytes, pages: int, wakeup_events: int, on_lost: Callable[[], None]):
        self._bpf = bpf
        self.pending: deque[Record] = deque()
        self._on_lost = on_lost
        bpf[table_name].open_perf_buffer(self._on_record, page_cnt=pages, lost_cb=self._lost,
                                         wakeup_events=wakeup_events)

    def _on_record(self, cpu, data, size):
        # size is padded: the record's own size field tells the decoder where it ends
        self.pending.append(Record(ctypes.string_at(data, size), cpu, 0))

    def _lost(self, _count):
        # The probe's drop counters hold these records too (perf_submit
        # failed for them) and give the figure; this says to read them now.
        self._on_lost()

    def read(self, timeout_ms: int) -> deque[Record]:
        self._bpf.perf_buffer_poll(timeout_ms)
        # Records short of wakeup_events wait for consume.
        self._bpf.perf_buffer_consume()
        return self.pending


class RingReader:
    def __init__(self, bpf, table_name: bytes):
        self._bpf = bpf
        self.pending: deque[Record] = deque()
        bpf[table_name].open_ring_buffer(self._on_record)

    def _on_record(self, _ctx, data, size):
        self.pending.append(Record(ctypes.string_at(data, size), -1, 0))
        return 0  # bcc's ring buffer callbacks must return an int; None costs ~3x

    def read(self, timeout_ms: int) -> deque[Record]:
        self._bpf.ring_buffer_poll(timeout_ms)
        # The probe wakes the reader only now and then; consume collects the rest.
        self._bpf.ring_buffer_consume()
        return self.pending
