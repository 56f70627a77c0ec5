"""The system's libbpf (libbpf.so.1, Debian's libbpf1, 1.1 and later) through ctypes.

A thin layer over libbpf's C API, enough to load an object `sdxfer build`
wrote: open it, set its read-only globals and map sizes, load it (libbpf
relocates it for the running kernel), attach its programs, read and write
its maps. Every failure is one ProbeError line; a verifier rejection names
the program and the verifier's last word.

Why ctypes: Debian packages no libbpf binding for this Python (python3-bpfcc
is BCC's own), and the few calls needed here do not justify building one;
ctypes keeps the dependency at the system library itself.

Pointer-returning calls of libbpf 1.x return NULL and set errno; int calls
return a negative errno.
"""
from __future__ import annotations

import ctypes
import os
import re
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_int, c_int32, c_size_t, c_uint32, c_uint64,
                    c_void_p)
from pathlib import Path

from ..errors import ProbeError

LIBRARY = "libbpf.so.1"
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_RINGBUF = 27
BTF_KIND_DATASEC = 15
BTF_TYPE_HEADER = 12  # struct btf_type: name_off, info, size/type (u32 each); a DATASEC's secinfos follow
LIBBPF_INFO = 1  # print levels: WARN 0, INFO 1, DEBUG 2 (debug is not kept)
# x86-64's va_list: one 24-byte __va_list_tag, passed by address. Copying it
# is what va_copy does, so a message can be measured, then formatted.
VA_LIST_SIZE = 24

_PRINT = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)


class OpenOptions(Structure):
    """struct bpf_object_open_opts up to btf_custom_path (libbpf 1.1): libbpf
    reads only the `sz` bytes it is told, so later fields keep their defaults."""

    _fields_ = [("sz", c_size_t), ("object_name", c_char_p), ("relaxed_maps", c_bool), ("pin_root_path", c_char_p),
                ("_attach_prog_fd", c_uint32), ("kconfig", c_char_p), ("btf_custom_path", c_char_p)]


_SIGNATURES = {
    "bpf_object__open_file": (c_void_p, [c_char_p, POINTER(OpenOptions)]),
    "bpf_object__open_mem": (c_void_p, [c_void_p, c_size_t, POINTER(OpenOptions)]),
    "bpf_object__load": (c_int, [c_void_p]),
    "bpf_object__close": (None, [c_void_p]),
    "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
    "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
    "bpf_object__btf": (c_void_p, [c_void_p]),
    "bpf_map__initial_value": (c_void_p, [c_void_p, POINTER(c_size_t)]),
    "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
    "bpf_map__fd": (c_int, [c_void_p]),
    "bpf_map__type": (c_int, [c_void_p]),
    "bpf_program__attach": (c_void_p, [c_void_p]),
    "bpf_program__fd": (c_int, [c_void_p]),
    "bpf_program__name": (c_char_p, [c_void_p]),
    "bpf_program__autoload": (c_bool, [c_void_p]),
    "bpf_program__set_autoload": (c_int, [c_void_p, c_bool]),
    "bpf_link__destroy": (c_int, [c_void_p]),
    "bpf_link__fd": (c_int, [c_void_p]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "libbpf_set_print": (c_void_p, [c_void_p]),
    "libbpf_num_possible_cpus": (c_int, []),
    "btf__find_by_name_kind": (c_int32, [c_void_p, c_char_p, c_uint32]),
    "btf__type_by_id": (c_void_p, [c_void_p, c_uint32]),
    "btf__name_by_offset": (c_char_p, [c_void_p, c_uint32]),
}

_lib = None
_libc = None
# libbpf's print function is one per process: one capture at a time.
_capturing = threading.Lock()


def library() -> ctypes.CDLL:
    """libbpf, its calls declared; ProbeError (one line) where it is missing or too old."""
    global _lib, _libc
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError:
            raise ProbeError(f"{LIBRARY} not found: loading a built object needs libbpf (apt-get install libbpf1)") from None
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                function = getattr(lib, name)
            except AttributeError:
                raise ProbeError(f"{LIBRARY} lacks {name}(): libbpf 1.1 or later is needed") from None
            function.restype, function.argtypes = restype, argtypes
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.vsnprintf.restype, _libc.vsnprintf.argtypes = c_int, [c_char_p, c_size_t, c_char_p, c_void_p]
        _lib = lib
    return _lib


def _errno_text(err: int) -> str:
    return os.strerror(abs(err)) if err else "unknown error"


class _Log:
    """What libbpf prints while a call runs, line by line, instead of its stderr."""

    def __init__(self):
        self.lines: list[str] = []
        self._callback = _PRINT(self._print)  # kept alive while libbpf holds it

    def _print(self, level: int, fmt: bytes, args: int) -> int:
        if level > LIBBPF_INFO:
            return 0
        copy = ctypes.create_string_buffer(VA_LIST_SIZE)
        ctypes.memmove(copy, args, VA_LIST_SIZE)
        size = _libc.vsnprintf(None, 0, fmt, ctypes.addressof(copy)) + 1
        text = ctypes.create_string_buffer(max(size, 1))
        _libc.vsnprintf(text, size, fmt, args)
        self.lines += [line.rstrip() for line in text.value.decode(errors="replace").splitlines() if line.strip()]
        return 0

    def __enter__(self):
        lib = library()  # before the lock: a missing library raises with nothing held
        _capturing.acquire()
        self._saved = lib.libbpf_set_print(ctypes.cast(self._callback, c_void_p))
        return self

    def __exit__(self, *exc):
        library().libbpf_set_print(self._saved)
        _capturing.release()

    def last(self) -> str:
        """libbpf's last line of its own, its "libbpf: " prefix dropped."""
        return self.lines[-1].removeprefix("libbpf: ") if self.lines else ""


def verifier_verdict(lines: list[str]) -> str:
    """The verifier's verdict: the last line of its log before its statistics."""
    return next((line for line in reversed(lines)
                 if not line.startswith(("processed", "verification time", "stack depth", "-- END", "libbpf:"))), "")


def rejection(program: str, reason: str, log: list[str]) -> ProbeError:
    return ProbeError(f"the kernel's verifier rejected program {program} ({reason}): {verifier_verdict(log)}")


class Map:
    """One map of an object; `fd` once the object is loaded."""

    def __init__(self, pointer: int, name: str):
        self._pointer = pointer
        self.name = name

    @property
    def type(self) -> int:
        return library().bpf_map__type(self._pointer)

    @property
    def fd(self) -> int:
        fd = library().bpf_map__fd(self._pointer)
        if fd < 0:
            raise ProbeError(f"map {self.name} is not loaded")
        return fd

    def set_max_entries(self, entries: int) -> None:
        err = library().bpf_map__set_max_entries(self._pointer, entries)
        if err:
            raise ProbeError(f"cannot size map {self.name} to {entries} entries: {_errno_text(err)}")

    def initial_value(self) -> memoryview:
        """The bytes a global data map (.rodata) starts with, writable until load."""
        size = c_size_t()
        pointer = library().bpf_map__initial_value(self._pointer, ctypes.byref(size))
        if not pointer:
            raise ProbeError(f"map {self.name} has no initial value")
        return memoryview((ctypes.c_char * size.value).from_address(pointer)).cast("B")

    def update(self, key: bytes, value: bytes) -> None:
        err = library().bpf_map_update_elem(self.fd, key, value, 0)
        if err:
            raise ProbeError(f"cannot update map {self.name}: {_errno_text(err)}")

    def lookup(self, key: bytes, value_size: int) -> bytes:
        """The value's bytes (a per-CPU map's: every possible CPU's, each 8-byte aligned)."""
        value = ctypes.create_string_buffer(value_size)
        err = library().bpf_map_lookup_elem(self.fd, key, value)
        if err:
            raise ProbeError(f"cannot read map {self.name}: {_errno_text(err)}")
        return value.raw


class Program:
    def __init__(self, pointer: int):
        self._pointer = pointer
        self.name = library().bpf_program__name(pointer).decode()

    @property
    def fd(self) -> int:
        return library().bpf_program__fd(self._pointer)

    @property
    def autoload(self) -> bool:
        """Whether load() puts it in the kernel (every program, unless turned off before load)."""
        return library().bpf_program__autoload(self._pointer)

    @autoload.setter
    def autoload(self, wanted: bool) -> None:
        err = library().bpf_program__set_autoload(self._pointer, wanted)
        if err:
            raise ProbeError(f"cannot {'load' if wanted else 'leave out'} program {self.name}: {_errno_text(err)}")

    def attach(self) -> Link:
        """Where its section says (tp/CATEGORY/EVENT, raw_tp/EVENT)."""
        with _Log() as log:
            link = library().bpf_program__attach(self._pointer)
        if not link:
            raise ProbeError(f"could not attach program {self.name}: {_errno_text(ctypes.get_errno())}"
                             f" ({log.last() or 'does this kernel have the tracepoint?'})")
        return Link(link)


class Link:
    def __init__(self, pointer: int):
        self._pointer = pointer

    @property
    def fd(self) -> int:
        return library().bpf_link__fd(self._pointer)

    def destroy(self) -> None:
        if self._pointer:
            library().bpf_link__destroy(self._pointer)
            self._pointer = None


class Object:
    """A BPF object file (path) or its bytes, opened; load() puts it in the kernel.
    `btf`: the kernel BTF its CO-RE relocations are resolved against, where not
    the running kernel's /sys/kernel/btf/vmlinux."""

    def __init__(self, source: str | Path | bytes, btf: str | Path | None = None):
        lib = library()
        self._buffer = None
        options = OpenOptions(sz=ctypes.sizeof(OpenOptions),
                              btf_custom_path=None if btf is None else os.fsencode(btf))
        with _Log() as log:
            if isinstance(source, (bytes, bytearray)):
                self.name = "<object bytes>"
                self._buffer = ctypes.create_string_buffer(bytes(source), len(source))  # libbpf reads it until load
                pointer = lib.bpf_object__open_mem(self._buffer, len(source), ctypes.byref(options))
            else:
                self.name = str(source)
                pointer = lib.bpf_object__open_file(os.fsencode(source), ctypes.byref(options))
            err = ctypes.get_errno()
        if not pointer:
            raise ProbeError(f"libbpf could not open {self.name}: {_errno_text(err)}"
                             + (f" ({log.last()})" if log.lines else ""))
        self._pointer = pointer

    @property
    def _open(self):
        """The libbpf object; once closed, a ProbeError (libbpf would crash on its NULL)."""
        if not self._pointer:
            raise ProbeError(f"{self.name} is closed: its maps and programs are gone")
        return self._pointer

    def find_map(self, name: str) -> Map | None:
        pointer = library().bpf_object__find_map_by_name(self._open, name.encode())
        return Map(pointer, name) if pointer else None

    def map(self, name: str) -> Map:
        found = self.find_map(name)
        if found is None:
            raise ProbeError(f"{self.name} has no map {name}: was it built by sdxfer build?")
        return found

    def programs(self) -> list[Program]:
        found, pointer = [], None
        while pointer := library().bpf_object__next_program(self._open, pointer):
            found.append(Program(pointer))
        return found

    def program(self, name: str) -> Program | None:
        pointer = library().bpf_object__find_program_by_name(self._open, name.encode())
        return Program(pointer) if pointer else None

    def globals(self, section: str = ".rodata") -> dict[str, tuple[int, int]]:
        """The variables of a global data section: name -> (offset, size), from the object's BTF."""
        lib = library()
        btf = lib.bpf_object__btf(self._open)
        type_id = lib.btf__find_by_name_kind(btf, section.encode(), BTF_KIND_DATASEC) if btf else -1
        if type_id <= 0:
            return {}
        datasec = lib.btf__type_by_id(btf, type_id)
        count = ctypes.c_uint32.from_address(datasec + 4).value & 0xFFFF
        found = {}
        for i in range(count):
            var_id, offset, size = (ctypes.c_uint32 * 3).from_address(datasec + BTF_TYPE_HEADER + 12 * i)
            name_off = ctypes.c_uint32.from_address(lib.btf__type_by_id(btf, var_id)).value
            found[lib.btf__name_by_offset(btf, name_off).decode()] = (offset, size)
        return found

    def set_read_only(self, values: dict[str, int]) -> None:
        """Sets read-only globals (unsigned, native order) before load; a name
        the object lacks is refused."""
        if not values:
            return
        places = self.globals(".rodata")
        missing = sorted(set(values) - set(places))
        if missing:
            raise ProbeError(f"{self.name} has no read-only global {', '.join(missing)}: rebuild it with sdxfer build")
        data = self.map(".rodata").initial_value()
        for name, value in values.items():
            offset, size = places[name]
            data[offset:offset + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    def load(self) -> None:
        """Relocates and loads every map and program; ProbeError naming a program the verifier refused."""
        with _Log() as log:
            err = library().bpf_object__load(self._open)
        if not err:
            return
        failed = next((m for line in log.lines if (m := re.search(r"prog '(\w+)': (?:BPF program )?load failed", line))),
                      None)
        if failed and any("BEGIN PROG LOAD LOG" in line for line in log.lines):
            begin = max(i for i, line in enumerate(log.lines) if "BEGIN PROG LOAD LOG" in line)
            raise rejection(failed.group(1), _errno_text(err), log.lines[begin + 1:])
        raise ProbeError(f"libbpf could not load {self.name}: {_errno_text(err)}"
                         + (f" ({log.last()})" if log.lines else ""))

    def close(self) -> None:
        if self._pointer:
            library().bpf_object__close(self._pointer)
            self._pointer = None
        self._buffer = None


def possible_cpus() -> int:
    count = library().libbpf_num_possible_cpus()
    if count <= 0:
        raise ProbeError(f"cannot count this machine's CPUs: {_errno_text(count)}")
    return count
