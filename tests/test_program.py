"""Assembling a probe without loading it (sdxfer.program), kernel offsets
named in program text (sdxfer.offsets), kernel headers (sdxfer.kheaders),
and the one-line errors for each thing a host can lack."""
import os
import re
import sys

import pytest

from sdxfer import btf, kheaders, offsets, program, sensor
from sdxfer.kernel import bcc, host
from sdxfer.errors import ProbeError

needs_btf = pytest.mark.skipif(not os.path.exists(program.BTF_PATH), reason="no kernel BTF")


def test_amalgamate_inlines_quoted_includes_it_can_find(tmp_path):
    (tmp_path / "a.h").write_text('#include "b.h"\nint a;\n')
    (tmp_path / "b.h").write_text("int b;\n")
    source = '#include <linux/sched.h>\n#include "a.h"\n#include "b.h"\n#include "elsewhere.h"\n#include "mem.h"\nint main;\n'
    text = program.amalgamate(source, program.include_finder({"mem.h": "int mem;\n"}, [tmp_path]))
    assert "#include <linux/sched.h>" in text
    assert '#include "elsewhere.h"' in text  # not ours: left to the compiler
    assert text.index("int b;") < text.index("int a;") < text.index("int mem;") < text.index("int main;")
    assert text.count("int b;") == 2  # once per include, as the preprocessor would (guards do the rest)


def test_amalgamate_marks_where_each_line_comes_from(tmp_path):
    (tmp_path / "a.h").write_text("int a1;\nint a2;\n")
    source = 'int m1;\n#include "a.h"\nint m3;\n'
    text = program.amalgamate(source, program.include_finder({}, [tmp_path]), "main.c")
    lines = text.splitlines()
    # each line's file and number, as the compiler counts them through #line
    where, line, seen = "main.c", 1, {}
    for text_line in lines:
        marker = re.match(r'#line (\d+) "(.*)"\Z', text_line)
        if marker:
            line, where = int(marker.group(1)), marker.group(2)
            continue
        seen[text_line] = (where, line)
        line += 1
    assert seen["int a2;"] == (str(tmp_path / "a.h"), 2)
    assert seen["int m1;"] == ("main.c", 1) and seen["int m3;"] == ("main.c", 3)


def test_amalgamate_stops_include_cycles(tmp_path):
    (tmp_path / "a.h").write_text('#include "a.h"\nint a;\n')
    text = program.amalgamate('#include "a.h"\n', program.include_finder({}, [tmp_path]))
    assert text.count("int a;") == 1
    assert "already included" in text


def test_btf_macros_are_found_in_code_not_comments():
    text = """
    /* BTF_OFF_IN_A_COMMENT */ // BTF_SIZE_ALSO_A_COMMENT
    x = BTF_OFF_TASK_STRUCT_MM + BTF_OFF_TASK_STRUCT_MM + BTF_SIZE_CRED;
    y = NOT_BTF_OFF_THIS;
    """
    assert offsets.macros_used(text) == ["BTF_OFF_TASK_STRUCT_MM", "BTF_SIZE_CRED"]


def test_sdxfer_member_names_the_btf_macro_it_pastes_under_bcc():
    text = """
    #define SDXFER_MEMBER(type, member) BTF_OFF_##type##_##member
    /* SDXFER_MEMBER(in_a, comment) */
    x = SDXFER_MEMBER(task_struct, mm) + SDXFER_MEMBER( pt_regs , di ) + BTF_OFF_CRED_EUID;
    """
    assert offsets.macros_used(text) == ["BTF_OFF_CRED_EUID", "BTF_OFF_pt_regs_di", "BTF_OFF_task_struct_mm"]


def test_sdxfer_size_names_the_btf_macro_it_pastes_under_bcc():
    text = """
    #define SDXFER_SIZE(type) BTF_SIZE_##type
    /* SDXFER_SIZE(in_a_comment) */
    x = SDXFER_SIZE(upid) * level + SDXFER_SIZE( cred );
    """
    assert offsets.macros_used(text) == ["BTF_SIZE_cred", "BTF_SIZE_upid"]


@needs_btf
def test_offsets_resolve_plain_nested_anonymous_and_sizes():
    kernel = btf.load(program.BTF_PATH)
    names = ["BTF_OFF_TASK_STRUCT_REAL_PARENT", "BTF_OFF_SOCK___SK_COMMON_SKC_DADDR",
             "BTF_OFF_sock___sk_common_skc_dport", "BTF_OFF_MM_STRUCT_ARG_START", "BTF_SIZE_TASK_STRUCT"]
    assert offsets.resolve(kernel, names) == {
        "BTF_OFF_TASK_STRUCT_REAL_PARENT": kernel.offsetof("task_struct", "real_parent"),
        "BTF_OFF_SOCK___SK_COMMON_SKC_DADDR": kernel.offsetof("sock", "__sk_common.skc_daddr"),
        "BTF_OFF_sock___sk_common_skc_dport": kernel.offsetof("sock", "__sk_common.skc_dport"),
        "BTF_OFF_MM_STRUCT_ARG_START": kernel.offsetof("mm_struct", "arg_start"),
        "BTF_SIZE_TASK_STRUCT": kernel.sizeof("task_struct"),
    }


@needs_btf
@pytest.mark.parametrize("name, message", [
    ("BTF_OFF_TASK_STRUCT_NO_SUCH_MEMBER", "BTF_OFF_TASK_STRUCT_NO_SUCH_MEMBER: struct task_struct has no member"),
    ("BTF_OFF_NO_SUCH_STRUCT_X", "BTF_OFF_NO_SUCH_STRUCT_X: this kernel (/sys/kernel/btf/vmlinux) has no struct or union"),
    ("BTF_SIZE_NO_SUCH_STRUCT", "BTF_SIZE_NO_SUCH_STRUCT: this kernel (/sys/kernel/btf/vmlinux) has no struct or union 'no_such_struct'"),
])
def test_what_the_kernel_lacks_is_one_line_naming_it(name, message):
    with pytest.raises(ProbeError) as caught:
        offsets.resolve(btf.load(program.BTF_PATH), [name])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_transport_flags():
    assert program.transport_flags("perf", 4) == []
    assert program.transport_flags("ringbuf", 4) == ["-DSDXFER_RINGBUF", "-DSDXFER_RINGBUF_PAGES=4"]
    with pytest.raises(ProbeError, match="unknown transport 'pigeon': choose perf or ringbuf"):
        program.transport_flags("pigeon", 4)
    with pytest.raises(ProbeError, match="power of two"):
        program.transport_flags("ringbuf", 3)


@pytest.mark.parametrize("defines, message", [
    ({"1BAD": 1}, "not a C macro name"),
    ({"BTF_OFF_TASK_STRUCT_MM": 8}, "resolved from the kernel"),
    ({"X": 1.5}, "not an integer or one line of text"),
    ({"X": "a\nb"}, "not an integer or one line of text"),
])
def test_bad_defines_are_refused(defines, message):
    with pytest.raises(ProbeError, match=message):
        program.assemble("int x;\n", defines=defines)


@needs_btf
def test_assembly_resolves_what_the_program_uses_and_passes_defines(tmp_path):
    (tmp_path / "mine.h").write_text("#define MINE BTF_OFF_TASK_STRUCT_TGID\n")
    probe = tmp_path / "probe.bpf.c"
    probe.write_text('#include "xfer.h"\n#include "mine.h"\n#include "helpers.h"\nint x = MINE;\n')
    assembly = program.assemble(probe, transport="ringbuf", defines={"TARGET_PID": 42, "FLAG": None})
    assert '#include "xfer.h"' not in assembly.text and "exec_print(" in assembly.text  # the shipped schema
    assert "sdxfer_claim_slot" in assembly.text  # sdxfer_runtime.h's parts, inlined
    assert '#include "sdxfer_' not in assembly.text
    assert "parent_tgid" in assembly.text  # bpf/helpers.h, inlined
    kernel = btf.load(program.BTF_PATH)
    assert f"-DBTF_OFF_TASK_STRUCT_TGID={kernel.offsetof('task_struct', 'tgid')}" in assembly.cflags
    # helpers.h's SDXFER_MEMBER(task_struct, real_parent), under BCC
    assert f"-DBTF_OFF_task_struct_real_parent={kernel.offsetof('task_struct', 'real_parent')}" in assembly.cflags
    assert {"-DTARGET_PID=42", "-DFLAG", "-DSDXFER_RINGBUF"} <= set(assembly.cflags)
    shown = assembly.with_defines()
    assert "#define TARGET_PID 42" in shown and "#define FLAG\n" in shown


def test_another_schema_is_generated_in_memory(tmp_path):
    schema = tmp_path / "s.yaml"
    schema.write_text("version: 1\nslot_size: 1024\nevents:\n  - {name: ping, id: 9, fields: [{name: n, type: u32}]}\n")
    assembly = program.assemble("#include \"xfer.h\"\nint x;\n", schema=schema)
    assert "static __always_inline int ping_print(void *ctx, __u32 n)" in assembly.text
    assert assembly.code.event_names == ("ping",)
    assert list(assembly.code.decoder.events) == ["ping"]


def test_a_bad_schema_is_one_probe_error(tmp_path):
    schema = tmp_path / "s.yaml"
    schema.write_text("version: 1\nslot_size: 1024\nevents:\n  - {name: ping, id: 9, fields: [{name: n, type: u3}]}\n")
    with pytest.raises(ProbeError) as caught:
        program.assemble("int x;\n", schema=schema)
    assert f"{schema}:4: event ping, field n: unknown type 'u3'" in str(caught.value)


def test_a_missing_program_is_one_line(tmp_path):
    with pytest.raises(ProbeError, match="cannot read the program .*nothing.bpf.c"):
        program.assemble(tmp_path / "nothing.bpf.c")


# ---- the host -----------------------------------------------------------------

def test_not_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ProbeError, match="root.*sudo"):
        sensor.check_environment()


def test_no_bcc(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setitem(sys.modules, "bcc", None)  # makes `import bcc` fail
    with pytest.raises(ProbeError, match="python3-bpfcc.*venv"):
        sensor.check_environment()


def _pretend_bcc(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setitem(sys.modules, "bcc", type(sys)("bcc"))


@pytest.mark.parametrize("variable", [kheaders.ENV_VAR, "BCC_KERNEL_SOURCE"])
def test_bad_kernel_headers(monkeypatch, tmp_path, variable):
    _pretend_bcc(monkeypatch)
    monkeypatch.delenv(kheaders.ENV_VAR, raising=False)
    monkeypatch.setenv(variable, str(tmp_path))
    with pytest.raises(ProbeError, match=f"{variable}=.*no kernel headers.*scripts/setup.sh"):
        sensor.check_environment()


def _no_headers_anywhere(monkeypatch, tmp_path):
    for variable in (kheaders.ENV_VAR, "BCC_KERNEL_SOURCE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(kheaders.platform, "release", lambda: "0.0-no-such-kernel")
    monkeypatch.setattr(kheaders, "CHECKOUT_KERNEL_HEADERS", tmp_path / "repo")
    monkeypatch.setattr(kheaders, "CACHE_TREE", tmp_path / "cache")
    monkeypatch.setattr(kheaders, "DEBIAN_TREES", tmp_path / "src")


def test_no_kernel_headers_at_all(monkeypatch, tmp_path):
    _pretend_bcc(monkeypatch)
    _no_headers_anywhere(monkeypatch, tmp_path)
    with pytest.raises(ProbeError, match=f"no kernel headers.*{kheaders.ENV_VAR}"):
        sensor.check_environment()


def test_debian_headers_are_merged_on_first_use(monkeypatch, tmp_path):
    """A non-editable install finds Debian's split trees and merges them itself."""
    _no_headers_anywhere(monkeypatch, tmp_path)
    for tree, files in (("linux-headers-6.1.0-9-common", ["include/linux/sched.h", "Makefile"]),
                        ("linux-headers-6.1.0-9-amd64", ["include/generated/autoconf.h", "Makefile"]),
                        ("linux-headers-6.1.0-10-common", ["include/linux/sched.h", "Makefile"]),
                        ("linux-headers-6.1.0-10-amd64", ["include/generated/autoconf.h", "Makefile"])):
        for name in files:
            path = tmp_path / "src" / tree / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(tree)
    found = kheaders.find()
    assert found == tmp_path / "cache"
    assert (found / "include" / "linux" / "sched.h").read_text() == "linux-headers-6.1.0-10-common"
    assert (found / "Makefile").read_text() == "linux-headers-6.1.0-10-amd64"  # arch files win
    assert kheaders.find() == found  # merged once


def test_the_repo_tree_is_found_without_any_variable(monkeypatch, tmp_path):
    _no_headers_anywhere(monkeypatch, tmp_path)
    (tmp_path / "repo" / "include" / "linux").mkdir(parents=True)
    (tmp_path / "repo" / kheaders.COMPLETE).write_text("")
    assert kheaders.find() == tmp_path / "repo"


def test_no_tracefs(monkeypatch, tmp_path):
    _pretend_bcc(monkeypatch)
    (tmp_path / "include" / "linux").mkdir(parents=True)
    monkeypatch.setenv(kheaders.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(host, "TRACEFS_DIRS", (str(tmp_path / "nothing"),))
    with pytest.raises(ProbeError, match="mount -t tracefs"):
        sensor.check_environment()


def test_no_btf(tmp_path):
    with pytest.raises(ProbeError, match="no BTF"):
        program.kernel_values("x = BTF_OFF_TASK_STRUCT_MM;", btf_path=str(tmp_path / "vmlinux"))


def test_verifier_rejection_names_the_program_and_the_verdict():
    log = "0: (b7) r1 = 0\nR2 min value is negative, either use unsigned\nprocessed 10 insns (limit 1000000)\n"
    failure = Exception("Failed to load BPF program b'tracepoint__syscalls__sys_exit_connect': Permission denied")
    error = bcc.load_failure(failure, log, "/h")
    assert str(error) == ("the kernel's verifier rejected program tracepoint__syscalls__sys_exit_connect"
                          " (Permission denied): R2 min value is negative, either use unsigned")


def test_compile_error_names_the_first_error_and_the_headers():
    log = ("/virtual/main.c:3:10: fatal error: 'linux/sched.h' file not found\n"
           "/virtual/main.c:9:1: error: second\n")
    error = bcc.load_failure(Exception("Failed to compile BPF module <text>"), log, "/the/headers")
    assert "could not compile" in str(error) and "linux/sched.h" in str(error) and "second" not in str(error)
    assert "/the/headers" in str(error)


def test_a_packer_the_schema_lacks_is_named():
    log = "/virtual/main.c:7:5: error: call to undeclared function 'nope_print'; ISO C99 and later do not support\n"
    error = bcc.load_failure(Exception("Failed to compile BPF module <text>"), log, "/h", ("exec", "exit"))
    assert str(error) == "the program calls nope_print(), but the schema has no event 'nope' (its events: exec, exit)"


def test_a_packer_of_the_schema_undeclared_means_the_header_was_not_included():
    log = "<program text>:4:5: error: implicit declaration of function 'exec_print' is invalid in C99\n"
    error = bcc.load_failure(Exception("Failed to compile BPF module <text>"), log, "/h", ("exec", "exit"))
    assert str(error) == ('the program calls exec_print() but does not #include "xfer.h", '
                          'the generated header that declares the packers')


def test_a_bad_transport_is_refused_before_anything_is_loaded(monkeypatch):
    def never():
        raise AssertionError("the host was checked first")

    monkeypatch.setattr(sensor, "check_environment", never)
    with pytest.raises(ProbeError, match="unknown transport"):
        sensor.Sensor("int x;\n", transport="pigeon")


def test_sequence_gaps_count_numbers_missing_per_cpu():
    stats = sensor.SensorStats(["exec"])
    for cpu, seq in [(0, 5), (1, 0), (0, 6), (0, 9), (1, 1), (1, 4)]:
        stats.note_sequence(cpu, seq)
    assert stats.sequence_gaps == 2 + 2


def test_stats_print_totals_and_busy_events():
    stats = sensor.SensorStats(["exec", "exit"])
    stats.delivered, stats.lost = 3, 1
    stats.per_event["exec"].delivered, stats.per_event["exec"].lost = 3, 1
    assert str(stats) == "delivered 3, lost 1, undecodable 0 (exec: delivered 3, lost 1, undecodable 0)"
    assert stats.to_dict()["events"]["exit"] == {"delivered": 0, "lost": 0, "undecodable": 0}



def test_runtime_header_lists_and_includes_each_of_its_parts():
    """sdxfer_runtime.h is the one include; its top comment names every part it includes."""
    from sdxfer.paths import C_INCLUDE_DIR

    runtime = (C_INCLUDE_DIR / "sdxfer_runtime.h").read_text()
    comment = runtime.split("*/", 1)[0]
    parts = [line.split('"')[1] for line in runtime.splitlines() if line.startswith('#include "')]
    assert len(parts) >= 5 and "sdxfer_rest.h" in parts
    for name in parts:
        assert f" {name} " in comment, name
        assert f'#error "include the generated xfer.h, not {name}"' in (C_INCLUDE_DIR / name).read_text()
