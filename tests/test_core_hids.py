"""The shipped HIDS probe (bpf/hids.bpf.c) as a CO-RE object: `sdxfer build`
compiles it, whole or with events selected, on both transports, and the
kernel's verifier accepts every program (bpftool prog loadall, as root).
The BCC build of the same text is what the live tests run."""
from __future__ import annotations

import pytest

from sdxfer import default_decoder, hids
from sdxfer.runtime import record
from test_core_build import load_all, needs_root, sdxfer_build

pytestmark = needs_root

EVENTS = tuple(default_decoder().events)
TRANSPORTS = {"perf": ["--transport", "perf"], "ringbuf": []}  # sdxfer build: the ring buffer by default


def define_args(defines: dict) -> list[str]:
    return [arg for name, value in defines.items() for arg in ("-D", name if value is None else f"{name}={value}")]


def build_and_load(tmp_path, defines: dict, transport: str) -> set[str]:
    obj = tmp_path / "hids.bpf.o"
    done = sdxfer_build(hids.PROGRAM, *define_args(defines), *TRANSPORTS[transport], "-o", obj)
    assert done.returncode == 0, done.stderr
    done, programs = load_all(obj, debug=False)  # libbpf's debug log: minutes for 53 programs
    assert done.returncode == 0, done.stderr[-3000:]
    return programs


@pytest.fixture(scope="module")
def every_program(tmp_path_factory) -> set[str]:
    return build_and_load(tmp_path_factory.mktemp("all"), {}, "perf")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_event_builds_and_loads(every_program, tmp_path, transport):
    programs = build_and_load(tmp_path, {}, transport)
    assert programs == every_program
    # one per family at least, and the exec record's continuation
    assert {"raw_tracepoint__sched_process_exec", "raw_tracepoint__sched_process_exit", "sdxfer_rest_raw_tracepoint",
            "tracepoint__syscalls__sys_exit_connect", "tracepoint__syscalls__sys_exit_unlinkat"} <= programs


@pytest.mark.parametrize("event", EVENTS)
def test_one_selected_event_builds_and_loads_only_its_programs(every_program, tmp_path, event):
    programs = build_and_load(tmp_path, hids.defines_for([event]), "ringbuf")
    assert programs and programs < every_program


def test_execmon_selection_without_failed_execs_relocates_its_members(tmp_path):
    obj = tmp_path / "exec.bpf.o"
    defines = hids.defines_for(["exec"], failed_execs=False)
    assert sdxfer_build(hids.PROGRAM, *define_args(defines), "-o", obj).returncode == 0
    done, programs = load_all(obj)
    assert done.returncode == 0, done.stderr[-3000:]
    assert programs == {"raw_tracepoint__sched_process_exec", record.REST_PROGRAM, record.EXE_FORGET_PROGRAM}
    for struct in ("task_struct", "mm_struct", "linux_binprm"):
        assert f"struct {struct}: found target candidate" in done.stderr
