"""sdxfer.loader without loading anything: amalgamation, configuration, and
the one-line errors for each thing a host can lack."""

import os
import sys

import pytest

from sdxfer import loader
from sdxfer.loader import ProbeError


def test_amalgamate_inlines_quoted_includes_from_the_generated_dir(tmp_path):
    (tmp_path / "a.h").write_text('#include "b.h"\nint a;\n')
    (tmp_path / "b.h").write_text("int b;\n")
    source = '#include <linux/sched.h>\n#include "a.h"\n#include "b.h"\n#include "elsewhere.h"\nint main;\n'
    text = loader.amalgamate(source, tmp_path)
    assert "#include <linux/sched.h>" in text
    assert '#include "elsewhere.h"' in text  # not ours: left to the compiler
    assert text.index("int b;") < text.index("int a;") < text.index("int main;")
    assert text.count("int b;") == 2  # once per include, as the preprocessor would (guards do the rest)


def test_amalgamate_stops_include_cycles(tmp_path):
    (tmp_path / "a.h").write_text('#include "a.h"\nint a;\n')
    text = loader.amalgamate('#include "a.h"\n', tmp_path)
    assert text.count("int a;") == 1
    assert "already included" in text


def test_probe_amalgamates_with_the_generated_header():
    text = loader.amalgamate(loader.probe_source_path().read_text(), loader.generated_dir())
    assert '#include "xfer.h"' not in text
    assert "exec_print(" in text and "RAW_TRACEPOINT_PROBE(sched_process_exec)" in text


def test_cflags_carry_offsets_and_transport():
    offsets = {"BTF_OFF_TASK_STRUCT_MM": 1136}
    assert loader.cflags_for("perf", offsets) == ["-DBTF_OFF_TASK_STRUCT_MM=1136"]
    assert loader.cflags_for("ringbuf", offsets, ringbuf_pages=4)[1:] == ["-DSDXFER_RINGBUF",
                                                                          "-DSDXFER_RINGBUF_PAGES=4"]
    with pytest.raises(ProbeError, match="unknown transport 'pigeon': choose perf or ringbuf"):
        loader.cflags_for("pigeon", offsets)
    with pytest.raises(ProbeError, match="power of two"):
        loader.cflags_for("ringbuf", offsets, ringbuf_pages=3)


def test_a_bad_transport_is_refused_before_anything_is_loaded(monkeypatch):
    monkeypatch.setattr(loader, "check_environment", lambda: None)
    monkeypatch.setattr(loader, "kernel_offsets", lambda: {})
    with pytest.raises(ProbeError, match="unknown transport"):
        loader.ExecProbe(transport="pigeon")


def test_sequence_gaps_count_numbers_missing_per_cpu():
    stats = loader.LossStats()
    for cpu, seq in [(0, 5), (1, 0), (0, 6), (0, 9), (1, 1), (1, 4)]:
        stats.note_sequence(cpu, seq)
    assert stats.sequence_gaps == 2 + 2


@pytest.mark.skipif(not os.path.exists(loader.BTF_PATH), reason="no kernel BTF")
def test_kernel_offsets_cover_every_macro_the_probe_requires():
    offsets = loader.kernel_offsets()
    source = loader.probe_source_path().read_text()
    for name in offsets:
        assert name in source
    assert all(value > 0 for value in offsets.values())


@pytest.mark.skipif(not os.path.exists(loader.BTF_PATH), reason="no kernel BTF")
def test_program_text_shows_the_macros_and_the_whole_program():
    text = loader.program_text("ringbuf")
    assert "#define SDXFER_RINGBUF" in text
    assert "#define BTF_OFF_MM_STRUCT_ARG_START" in text
    assert "BPF_RINGBUF_OUTPUT" in text


def test_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ProbeError, match="root.*sudo"):
        loader.check_environment()


def test_no_bcc(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setitem(sys.modules, "bcc", None)  # makes `import bcc` fail
    with pytest.raises(ProbeError, match="python3-bpfcc.*venv"):
        loader.check_environment()


def _pretend_bcc(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setitem(sys.modules, "bcc", type(sys)("bcc"))


def test_bad_kernel_headers(monkeypatch, tmp_path):
    _pretend_bcc(monkeypatch)
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tmp_path))
    with pytest.raises(ProbeError, match="scripts/setup.sh"):
        loader.check_environment()


def test_no_kernel_headers_at_all(monkeypatch, tmp_path):
    _pretend_bcc(monkeypatch)
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    monkeypatch.setattr(loader, "REPO_DIR", tmp_path)
    monkeypatch.setattr(loader.platform, "release", lambda: "0.0-no-such-kernel")
    with pytest.raises(ProbeError, match="BCC_KERNEL_SOURCE"):
        loader.check_environment()


def test_kernel_source_defaults_to_the_repo_headers(monkeypatch, tmp_path):
    (tmp_path / "build" / "kernel-headers" / "include" / "linux").mkdir(parents=True)
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    monkeypatch.setattr(loader, "REPO_DIR", tmp_path)
    loader._default_kernel_source()
    assert os.environ["BCC_KERNEL_SOURCE"] == str(tmp_path / "build" / "kernel-headers")


def test_no_tracefs(monkeypatch, tmp_path):
    _pretend_bcc(monkeypatch)
    (tmp_path / "include" / "linux").mkdir(parents=True)
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tmp_path))
    monkeypatch.setattr(loader, "TRACEFS_DIRS", (str(tmp_path / "nothing"),))
    with pytest.raises(ProbeError, match="mount -t tracefs"):
        loader.check_environment()


def test_no_btf(monkeypatch, tmp_path):
    monkeypatch.setattr(loader, "BTF_PATH", str(tmp_path / "vmlinux"))
    with pytest.raises(ProbeError, match="no BTF"):
        loader.kernel_offsets()


def test_verifier_rejection_names_the_verdict():
    log = "0: (b7) r1 = 0\nR2 min value is negative, either use unsigned\nprocessed 10 insns (limit 1000000)\n"
    error = loader._load_failure(Exception("Failed to load BPF program b'x': Permission denied"), log)
    assert "verifier rejected" in str(error)
    assert "R2 min value is negative" in str(error)


def test_compile_error_points_at_headers():
    log = "/virtual/main.c:3:10: fatal error: 'linux/sched.h' file not found\n"
    error = loader._load_failure(Exception("Failed to compile BPF module <text>"), log)
    assert "could not compile" in str(error) and "linux/sched.h" in str(error)
