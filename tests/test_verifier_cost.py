"""What the kernel's verifier spends on the shipped objects (issue 17's start-up
goal): every program of hids.ringbuf.bpf.o, loaded through libbpf with the
verifier's statistics (log level 4), is checked in well under the instructions
its loops once took (over 400,000 for the exec programs and sendmmsg, walked
entry by entry; bpf/'s HIDS_LOOP makes them bpf_loop steps)."""
import ctypes
import re

import pytest

from sdxfer.kernel import libbpf, objects

pytestmark = pytest.mark.live

PROCESSED_MAX = 100_000   # the exec probe: about 55,000 on kernel 6.18
LOG_STATS = 4             # the verifier's log level for its statistics alone


def processed_per_program(path) -> dict[str, int]:
    lib = ctypes.CDLL(libbpf.LIBRARY, use_errno=True)
    for name, restype, argtypes in (
            ("bpf_object__open_file", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
            ("bpf_object__next_program", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
            ("bpf_program__name", ctypes.c_char_p, [ctypes.c_void_p]),
            ("bpf_program__set_log_level", ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
            ("bpf_program__set_log_buf", ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
            ("bpf_object__load", ctypes.c_int, [ctypes.c_void_p]),
            ("bpf_object__close", None, [ctypes.c_void_p])):
        getattr(lib, name).restype, getattr(lib, name).argtypes = restype, argtypes
    obj = lib.bpf_object__open_file(str(path).encode(), None)
    assert obj, f"libbpf could not open {path}"
    logs, program = {}, None
    try:
        while program := lib.bpf_object__next_program(obj, program):
            logs[lib.bpf_program__name(program).decode()] = log = ctypes.create_string_buffer(64 * 1024)
            lib.bpf_program__set_log_level(program, LOG_STATS)
            lib.bpf_program__set_log_buf(program, log, len(log))
        assert lib.bpf_object__load(obj) == 0, f"{path} did not load"
    finally:
        lib.bpf_object__close(obj)
    return {name: int(re.search(rb"processed (\d+) insns", log.value).group(1)) for name, log in logs.items()}


def test_every_shipped_program_verifies_in_few_instructions():
    processed = processed_per_program(objects.shipped().object("ringbuf"))
    assert "raw_tracepoint__sched_process_exec" in processed
    assert {name: n for name, n in processed.items() if n > PROCESSED_MAX} == {}
