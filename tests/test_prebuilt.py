"""The shipped probe's prebuilt CO-RE objects (sdxfer.kernel.objects): the
manifest against the source's #if defined(HIDS_WANT_<EVENT>) guards, programs
selected at load, execmon and hidsmon through them (and --backend bcc still),
stale objects found and rebuilt, and the wheel carrying them."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile

import pytest

from conftest import LIVE_WAIT_S, ROOT, Tool
from sdxfer import ProbeError, Sensor, default_decoder
from sdxfer.kernel import objects
from sdxfer.kernel.probes import ExecProbe
from sdxfer.paths import BPF_DIR
from sdxfer.runtime import record

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="building reads tracefs and loading needs root")
needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="building needs clang")
EVENTS = tuple(default_decoder().events)
BIN = ROOT / ".venv" / "bin"
START_S = 120  # BCC on a loaded 2-CPU machine


@pytest.fixture(scope="module")
def shipped():
    return objects.shipped()


# ---- the manifest, without the kernel ----------------------------------------------


def guarded_programs(text: str) -> dict[str, set[str]]:
    """Per event, the probes declared between `#if defined(HIDS_WANT_<EVENT>) ...`
    and its #endif, read straight from the C (every variant of kmod_load)."""
    found: dict[str, set[str]] = {}
    stack: list[str | None] = []
    for line in text.splitlines():
        if re.match(r"\s*#\s*if", line):
            guard = re.search(r"defined\(HIDS_WANT_(\w+)\)", line)
            stack.append(guard.group(1).lower() if guard else None)
        elif re.match(r"\s*#\s*endif", line):
            stack.pop()
        event = next((e for e in reversed(stack) if e), None)
        if event is None or line.lstrip().startswith("#"):
            continue
        names = found.setdefault(event, set())
        names.update(f"tracepoint__{c}__{e}" for c, e in re.findall(r"\bTRACEPOINT_PROBE\((\w+), (\w+)\)", line))
        names.update(f"raw_tracepoint__{e}" for e in re.findall(r"RAW_TRACEPOINT_PROBE\((\w+)\)", line))
        names.update(name for call in re.findall(r"^CREDS_PROBES\((\w+),", line)
                     for name in (f"tracepoint__syscalls__sys_enter_{call}", f"tracepoint__syscalls__sys_exit_{call}"))
    return found


@needs_root
@needs_clang
def test_the_manifest_names_each_events_programs_as_the_source_guards_them(shipped):
    manifest = shipped.manifest
    assert manifest["digest"] == objects.input_digest()
    source = guarded_programs("\n".join(path.read_text() for path in sorted(BPF_DIR.glob("*.h"))))
    assert sorted(manifest["events"]) == sorted(EVENTS) == sorted(source)
    for event in EVENTS:
        programs = set(manifest["events"][event])
        if event == "kmod_load":  # one variant of two, as the build host's tracefs allows
            assert programs and programs < source[event], event
        else:
            assert programs == source[event], event
    assert manifest["failed_execs"] == ["tracepoint__syscalls__sys_exit_execve",
                                        "tracepoint__syscalls__sys_exit_execveat"]
    assert manifest["filters"] == sorted(record.FOLLOW_PROGRAMS)
    assert manifest["runtime"] == sorted([record.REST_PROGRAM, record.EXE_FORGET_PROGRAM])
    assert manifest["kmod_load"] == ("tracepoints" if "tracepoint__syscalls__sys_exit_finit_module"
                                     in manifest["events"]["kmod_load"] else "raw_syscalls")


@needs_root
@needs_clang
def test_programs_of_a_selection(shipped):
    runtime = {record.REST_PROGRAM, record.EXE_FORGET_PROGRAM}
    assert shipped.programs(["exec", "setsid"], failed_execs=False) == sorted({
        "raw_tracepoint__sched_process_exec", "tracepoint__syscalls__sys_exit_setsid", *runtime})
    every = {p for programs in shipped.manifest["events"].values() for p in programs}
    assert set(shipped.programs()) == every | runtime
    with pytest.raises(ProbeError, match="^no event nope in the shipped probe$"):
        shipped.programs(["exec", "nope"])


def test_the_digest_follows_every_input(tmp_path, monkeypatch):
    before = objects.input_digest()
    copy = tmp_path / "bpf"
    shutil.copytree(BPF_DIR, copy)
    monkeypatch.setattr(objects, "BPF_DIR", copy)
    assert objects.input_digest() == before
    with open(copy / "exec.bpf.h", "a") as header:
        header.write("\n")
    assert objects.input_digest() != before
    assert {"bpf/hids.bpf.c", "include/sdxfer_filter.h", "schema/events.yaml", "generated/xfer.h",
            "templates/xfer.h.j2", "codegen/render.py", "kernel/objects.py"} <= {name for name, _ in objects.inputs()}


def test_stale_objects_without_clang_are_one_line(tmp_path, monkeypatch):
    stale = tmp_path / "objects"
    stale.mkdir()
    (stale / objects.MANIFEST).write_text(json.dumps({"digest": "old", "objects": {}}))
    monkeypatch.setattr(objects, "OBJECTS_DIR", stale)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(objects.shutil, "which", lambda name: None)
    assert objects.current(stale, objects.input_digest()) is None
    with pytest.raises(ProbeError) as error:
        objects.shipped()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"the prebuilt objects in {stale} are out of date and there is no clang to rebuild")
    assert "python -m sdxfer.kernel.objects" in message and "--backend bcc" in message


@needs_root
@needs_clang
def test_missing_objects_are_rebuilt_into_the_cache_once(tmp_path, monkeypatch):
    monkeypatch.setattr(objects, "OBJECTS_DIR", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    said = []
    found = objects.shipped(notice=said.append)
    cache = tmp_path / "cache" / "sdxfer" / "objects"
    assert said == [f"the prebuilt objects in {tmp_path / 'none'} are missing: building them into {cache}"]
    assert found.folder == cache and found.object("perf").is_file() and found.object("ringbuf").is_file()
    assert objects.shipped(notice=said.append) == found and len(said) == 1  # current now: not built again


@needs_root
@needs_clang
def test_the_wheel_carries_the_objects(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("sdxfer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(f"sdxfer/objects/{objects.MANIFEST}"))
    assert {f"sdxfer/objects/{name}" for name in ("hids.perf.bpf.o", "hids.ringbuf.bpf.o")} <= names
    assert manifest["digest"] == objects.input_digest()  # the same files, installed


# ---- programs selected at load -------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("event", EVENTS)
def test_selecting_an_event_loads_only_its_programs(shipped, event):
    with Sensor(shipped.object("ringbuf"), programs=shipped.programs([event])) as sensor:
        assert sensor.programs_attached == len(shipped.manifest["events"][event])


@pytest.mark.live
def test_program_selection_is_checked_and_the_filters_stay_off_unless_asked(shipped):
    with pytest.raises(ProbeError) as error:
        Sensor(shipped.object("perf"), programs=["raw_tracepoint__sched_process_exec", "nope", "nope2"])
    assert str(error.value) == f"{shipped.object('perf')} has no program nope, nope2"
    with pytest.raises(ProbeError, match="^programs= selects programs of a built object"):
        Sensor(objects.PROGRAM, programs=["raw_tracepoint__sched_process_exec"], backend="bcc")
    # every event's programs, not the fork/free ones (no --children) nor the tail-called one
    with Sensor(shipped.object("perf")) as sensor:
        assert sensor.programs_attached == len(shipped.programs()) - len(shipped.manifest["runtime"])


@pytest.mark.live
def test_exec_probe_loads_the_prebuilt_exec_programs(shipped):
    with ExecProbe() as probe:
        assert (probe.backend, probe.programs_attached) == ("libbpf", len(shipped.manifest["events"]["exec"]))


# ---- the tools through the prebuilt object ---------------------------------------


def started(*argv) -> tuple[Tool, str]:
    tool = Tool(str(BIN / argv[0]), *argv[1:])
    return tool, tool.wait_err(lambda line: "Ctrl+C to stop" in line, START_S)


def wait_json(tool: Tool, predicate) -> dict:
    return json.loads(tool.wait_out(lambda text: predicate(json.loads(text))))


@pytest.mark.live
@pytest.mark.parametrize("transport, backend", [("perf", "libbpf"), ("ringbuf", "libbpf"), ("ringbuf", "bcc")])
def test_execmon_reports_an_exec_exactly(transport, backend):
    argv = ["/bin/echo", f"mk{uuid.uuid4().hex[:10]}", "two words", ""]
    options = ("--transport", transport) + (("--backend", "bcc") if backend == "bcc" else ())
    tool, banner = started("execmon", "--json", *options)
    try:
        assert f"({transport}, {backend})" in banner, banner
        child = subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        assert child.returncode == 0
        got = wait_json(tool, lambda r: r["argv"] == argv)
    finally:
        tool.stop(signal.SIGINT)
    assert (got["event"], got["ppid"], got["uid"], got["ret"], got["exe"], got["comm"]) == (
        "exec", os.getpid(), os.getuid(), 0, "/bin/echo", "echo")
    assert got["truncated"] == [] and got["argv_truncated"] is False


SETSID_CHILD = "import os, sys\nsys.stdin.readline()\nos.setsid()\nos._exit(0)\n"


@pytest.mark.live
def test_hidsmon_events_select_programs_at_load():
    tool, banner = started("hidsmon", "--events", "exec,setsid", "--no-failed", "--json", "-p", str(os.getpid()),
                           "--children")
    try:
        # from the object with every event: one exec program (no failed execs), one setsid program,
        # and --children's fork and free programs
        assert banner.startswith("hidsmon: 2 events, 4 programs attached in ") and "libbpf" in banner, banner
        child = subprocess.Popen([sys.executable, "-c", SETSID_CHILD], stdin=subprocess.PIPE, text=True)
        child.communicate("go\n")
        setsid = wait_json(tool, lambda r: r["event"] == "setsid" and r["pid"] == child.pid)
        exec_ = wait_json(tool, lambda r: r["event"] == "exec" and r["pid"] == child.pid)
    finally:
        tool.stop(signal.SIGINT)
    assert (setsid["ret"], setsid["sid"]) == (child.pid, child.pid)
    assert exec_["argv"] == [sys.executable, "-c", SETSID_CHILD] and exec_["ppid"] == os.getpid()
    assert {json.loads(line)["event"] for line in tool.out} <= {"exec", "setsid"}


@pytest.mark.live
def test_ebpf_still_prints_the_c_text():
    done = subprocess.run([str(BIN / "hidsmon"), "--events", "setsid", "--ebpf"], capture_output=True, text=True,
                          timeout=START_S)
    assert done.returncode == 0 and "#define HIDS_WANT_SETSID" in done.stdout and "TRACEPOINT_PROBE" in done.stdout


@pytest.mark.live
def test_sdxfer_run_of_the_shipped_probe_uses_its_prebuilt_object():
    argv = ["/bin/echo", f"mk{uuid.uuid4().hex[:10]}"]
    tool = Tool(str(BIN / "sdxfer"), "run", str(objects.PROGRAM), "--events", "exec", "--json")
    try:
        banner = tool.wait_err(lambda line: "Ctrl+C to stop" in line, START_S)
        assert banner.startswith("sdxfer run: 1 events, 3 programs attached in ") and ", libbpf)" in banner, banner
        child = subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        assert child.returncode == 0
        got = wait_json(tool, lambda r: r["argv"] == argv)
    finally:
        tool.stop(signal.SIGINT)
    assert (got["event"], got["ppid"], got["exe"]) == ("exec", os.getpid(), "/bin/echo")


@pytest.mark.live
@pytest.mark.parametrize("include_self", [False, True])
def test_the_loading_process_is_left_out_unless_included(shipped, tmp_path, include_self):
    """--include-self's filter in the prebuilt object: this process's own
    file_create is sent only when asked for; a child's after it comes either way."""
    from sdxfer.kernel.filters import EventFilter

    selection = EventFilter(not_tgid=None if include_self else os.getpid())
    with Sensor(shipped.object("ringbuf"), programs=shipped.programs(["file_create"]),
                event_filter=selection) as sensor:
        os.close(os.open(tmp_path / "by-self", os.O_CREAT | os.O_WRONLY, 0o600))
        subprocess.run(["/bin/touch", str(tmp_path / "by-child")], check=True)
        paths = []
        deadline = time.monotonic() + LIVE_WAIT_S
        for event in sensor.events(stop=lambda: time.monotonic() > deadline):
            if event.path.startswith(str(tmp_path)):
                paths.append(event.path)
            if paths and paths[-1].endswith("by-child"):
                break
    assert paths == [str(tmp_path / "by-self")] * include_self + [str(tmp_path / "by-child")]
