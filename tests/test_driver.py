"""The one driver and the shared vocabulary, without a kernel: --version on
every command, readable text values, loss and stats lines, raw captures,
continuation records given to a Decoder, and the package's layers."""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sdxfer
from sdxfer import DecodeError
from sdxfer.fleet.files import RawFile, records_in
from sdxfer.fleet.output import output_url
from sdxfer.kernel.filters import EventFilter, cgroup_dir
from sdxfer.stream.counting import SensorStats
from sdxfer.stream.vocabulary import Clock
from sdxfer.tools import driver, readable
from sdxfer.tools.text import event_fields, event_line, format_value, short_path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
DECODER = sdxfer.default_decoder()
START_NS = 1_000_000_000_000


def make(event_name, **values):
    cls = DECODER.events[event_name]
    defaults = {"pid": 4242, "tid": 4242, "ppid": 1, "pgid": 4242, "sid": 4242, "uid": 1000, "gid": 1000,
                "euid": 1000, "cgroup_id": 1, "mntns": 4026531840, "comm": "sh", "ret": 0}
    row = [values.get(f, defaults.get(f)) for f in cls.fields]
    return cls((START_NS, 3, 1, len(cls.versions), *row, (), {}))


# ---- --version ------------------------------------------------------------------


@pytest.mark.parametrize("command", [["execmon"], ["hidsmon"], ["sdxfer"], ["sdxfer", "run", "x.bpf.c"],
                                     ["sdxfer", "gen"], ["sdxfer", "decode", "-"], ["sdxfer", "compat", "a", "b"],
                                     ["sdxfer", "consume", "nats://127.0.0.1:1/x"]])
def test_version_on_every_command(command):
    done = subprocess.run([str(BIN / command[0]), *command[1:], "--version"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lock = (ROOT / "schema" / "events.lock").read_text()
    major = re.search(r"^major: (\d+)", lock, re.MULTILINE)
    expected_major = major.group(1) if major else "1"
    assert done.stdout.strip() == (f"{command[0]} {sdxfer.__version__} (schema events.yaml: major {expected_major}, "
                                   f"digest {DECODER.schema_digest})")
    assert len(DECODER.schema_digest) >= 16


# ---- readable values: text only --------------------------------------------------


@pytest.mark.parametrize("event, values, expected", [
    ("chmod", {"syscall": "chmod", "fd": -100, "path": "/tmp/x", "mode": 0o4755}, "mode=0o4755"),
    ("file_create", {"syscall": "openat", "path": "/tmp/x", "flags": 0o1101, "mode": 0o600},
     "flags=O_WRONLY|O_CREAT|O_TRUNC mode=0o600"),
    ("file_create", {"syscall": "openat", "path": "/tmp/x", "flags": 0o2100302, "mode": 0},
     "flags=O_RDWR|O_CREAT|O_EXCL|O_LARGEFILE|O_CLOEXEC"),
    ("exit", {"code": 3 << 8}, "exit=3"),
    ("exit", {"code": 9}, "signal=KILL"),
    ("exit", {"code": 0x86}, "signal=ABRT core=1"),
    ("ptrace", {"request": 16, "target": 7, "addr": 0}, "request=PTRACE_ATTACH"),
    ("ptrace", {"request": 0x4206, "target": 7, "addr": 0}, "request=PTRACE_SEIZE"),
    ("ptrace", {"request": 999, "target": 7, "addr": 0}, "request=999"),
    ("prctl", {"option": 15, "name": "x"}, "option=PR_SET_NAME"),
    ("memfd_create", {"name": "jit", "flags": 3}, "flags=MFD_CLOEXEC|MFD_ALLOW_SEALING"),
    ("mount", {"source": "a", "target": "b", "fstype": "c", "flags": 4096 | 16384}, "flags=MS_BIND|MS_REC"),
])
def test_text_shows_numbers_by_meaning_and_json_keeps_them(event, values, expected):
    made = make(event, **values)
    assert expected in event_fields(made)
    record = json.loads(driver_json(made))
    for name, value in values.items():
        assert record[name] == value


def driver_json(event):
    from sdxfer.stream.vocabulary import event_json

    return event_json(event, Clock(start_ns=START_NS))


def test_open_flags_name_what_they_can_and_keep_the_rest():
    assert readable.open_flags(0) == "O_RDONLY"
    assert readable.open_flags(0o4010001) == "O_WRONLY|O_SYNC"
    assert readable.open_flags(0o20200002) == "O_RDWR|O_TMPFILE"
    assert readable.open_flags(0o100000000 | 1) == "O_WRONLY|0x1000000"


def test_a_line_tells_a_backslash_from_an_escape_and_keeps_each_value_one_token():
    assert format_value("a\\nb") == "a\\\\nb"  # a backslash and n: doubled
    assert format_value("a\nb") == "a\\nb"  # a newline: escaped
    assert format_value('say "x" \\') == '"say \\"x\\" \\\\"'  # the closing quote stays a quote
    assert short_path("/a/" + "b" * 40 + "/tool") == ".../tool"
    assert short_path(None) == "-"  # none: a kernel thread
    assert short_path(None, unknown=True) == "?"  # flagged: the kernel could not tell it


@pytest.mark.parametrize("path, shown", [
    ("/tmp/x ret=0 exe=/sshd", '"/tmp/x ret=0 exe=/sshd"'),  # one token: no key=value can be forged
    ("/tmp/sp ace/tool (deleted)", '"/tmp/sp ace/tool" (deleted)'),  # the kernel's suffix stays outside
    ("/memfd:payload (deleted)", "/memfd:payload (deleted)"),
    ("/tmp/back\\nslash/tool", "/tmp/back\\\\nslash/tool"),  # a backslash doubled, as in key=value
    ("/tmp/nl\ndir/tool", "/tmp/nl\\ndir/tool"),  # a newline escaped
    ("/tmp/odd/lc/t" + "\udcff" * 20, "..." + "\\xff" * 7),  # cut between bytes, never inside an escape
    ("/tmp/" + "q" * 40 + '"/tool', '.../tool'),
    ("/tmp/" + "q" * 300 + " (deleted)", "..." + "q" * 19 + " (deleted)"),
    ("/usr/bin/sshd\xa0(deleted)", '"/usr/bin/sshd\xa0(deleted)"'),  # a no-break space is no kernel suffix
    ("/tmp/a\u2028b", "/tmp/a\\u2028b"),  # a line separator escaped: the line stays one line
])
def test_a_path_column_is_one_token_and_its_short_form_cuts_between_characters(path, shown):
    assert short_path(path) == shown and len(shown) <= 32


def test_a_comm_that_looks_like_fields_stays_one_token():
    line = event_line(make("setsid", comm="x ret=0", ret=1), Clock(start_ns=START_NS), skip=DECODER.common_fields)
    assert re.fullmatch(r'\d\d:\d\d:\d\d\.\d{3} setsid +4242 +"x ret=0" +- +ret=1', line)


def test_event_line_is_time_event_pid_comm_then_the_rest():
    line = event_line(make("setsid", ret=4242), Clock(start_ns=START_NS), skip=DECODER.common_fields)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} setsid +4242 +sh +- +ret=4242", line)  # no exe_path: -


def test_one_json_object_whichever_tool():
    from sdxfer import execmon, hidsmon
    from sdxfer.fleet.envelope import Host, Sender, event_dict

    clock = Clock(start_ns=START_NS, wall_minus_mono_ns=5)
    event = make("exec", exe="/bin/sh", argv=["sh"], ancestors=[])
    shared = json.loads(hidsmon.json_line(event, clock))
    assert shared == {**event.to_dict(), "time": clock.iso(START_NS), "timestamp_ns": START_NS}
    run_object = json.loads(driver_json(event))
    assert run_object.keys() == shared.keys()
    exec_object = json.loads(execmon.json_line(event, execmon.Options(), clock))
    assert {k: v for k, v in exec_object.items() if k not in ("ts_ns", "argv_truncated")} == shared
    assert exec_object["ts_ns"] == START_NS
    sender = Sender(Host("h", "m", "b"), DECODER.schema_digest, 1, "r", 5)
    consumed = event_dict(event, sender)
    assert consumed.pop("host") == {"hostname": "h", "machine_id": "m", "boot_id": "b"}
    assert consumed == shared


# ---- loss and stats lines ----------------------------------------------------------


class Ticks:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_loss_lines_at_most_one_a_second_with_counts_per_event(capsys):
    stats, ticks = SensorStats(["exec", "connect"]), Ticks()
    lines = driver.LossLines("hidsmon", "perf", stats, sys.stderr, clock=ticks)
    stats.counts("exec").lost = 3
    lines.note()
    stats.counts("exec").lost = 5
    stats.counts("connect").lost = 2
    for _ in range(50):  # many batches within the second: no line
        ticks.now += 0.01
        lines.note()
    ticks.now += 0.6
    lines.note()
    lines.note(final=True)  # nothing new
    err = capsys.readouterr().err.splitlines()
    assert err == ["hidsmon: 3 events lost (exec 3): the perf buffer was full, or every scratch slot was taken",
                   "hidsmon: 4 events lost (exec 2, connect 2): the perf buffer was full, or every scratch slot was"
                   " taken"]
    stats.counts("connect").lost = 3
    lines.note(final=True)  # at the end, whatever the time
    assert "1 events lost (connect 1)" in capsys.readouterr().err


def test_stats_lines_every_interval(capsys):
    stats, ticks = SensorStats(["exec", "exit"]), Ticks()
    lines = driver.StatsLines("execmon", stats, 2.0, sys.stderr, clock=ticks)
    stats.delivered = stats.counts("exec").delivered = 7
    stats.lost = stats.counts("exec").lost = 1
    lines.note()
    assert capsys.readouterr().err == ""
    ticks.now += 2.0
    lines.note()
    lines.note()
    assert capsys.readouterr().err == "execmon: stats: 7 delivered, 1 lost (delivered/lost: exec 7/1)\n"


def test_no_stats_lines_without_the_option(capsys):
    lines = driver.StatsLines("execmon", SensorStats(["exec"]), None, sys.stderr, clock=Ticks())
    lines.note()
    assert capsys.readouterr().err == ""


# ---- options ------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["execmon", "hidsmon"])
@pytest.mark.parametrize("argv, message", [
    (["--children"], "--children needs -p PID"),
    (["-p", "x"], "not a process id"),
    (["--mntns", "-3"], "not a mount namespace inode number"),
    (["--cgroup", "no/such/cgroup-xyz"], "not a cgroup v2 directory"),
    (["--cgroup", "999999999999"], "no cgroup with id 999999999999"),
    (["--stats", "0"], "not a number of seconds > 0"),
    (["--output", "raw:"], "raw: needs a path"),
])
def test_bad_probe_options_are_one_line(tool, argv, message):
    done = subprocess.run([str(BIN / tool), *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_cgroup_by_path_or_id_is_one_directory():
    from sdxfer.kernel.filters import cgroup2_root

    root = cgroup2_root()  # /sys/fs/cgroup, or its unified/ in the hybrid layout
    assert cgroup_dir(str(root)) == root
    assert cgroup_dir(str(os.stat(root).st_ino)) == root
    assert EventFilter(cgroup=root).defines() == {"SDXFER_FILTER_CGROUP": 1}
    assert not EventFilter()


def test_shared_options_on_every_probe_tool():
    from sdxfer import execmon, hidsmon
    from sdxfer.tools import cli

    shared = ["--transport", "--output", "--json", "--ebpf", "-p", "--children", "-u", "-n", "--cgroup", "--mntns",
              "--stats", "--version"]
    run_parser = cli._parser()._subparsers._group_actions[0].choices["run"]
    for parser in (execmon.build_parser(), hidsmon.build_parser(), run_parser):
        flags = {flag for action in parser._actions for flag in action.option_strings}
        assert set(shared) <= flags, parser.prog
    assert "--no-failed" in hidsmon.build_parser().format_help()


# ---- raw captures ------------------------------------------------------------


def call(generated, name, **given):
    """A host-C packer call: the values given, the rest absent or zero."""
    [event] = [e for e in generated.layout.events if e.event.name == name]
    values = {f.name: None if f.type.variable else bytes(f.fixed_size) if f.type.by_pointer else 0
              for f in event.event.fields}
    values.update(given)
    return event.index, values


def _strlist(items):
    data = b"".join(item.encode() + b"\0" for item in items)
    return data, len(data)


def test_raw_capture_is_what_sdxfer_decode_reads(generated, tmp_path):
    """Records (one padded as perf pads them, an event with its continuation
    records) written by --output raw: decode back with `sdxfer decode`."""
    if generated.schema.name != "events.yaml":
        pytest.skip("the shipped schema's spanning exec")
    argv = ["x" * 1000] * 40  # past the record's 16 KiB: continuation records follow
    records = generated.pack([call(generated, "exec", argv=_strlist(argv), exe=b"/bin/x"),
                              call(generated, "setsid", ret=7)])
    assert len(records) > 2
    capture = tmp_path / "capture.sdxr"
    raw = RawFile(capture)
    raw.write([b"".join(records[:-1]), records[-1] + b"\0" * 4])  # an event's records back to back; perf padding
    raw.close()
    assert raw.records == len(records)
    assert capture.read_bytes() == b"".join(records)
    assert os.stat(capture).st_mode & 0o777 == 0o600
    done = subprocess.run([str(BIN / "sdxfer"), "decode", str(capture)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events] == ["exec", "setsid"]
    assert events[0]["argv"] == argv and events[0]["truncated"] == [] and events[1]["ret"] == 7


def test_records_in_stops_at_padding_and_short_sizes():
    assert records_in(b"") == [] and records_in(b"\0" * 100) == []


def test_raw_capture_refuses_links_and_open_files(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        RawFile(link)
    os.chmod(target, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        RawFile(target)
    assert output_url("raw:/x") == "raw:/x"


# ---- continuation records ------------------------------------------------------


def test_a_continuation_record_names_the_reassembler(generated):
    if generated.schema.name != "events.yaml":
        pytest.skip("the shipped schema's spanning exec")
    records = generated.pack([call(generated, "exec", argv=_strlist(["y" * 1000] * 40), exe=b"/bin/y")])
    with pytest.raises(DecodeError, match="Reassembler"):
        generated.decoder.decode(records[1])
    with pytest.raises(DecodeError, match="Reassembler"):
        generated.decoder.decode_many(records)
    assert sdxfer.Reassembler is not None


# ---- the package's layers ------------------------------------------------------


LAYERS = ["errors", "paths", "private", "runtime", "codegen", "generated", "stream", "kernel", "fleet", "tools"]


def _imports(path: Path, package: str) -> set[str]:
    """The sdxfer modules a module imports (absolute names), at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(n for n in [target, *names] if n.startswith("sdxfer"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sdxfer"))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_imports_point_down_the_layers():
    sources = {**{p: "sdxfer." + ".".join(p.relative_to(ROOT / "sdxfer").with_suffix("").parts)
                  for p in (ROOT / "sdxfer").rglob("*.py")},
               **{p: "sdxfer.codegen." + p.stem for p in (ROOT / "codegen").glob("*.py")}}
    upward = []
    for path, module in sources.items():
        layer = _layer(module)
        if layer is None:
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for imported in _imports(path, package):
            other = _layer(imported)
            if other is not None and LAYERS.index(other) > LAYERS.index(layer):
                upward.append(f"{module} imports {imported}")
    assert upward == []


@pytest.mark.parametrize("stale", ["rt.require(api=0, layout={layout})", "rt.require_layout_version({layout})"])
def test_a_stale_generated_module_says_run_sdxfer_gen(stale):
    """Decoders generated for another runtime API (or before it had one) fail
    on import with "run sdxfer gen", not later with a TypeError."""
    from sdxfer import runtime

    source = (ROOT / "generated" / "events.py").read_text()
    current = f"rt.require(api={runtime.API_VERSION}, layout={runtime.LAYOUT_VERSION})"
    assert current in source
    with pytest.raises(ImportError, match="run sdxfer gen"):
        sdxfer.Decoder.module_from_source(source.replace(current, stale.format(layout=runtime.LAYOUT_VERSION)),
                                          "stale")
