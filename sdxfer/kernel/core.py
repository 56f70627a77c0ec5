"""A CO-RE object (`sdxfer build`) loaded through libbpf: the core backend of Sensor.

    open the object -> read-only globals from the EventFilter, the ring buffer
    sized -> load (libbpf relocates, the verifier checks) -> the continuation
    program in its tail-call array -> the reader opened (perf: one perf event
    per online CPU, put in the events map) -> the filter's maps filled -> attach

Nothing here imports bcc. The transport is the object's, chosen when it was
built; so are the maps of SDXFER_FILTER_CHILDREN and SDXFER_FILTER_CGROUP,
which a run turns on or leaves off. `programs` names the programs to load
(the rest are not loaded: autoload off); the continuation program and the
fork/free programs of --children are the loader's own, loaded as needed.
"""
from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from typing import Iterable

from ..errors import ProbeError
from ..runtime import record
from . import libbpf
from .filters import CGROUP_DEFINE, CHILDREN_DEFINE, EventFilter
from .program import BTF_PATH, SchemaCode, transport_flags
from .readers import PAGE_SIZE, PerfReader, RingReader

ONLINE_CPUS = Path("/sys/devices/system/cpu/online")

# perf_event_open(2) for a BPF output buffer: struct perf_event_attr up to
# its first published size (PERF_ATTR_SIZE_VER0), all else zero.
PERF_ATTR = struct.Struct("<IIQQQQQII8x")  # type, size, config, sample_period, sample_type, read_format, flags, wakeup_events, bp_type
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 8
SYS_PERF_EVENT_OPEN = 298  # x86-64, as the readers are
_libc = ctypes.CDLL(None, use_errno=True)
CPU_STATE = struct.Struct("<" + "Q" * len(record.CPU_STATE))
assert all(c_type == "__u64" for _, c_type in record.CPU_STATE)


def is_object(program) -> bool:
    """A built object (its bytes, or a path to a .o file) rather than C text or a C file."""
    if isinstance(program, (bytes, bytearray)):
        return True
    return isinstance(program, (str, Path)) and "\n" not in str(program) and str(program).endswith(".o")


def check_btf(btf: str | Path | None) -> str | Path | None:
    """The BTF relocations are resolved against: `btf` (a file), else the
    running kernel's; without either, one line that says so."""
    if btf is not None:
        if not os.path.isfile(btf):
            raise ProbeError(f"no BTF file {btf}: give the kernel's BTF (e.g. from its vmlinux, or a BTFHub file)")
        return btf
    if not os.path.exists(BTF_PATH):
        raise ProbeError(f"this kernel has no {BTF_PATH} (built without CONFIG_DEBUG_INFO_BTF): load with --btf FILE,"
                         " a BTF file for this kernel")
    return None


def online_cpus(text: str | None = None) -> list[int]:
    """The CPUs in /sys/devices/system/cpu/online ("0-3,6")."""
    cpus = []
    for part in (text if text is not None else ONLINE_CPUS.read_text()).strip().split(","):
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


def open_perf_event(cpu: int, wakeup_events: int) -> int:
    """A BPF output perf event on `cpu`, waking its reader every wakeup_events records."""
    attr = ctypes.create_string_buffer(PERF_ATTR.pack(PERF_TYPE_SOFTWARE, PERF_ATTR.size, PERF_COUNT_SW_BPF_OUTPUT, 1,
                                                      PERF_SAMPLE_RAW, 0, 0, wakeup_events, 0))
    fd = _libc.syscall(SYS_PERF_EVENT_OPEN, attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise ProbeError(f"could not open the perf buffer of CPU {cpu}: {os.strerror(ctypes.get_errno())}")
    return fd


class CoreProbe:
    """An object loaded, its programs not yet attached (as BCC's DeferredBPF)."""

    def __init__(self, source, code: SchemaCode, *, transport: str | None, ringbuf_pages: int | None,
                 event_filter: EventFilter, programs: Iterable[str] | None = None, btf: str | Path | None = None):
        self._object = libbpf.Object(source, btf=check_btf(btf))
        self._links: dict[str, libbpf.Link] = {}  # by program name
        self._perf_fds: list[int] = []
        self._cpus = 0
        try:
            events = self._object.map(record.EVENTS_MAP)
            self.transport = "ringbuf" if events.type == libbpf.BPF_MAP_TYPE_RINGBUF else "perf"
            if transport is not None and transport != self.transport:
                how = "with -D SDXFER_RINGBUF" if transport == "ringbuf" else "without -D SDXFER_RINGBUF"
                raise ProbeError(f"{self._object.name} was built for the {self.transport} transport:"
                                 f" rebuild it {how} for {transport}")
            if self.transport == "ringbuf":
                pages = code.buffer_pages(ringbuf_pages, record.RINGBUF_PAGES)
                transport_flags("ringbuf", pages)  # checks the size
                self._ringbuf_size = pages * PAGE_SIZE
                events.set_max_entries(self._ringbuf_size)
            self._object.set_read_only(self._filter_globals(event_filter))
            self._select_programs(programs, event_filter.children)
        except BaseException:
            self._object.close()
            raise

    def load(self) -> None:
        """Relocated for this kernel and verified (closed if it fails)."""
        try:
            self._object.load()
            self._cpus = libbpf.possible_cpus()
            self._fill_rest_programs()
        except BaseException:
            self._object.close()
            raise

    def _filter_globals(self, event_filter: EventFilter) -> dict[str, int]:
        for wanted, name, flag in ((event_filter.children, record.FOLLOWED_MAP, CHILDREN_DEFINE),
                                   (event_filter.cgroup is not None, record.CGROUP_MAP, CGROUP_DEFINE)):
            if wanted and self._object.find_map(name) is None:
                raise ProbeError(f"{self._object.name} was built without -D {flag}: rebuild it with it for this filter")
        # With --children the followed map decides, not the pid global. A
        # filter not asked for keeps the object's initial value (its build's
        # -D, else off); children and cgroup are set only when asked for, so
        # an object built without their maps is not asked for their globals.
        values = {"pid": None if event_filter.children else event_filter.pid,
                  "uid": event_filter.uid, "mntns": event_filter.mntns, "not_tgid": event_filter.not_tgid,
                  "children": 1 if event_filter.children else None,
                  "cgroup": 1 if event_filter.cgroup is not None else None}
        return {record.FILTER_GLOBALS[key]: value for key, value in values.items() if value is not None}

    def _select_programs(self, programs: Iterable[str] | None, children: bool) -> None:
        """Autoload off for the programs not named (all are loaded when none are
        named) and for the fork/free programs unless --children is on."""
        every = self._object.programs()
        wanted = None if programs is None else set(programs)
        if wanted is not None:
            unknown = sorted(wanted - {program.name for program in every})
            if unknown:
                raise ProbeError(f"{self._object.name} has no program {', '.join(unknown)}")
        for program in every:
            if program.name in record.FOLLOW_PROGRAMS:
                program.autoload = children
            elif wanted is not None and program.name != record.REST_PROGRAM:  # tail-called by the others
                program.autoload = program.name in wanted

    def _fill_rest_programs(self) -> None:
        """The tail-called program that sends continuation records, in place before any probe runs."""
        programs = self._object.find_map(record.REST_PROGRAMS_MAP)
        if programs is not None:
            rest = self._object.program(record.REST_PROGRAM)
            if rest is None:
                raise ProbeError(f"{self._object.name} has a {record.REST_PROGRAMS_MAP} map but no {record.REST_PROGRAM}")
            programs.update(struct.pack("<I", 0), struct.pack("<I", rest.fd))

    # ---- what Sensor asks of a backend ----------------------------------------------

    def open_reader(self, pages: int, wakeup_events: int, on_lost):
        events = self._object.map(record.EVENTS_MAP)
        if self.transport == "ringbuf":
            return RingReader(events.fd, self._ringbuf_size)
        buffers = []
        try:
            for cpu in online_cpus():
                fd = open_perf_event(cpu, wakeup_events)
                self._perf_fds.append(fd)
                events.update(struct.pack("<I", cpu), struct.pack("<I", fd))
                buffers.append((cpu, fd))
            return PerfReader(buffers, pages, on_lost)
        except BaseException:
            self._close_perf_events()
            raise

    def prepare(self, event_filter: EventFilter) -> None:
        """The filter's maps, as EventFilter.prepare fills BCC's."""
        for name, key, value in event_filter.map_entries():
            if name == record.CGROUP_MAP:
                try:
                    fd = os.open(value, os.O_RDONLY | os.O_DIRECTORY)
                except OSError as exc:
                    raise ProbeError(f"cannot use cgroup {value}: {exc.strerror}") from None
                try:
                    self._object.map(name).update(struct.pack("<I", key), struct.pack("<I", fd))
                finally:
                    os.close(fd)
            else:
                self._object.map(name).update(struct.pack("<I", key), struct.pack("<B", value))

    def attach(self) -> None:
        # the exe_path keeper last: a tracepoint runs its programs in the order they were attached
        programs = sorted(self._object.programs(), key=lambda program: program.name == record.EXE_FORGET_PROGRAM)
        for program in programs:
            if program.autoload and program.name != record.REST_PROGRAM:  # tail-called, attached nowhere
                self._links[program.name] = program.attach()

    @property
    def programs_attached(self) -> int:
        """The events' programs attached; the runtime's exe_path keeper is not one."""
        return len(self._links.keys() - {record.EXE_FORGET_PROGRAM})

    def attachment_fds(self) -> list[int]:
        return [link.fd for link in self._links.values()]

    def program_fds(self) -> dict[str, int]:
        """name -> fd of every program loaded."""
        return {program.name: program.fd for program in self._object.programs() if program.fd >= 0}

    def detach(self) -> None:
        while self._links:
            self._links.popitem()[1].destroy()

    def _per_cpu(self, name: str, index: int, size: int) -> list[bytes]:
        stride = (size + 7) & ~7
        data = self._object.map(name).lookup(struct.pack("<I", index), stride * self._cpus)
        return [data[at:at + size] for at in range(0, len(data), stride)]

    def drops(self, counters: int) -> list[int]:
        return [sum(int.from_bytes(value, "little") for value in self._per_cpu(record.DROPS_MAP, i, 8))
                for i in range(counters)]

    def cpu_states(self) -> list[tuple[int, ...]]:
        return [CPU_STATE.unpack(value) for value in self._per_cpu(record.CPU_MAP, 0, CPU_STATE.size)]

    def _close_perf_events(self) -> None:
        while self._perf_fds:
            os.close(self._perf_fds.pop())

    def close(self) -> None:
        """After the reader is closed."""
        self.detach()
        self._close_perf_events()
        self._object.close()
