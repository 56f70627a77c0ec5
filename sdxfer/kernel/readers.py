"""Transport readers: perf buffer and BPF ring buffer, one shape.

Both hand over batches of raw records, `(cpu, [bytes, ...])` (cpu -1 where
the transport does not say), that Sensor turns into `Record`s (bytes, cpu,
lost) or decodes at once; decoding is separate. A reader is opened before the
probe's programs are attached (see Sensor), so no record is refused for want
of a reader.

The readers read the buffers' shared memory themselves instead of through
bcc's per-record callbacks: a batch costs one slice per record and no call
from C into Python, several times cheaper at high rates. The loader creates
the buffers (the perf events and their wake-up setting; the ring buffer
map), BCC (of_bcc) or sdxfer.kernel.core: a reader needs only their fds.
Reading shared memory without barriers is sound on x86-64, where loads are
not reordered with other loads nor stores with earlier loads: a record's
length is read before its bytes, and its bytes before the position that
hands its space back to the kernel.
"""
from __future__ import annotations

import mmap
import platform
import select
from collections.abc import Callable
from typing import NamedTuple

from ..errors import ProbeError

PAGE_SIZE = mmap.PAGESIZE
# Bytes of records one read takes from a buffer at most (unless told to take
# all): a batch, decoded in one go, then stays in the CPU's caches (a whole
# 1 MiB ring buffer would not).
BATCH_BYTES = 64 << 10
# After a read that found records, the ring buffer reader waits at most this
# long for more: the probe wakes it only once every WAKEUP_EVERY records of a
# CPU, so a flowing stream is polled, not waited for.
BUSY_POLL_MS = 1

# The ring buffer's record header (linux/bpf.h): u32 length with two flag bits, u32 page offset.
RINGBUF_BUSY = 1 << 31  # reserved, not yet committed
RINGBUF_DISCARD = 1 << 30  # committed as discarded: skip it
RINGBUF_HEADER = 8

# perf_event_mmap_page (linux/perf_event.h): where the control page keeps the data area's positions.
PERF_DATA_HEAD = 1024  # u64, written by the kernel
PERF_DATA_TAIL = 1032  # u64, written by the reader
PERF_DATA_OFFSET = 1040
PERF_DATA_SIZE = 1048
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_HEADER = 8  # u32 type, u16 misc, u16 size; a sample then has u32 size and the raw bytes


class Record(NamedTuple):
    """One item from a transport: a raw record (lost == 0), or a loss notice
    (data == b"", lost > 0). cpu is -1 where the transport does not say."""

    data: bytes
    cpu: int
    lost: int


Batch = tuple[int, list[bytes]]  # (cpu or -1, raw records in the order the buffer holds them)


def check_machine() -> None:
    """ProbeError where the readers' lock-free reading of shared memory is not sound."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise ProbeError(f"sdxfer's buffer readers rely on x86-64 memory ordering; this machine is {platform.machine()}")


class _Waiter:
    """Sleeps until one of the buffers' descriptors is readable, or the timeout."""

    def __init__(self, fds):
        self._epoll = select.epoll()
        for fd in fds:
            self._epoll.register(fd, select.EPOLLIN)

    def wait(self, timeout_ms: int) -> None:
        self._epoll.poll(timeout_ms / 1000)

    def close(self) -> None:
        self._epoll.close()


class _PerfBuffer:
    """One CPU's perf ring: its control page and data area, mapped a second
    time beside bcc's own mapping of the same buffer."""

    def __init__(self, fd: int, pages: int, cpu: int):
        self.fd = fd
        self.cpu = cpu
        self.map = mmap.mmap(fd, (1 + pages) * PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.words = memoryview(self.map).cast("Q")  # aligned native loads: never torn
        self.base = self.words[PERF_DATA_OFFSET // 8]
        self.size = self.words[PERF_DATA_SIZE // 8]

    def take(self, on_lost: Callable[[], None], whole: bool) -> list[bytes]:
        words = self.words
        head, tail = words[PERF_DATA_HEAD // 8], words[PERF_DATA_TAIL // 8]
        if head == tail:
            return []
        if not whole:
            head = min(head, tail + BATCH_BYTES)  # the record that starts before it is taken whole
        records: list[bytes] = []
        append, data, base, size = records.append, self.map, self.base, self.size
        mask = size - 1
        while tail < head:
            at = tail & mask
            header = words[(base + at) >> 3]  # records are 8-byte aligned, so a header never wraps
            length = header >> 48
            if at + length <= size:
                if header & 0xFFFFFFFF == PERF_RECORD_SAMPLE:
                    # the raw bytes, padded: the record's own size says where it ends
                    append(data[base + at + PERF_HEADER + 4:base + at + length])
                elif header & 0xFFFFFFFF == PERF_RECORD_LOST:
                    on_lost()
            else:  # the record wraps around the end of the data area
                joined = data[base + at:base + size] + data[base:base + at + length - size]
                if header & 0xFFFFFFFF == PERF_RECORD_SAMPLE:
                    append(joined[PERF_HEADER + 4:])
                elif header & 0xFFFFFFFF == PERF_RECORD_LOST:
                    on_lost()
            tail += length
        words[PERF_DATA_TAIL // 8] = tail  # the space goes back to the kernel
        return records

    def close(self) -> None:
        self.words.release()
        self.map.close()


class PerfReader:
    def __init__(self, buffers, pages: int, on_lost: Callable[[], None]):
        """buffers: (cpu, perf event fd) of each CPU's buffer, `pages` data
        pages each; the fds stay their opener's to close."""
        self._on_lost = on_lost
        self._buffers = [_PerfBuffer(fd, pages, cpu) for cpu, fd in buffers]
        self._waiter = _Waiter(b.fd for b in self._buffers)

    @classmethod
    def of_bcc(cls, bpf, table_name: bytes, pages: int, wakeup_events: int, on_lost: Callable[[], None]):
        from bcc.libbcc import lib

        table = bpf[table_name]
        # bcc opens each CPU's perf event (sample type raw, wakeup_events set) and mmaps it;
        # its callbacks never run, as this reader never asks bcc to poll.
        table.open_perf_buffer(lambda *_: None, page_cnt=pages, wakeup_events=wakeup_events)
        return cls([(cpu, lib.perf_reader_fd(reader))
                    for (table_id, cpu), reader in bpf.perf_buffers.items() if table_id == id(table)], pages, on_lost)

    def _take(self, whole: bool) -> list[Batch]:
        # A lost record means perf_submit failed for some: the probe's drop
        # counters hold them too and give the figure; on_lost says to read them now.
        return [(b.cpu, records) for b in self._buffers if (records := b.take(self._on_lost, whole))]

    def read(self, timeout_ms: int, whole: bool = False) -> list[Batch]:
        """Batches of what arrived, waiting up to timeout_ms for some; whole:
        all the buffers hold, else up to BATCH_BYTES of each."""
        batches = self._take(whole)
        if not batches and timeout_ms > 0:
            self._waiter.wait(timeout_ms)  # woken every wakeup_events records of a CPU
            batches = self._take(whole)
        return batches

    def close(self) -> None:
        self._waiter.close()
        for buffer in self._buffers:
            buffer.close()


class RingReader:
    def __init__(self, fd: int, size: int):
        """fd: the ring buffer map's (its opener's to close); size: its bytes of data, a power of two."""
        self.size = size
        # The kernel's layout: the consumer position's page (ours to write), then
        # the producer position's page and the data area mapped twice in a row,
        # so a record that wraps reads as one slice.
        self._consumer_map = mmap.mmap(fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._map = mmap.mmap(fd, PAGE_SIZE + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE_SIZE)
        self._consumer = memoryview(self._consumer_map).cast("Q")
        self._producer = memoryview(self._map).cast("Q")
        self._lengths = memoryview(self._map).cast("I")
        self._waiter = _Waiter([fd])
        self._flowing = False

    @classmethod
    def of_bcc(cls, bpf, table_name: bytes):
        table = bpf[table_name]
        return cls(table.map_fd, table.max_entries)

    def _take(self, whole: bool) -> list[Batch]:
        consumer, producer = self._consumer[0], self._producer[0]
        if consumer == producer:
            return []
        if not whole:
            producer = min(producer, consumer + BATCH_BYTES)  # the record that starts before it is taken whole
        records: list[bytes] = []
        append, data, lengths = records.append, self._map, self._lengths
        mask = self.size - 1
        while consumer < producer:
            at = PAGE_SIZE + (consumer & mask)
            length = lengths[at >> 2]
            if length & (RINGBUF_BUSY | RINGBUF_DISCARD):
                if length & RINGBUF_BUSY:
                    break  # not committed yet: it and everything after it wait
                length &= ~RINGBUF_DISCARD
            else:
                append(data[at + RINGBUF_HEADER:at + RINGBUF_HEADER + length])
            consumer += (length + RINGBUF_HEADER + 7) & ~7
        self._consumer[0] = consumer  # the space goes back to the kernel
        return [(-1, records)] if records else []

    def read(self, timeout_ms: int, whole: bool = False) -> list[Batch]:
        """As PerfReader.read."""
        batches = self._take(whole)
        if not batches and timeout_ms > 0:
            # The probe wakes the reader only now and then; the timeout collects the rest.
            self._waiter.wait(min(timeout_ms, BUSY_POLL_MS) if self._flowing else timeout_ms)
            batches = self._take(whole)
        self._flowing = bool(batches)
        return batches

    def close(self) -> None:
        self._waiter.close()
        for view in (self._consumer, self._producer, self._lengths):
            view.release()
        self._consumer_map.close()
        self._map.close()
