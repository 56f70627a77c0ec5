"""`sdxfer build`: CO-RE objects compiled by clang, checked with readelf,
bpftool and the kernel's verifier (bpftool prog loadall, as root)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sdxfer.errors import ProbeError
from sdxfer.kernel import build
from sdxfer.runtime import record

ROOT = Path(__file__).resolve().parent.parent
SDXFER = [sys.executable, "-m", "sdxfer.tools.cli"]
SPANS_PROBE = ROOT / "tests" / "probes" / "spans.bpf.c"
SPANS_SCHEMA = ROOT / "tests" / "schemas" / "spans.yaml"
SPANS_DEFINES = ["-D", "SPAN_BY_TAIL_CALL", "-D", "TARGET_PID=1", "-D", "BAD_FD=987654"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tracefs formats and loading need root")

# docs/probes.md's tutorial: a tracepoint probe (BCC's TRACEPOINT_PROBE and args->field) of its own schema
OPEN_SCHEMA = """version: 1
slot_size: 4096
events:
  - name: file_open
    id: 257
    doc: A task opened a file by name.
    fields:
      - {name: pid, type: u32}
      - {name: flags, type: s32}
      - {name: comm, type: str, max: 16}
      - {name: path, type: ustr, max: 256}
"""
OPEN_PROBE = """#include "xfer.h"

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    __u32 pid = bpf_get_current_pid_tgid() >> 32;
    char comm[16];
    bpf_get_current_comm(comm, sizeof(comm));
    file_open_print(args, pid, args->flags, comm, args->filename);
    return 0;
}
"""


def sdxfer_build(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(SDXFER + ["build", *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env)


def sections(obj: Path) -> set[str]:
    out = subprocess.run(["readelf", "-SW", str(obj)], capture_output=True, text=True, check=True).stdout
    return {line.split("]", 1)[1].split()[0] for line in out.splitlines() if line.lstrip().startswith("[") and "]" in line}


def btf_dump(obj: Path) -> str:
    return subprocess.run(["bpftool", "btf", "dump", "file", str(obj)], capture_output=True, text=True, check=True).stdout


def core_relocation_bytes(obj: Path, tmp_path: Path) -> int:
    """The length of .BTF.ext's CO-RE relocation part (its header's last field)."""
    ext = tmp_path / "btf.ext"
    subprocess.run(["llvm-objcopy", "--dump-section", f".BTF.ext={ext}", str(obj), str(tmp_path / "scratch.o")],
                   check=True)
    data = ext.read_bytes()
    magic, _version, _flags, header_len = struct.unpack_from("<HBBI", data)
    assert magic == 0xEB9F and header_len >= 32
    return struct.unpack_from("<I", data, 28)[0]


def load_all(obj: Path, debug: bool = True) -> tuple[subprocess.CompletedProcess, set[str]]:
    """bpftool prog loadall: the verifier's answer and the programs pinned. With debug, libbpf's
    log (relocations) is kept, but every program is verified with a verbose log: far slower."""
    pins = Path(f"/sys/fs/bpf/sdxfer-test-{os.getpid()}")
    try:
        done = subprocess.run(["bpftool", *(["-d"] if debug else []), "prog", "loadall", str(obj), str(pins)],
                              capture_output=True, text=True)
        return done, set(os.listdir(pins)) if pins.is_dir() else set()
    finally:
        subprocess.run(["rm", "-rf", str(pins)], check=True)


@pytest.fixture
def open_probe(tmp_path):
    (tmp_path / "events.yaml").write_text(OPEN_SCHEMA)
    (tmp_path / "open.bpf.c").write_text(OPEN_PROBE)
    return tmp_path


@needs_root
def test_a_tracepoint_probe_builds_into_an_object_with_btf_maps_and_read_only_settings(open_probe):
    obj = open_probe / "open.bpf.o"
    done = sdxfer_build(open_probe / "open.bpf.c", "--schema", open_probe / "events.yaml", "-o", obj)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"sdxfer build: wrote {obj}\n"
    assert {"tp/syscalls/sys_enter_openat", ".maps", ".rodata", "license", ".BTF", ".BTF.ext"} <= sections(obj)
    dump = btf_dump(obj)
    for name in ("sdxfer_scratch", "sdxfer_cpu", "sdxfer_drops", "sdxfer_events",
                 "sdxfer_filter_pid", "sdxfer_filter_uid", "sdxfer_filter_mntns"):
        assert f"VAR '{name}'" in dump
    assert "FUNC 'tracepoint__syscalls__sys_enter_openat'" in dump
    # the ring buffer, and its batching setting, by default; the perf buffer with --transport perf
    assert "VAR 'sdxfer_wakeup_every'" in dump
    done = sdxfer_build(open_probe / "open.bpf.c", "--schema", open_probe / "events.yaml", "--transport", "perf",
                        "-o", obj)
    assert done.returncode == 0, done.stderr
    assert "sdxfer_wakeup_every" not in btf_dump(obj)
    done = sdxfer_build(open_probe / "open.bpf.c", "--transport", "perf", "-D", "SDXFER_RINGBUF", "-o", obj)
    assert (done.returncode, done.stderr) == (1, "sdxfer build: -D SDXFER_RINGBUF asks for the ring buffer: leave"
                                                 " it out for --transport perf\n")


@needs_root
def test_the_verifier_accepts_a_tracepoint_probe_with_its_members_relocated(open_probe, tmp_path):
    obj = open_probe / "open.bpf.o"
    assert sdxfer_build(open_probe / "open.bpf.c", "--schema", open_probe / "events.yaml", "-o", obj).returncode == 0
    assert core_relocation_bytes(obj, tmp_path) > 0  # the mount namespace filter's members
    done, programs = load_all(obj)
    assert done.returncode == 0, done.stderr[-3000:]
    assert programs == {"tracepoint__syscalls__sys_enter_openat"}
    assert "CO-RE relocating [" in done.stderr and "struct nsproxy" in done.stderr


@needs_root
def test_a_probe_whose_fields_span_records_loads_with_its_tail_called_program(tmp_path):
    """tests/probes/spans.bpf.c, BCC's test probe, as is: raw tracepoint, task
    storage, the continuation program array, pt_regs members by SDXFER_MEMBER."""
    obj = tmp_path / "spans.bpf.o"
    done = sdxfer_build(SPANS_PROBE, "--schema", SPANS_SCHEMA, *SPANS_DEFINES, "-o", obj)
    assert done.returncode == 0, done.stderr
    assert {"raw_tp/sys_enter", "raw_tp"} <= sections(obj)
    dump = btf_dump(obj)
    assert "VAR 'sdxfer_rest'" in dump and "VAR 'sdxfer_rest_programs'" in dump
    done, programs = load_all(obj)
    assert done.returncode == 0, done.stderr[-3000:]
    assert programs == {"raw_tracepoint__sys_enter", "sdxfer_rest_raw_tracepoint"}
    assert "struct pt_regs: found target candidate" in done.stderr


@needs_root
def test_followed_children_and_cgroup_filters_stay_build_time_maps_and_programs(tmp_path):
    obj = tmp_path / "filtered.bpf.o"
    done = sdxfer_build(SPANS_PROBE, "--schema", SPANS_SCHEMA, *SPANS_DEFINES, "-D", "SDXFER_FILTER_PID=1",
                        "-D", "SDXFER_FILTER_CHILDREN", "-D", "SDXFER_FILTER_CGROUP", "-o", obj)
    assert done.returncode == 0, done.stderr
    assert {f"raw_tp/{tracepoint}" for tracepoint in record.FOLLOW_RAW_TRACEPOINTS.values()} <= sections(obj)
    dump = btf_dump(obj)
    assert "VAR 'sdxfer_followed'" in dump and "VAR 'sdxfer_cgroup'" in dump
    done, programs = load_all(obj)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(record.FOLLOW_PROGRAMS) <= programs


@needs_root
def test_only_tracepoints_the_preprocessed_program_attaches_to_need_a_format(open_probe):
    probe = open_probe / "open.bpf.c"
    probe.write_text(OPEN_PROBE + "#ifdef NOT_DEFINED\nTRACEPOINT_PROBE(syscalls, sys_exit_no_such_call) { return 0; }\n#endif\n")
    done = sdxfer_build(probe, "--schema", open_probe / "events.yaml", "-o", open_probe / "open.bpf.o")
    assert done.returncode == 0, done.stderr
    done = sdxfer_build(probe, "--schema", open_probe / "events.yaml", "-D", "NOT_DEFINED", "-o", open_probe / "open.bpf.o")
    assert (done.returncode, done.stderr) == (1, "sdxfer build: TRACEPOINT_PROBE(syscalls, sys_exit_no_such_call):"
                                                 " no such tracepoint in this kernel's tracefs\n")


def test_a_compile_error_names_the_programs_file_and_line(tmp_path):
    probe = tmp_path / "broken.bpf.c"
    probe.write_text('#include "xfer.h"\n\nRAW_TRACEPOINT_PROBE(sys_enter)\n{\n    return no_such_name;\n}\n')
    done = sdxfer_build(probe, "-o", tmp_path / "broken.bpf.o")
    assert done.returncode == 1
    assert f"{probe}:5:12: error: use of undeclared identifier 'no_such_name'" in done.stderr
    assert not (tmp_path / "broken.bpf.o").exists()


def test_without_clang_one_line_says_which_package_to_install(tmp_path):
    probe = tmp_path / "p.bpf.c"
    probe.write_text('#include "xfer.h"\n')
    done = sdxfer_build(probe, "-o", tmp_path / "p.bpf.o", env={**os.environ, "PATH": str(tmp_path)})
    assert (done.returncode, done.stderr) == (1, "sdxfer build: clang not found: sdxfer build needs it"
                                                 " (apt-get install clang)\n")


def test_a_missing_vmlinux_header_or_program_is_one_line(tmp_path):
    probe = tmp_path / "p.bpf.c"
    probe.write_text('#include "xfer.h"\n')
    done = sdxfer_build(probe, "--vmlinux", tmp_path / "nope.h", "-o", tmp_path / "p.bpf.o")
    assert (done.returncode, done.stderr) == (1, f"sdxfer build: cannot read {tmp_path / 'nope.h'}: No such file or directory\n")
    done = sdxfer_build(tmp_path / "nope.bpf.c", "-o", tmp_path / "p.bpf.o")
    assert (done.returncode, done.stderr) == (1, f"sdxfer build: cannot read the program {tmp_path / 'nope.bpf.c'}: no such file\n")


def test_vmlinux_h_is_dumped_once_into_a_private_folder():
    header = build.vmlinux_header()
    assert header == build.vmlinux_header()
    assert "struct task_struct {" in header.read_text()
    folder = os.lstat(header.parent)
    assert folder.st_uid == os.getuid() and folder.st_mode & 0o777 == 0o700


def test_a_cache_folder_that_is_a_link_or_open_to_others_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ProbeError, match="is not a private folder of this user: remove it"):
        build._private_dir(tmp_path / "link")
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    with pytest.raises(ProbeError, match="is not a private folder"):
        build._private_dir(tmp_path / "open")


def test_tracepoint_fields_sit_at_their_format_offsets():
    fmt = ("\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
           "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
           "\tfield:int flags;\toffset:16;\tsize:8;\tsigned:0;\n"
           "\tfield:__data_loc char[] name;\toffset:24;\tsize:4;\tsigned:0;\n")
    text = build.tracepoint_struct("cat", "ev", fmt)
    assert text.splitlines() == [
        "struct tracepoint__cat__ev {",
        "    union { unsigned short common_type; char __field_0[2]; };",
        "    char __pad_2[6];",
        "    union { int __syscall_nr; char __field_8[4]; };",
        "    char __pad_12[4];",
        "    union { int flags; char __field_16[8]; };",
        "    union { __u32 name; char __field_24[4]; };",
        "};",
        '_Static_assert(__builtin_offsetof(struct tracepoint__cat__ev, common_type) == 0, "ev.common_type");',
        '_Static_assert(__builtin_offsetof(struct tracepoint__cat__ev, __syscall_nr) == 8, "ev.__syscall_nr");',
        '_Static_assert(__builtin_offsetof(struct tracepoint__cat__ev, flags) == 16, "ev.flags");',
        '_Static_assert(__builtin_offsetof(struct tracepoint__cat__ev, name) == 24, "ev.name");',
    ]
