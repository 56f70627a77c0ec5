"""Sensor(backend="libbpf"): objects `sdxfer build` wrote, loaded through the
system's libbpf (sdxfer.kernel.libbpf), read by the same readers, decoded to
the same events as BCC gives for the same actions, on both transports."""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sdxfer import ProbeError, Sensor
from sdxfer.kernel import build, core, libbpf
from sdxfer.kernel.filters import EventFilter, cgroup2_root
from test_core_build import OPEN_PROBE, OPEN_SCHEMA, SPANS_PROBE, SPANS_SCHEMA
from conftest import LIVE_WAIT_S, wait_until
from test_sensor_live import BAD_FD, SDXFER, collect, write_bad_fd

TRANSPORTS = ["perf", "ringbuf"]
# what differs between two runs of the same actions
RUN_FIELDS = ("timestamp_ns", "seq", "cpu")

live = pytest.mark.skipif(os.geteuid() != 0, reason="loading probes needs root")


def built(program, schema, out: Path, transport: str, **defines) -> Path:
    build.build(program, out, schema=schema, defines={**defines, **({"SDXFER_RINGBUF": None} if transport == "ringbuf" else {})})
    return out


def same_run(events) -> list[dict]:
    return [{k: v for k, v in e.to_dict().items() if k not in RUN_FIELDS} for e in events]


@pytest.fixture
def tutorial(tmp_path):
    (tmp_path / "events.yaml").write_text(OPEN_SCHEMA)
    (tmp_path / "open.bpf.c").write_text(OPEN_PROBE)
    return tmp_path


def open_missing(folder: Path, names) -> None:
    for name, flags in names:
        try:
            os.close(os.open(folder / name, flags))
        except OSError:
            pass


def opened_events(sensor, folder: Path, count: int) -> list:
    return [e for e in collect(sensor, count) if e.path.startswith(str(folder))]


# ---- the libbpf layer, without the kernel ---------------------------------------


def test_a_missing_libbpf_is_one_line(monkeypatch):
    monkeypatch.setattr(libbpf, "LIBRARY", "libbpf.so.no-such-version")
    monkeypatch.setattr(libbpf, "_lib", None)
    with pytest.raises(ProbeError) as error:
        libbpf.library()
    assert str(error.value) == ("libbpf.so.no-such-version not found: loading a built object needs libbpf"
                                " (apt-get install libbpf1)")


def test_the_verdict_is_the_verifiers_last_line_before_its_statistics():
    log = ["0: (79) r0 = *(u64 *)(r1 +4096)", "invalid bpf_context access off=4096 size=8",
           "processed 1 insns (limit 1000000) max_states_per_insn 0", "-- END PROG LOAD LOG --",
           "libbpf: prog 'p': failed to load: -13"]
    assert libbpf.verifier_verdict(log) == "invalid bpf_context access off=4096 size=8"


def test_objects_are_told_from_c_and_cpus_read_from_sysfs_syntax():
    assert core.is_object("probe.bpf.o") and core.is_object(Path("x.o")) and core.is_object(b"\x7fELF")
    assert not core.is_object("probe.bpf.c") and not core.is_object("int x;\n// a.o")
    assert core.online_cpus("0-3,6\n") == [0, 1, 2, 3, 6]
    assert core.online_cpus("0") == [0]


@live
def test_an_objects_read_only_globals_are_found_by_name_and_set_before_load(tmp_path):
    obj = built(SPANS_PROBE, SPANS_SCHEMA, tmp_path / "spans.bpf.o", "ringbuf", TARGET_PID=1, BAD_FD=BAD_FD)
    opened = libbpf.Object(obj.read_bytes())
    try:
        places = opened.globals()
        assert {name: size for name, (_, size) in places.items()} == {
            "sdxfer_filter_pid": 8, "sdxfer_filter_uid": 8, "sdxfer_filter_mntns": 8, "sdxfer_filter_not_tgid": 8,
            "sdxfer_wakeup_every": 4}
        opened.set_read_only({"sdxfer_filter_uid": 1000, "sdxfer_wakeup_every": 7})
        data = opened.map(".rodata").initial_value()
        read = {name: int.from_bytes(data[at:at + size], "little") for name, (at, size) in places.items()}
        assert read == {"sdxfer_filter_pid": 2**64 - 1, "sdxfer_filter_uid": 1000, "sdxfer_filter_mntns": 2**64 - 1,
                        "sdxfer_filter_not_tgid": 2**64 - 1,
                        "sdxfer_wakeup_every": 7}
        with pytest.raises(ProbeError, match="^<object bytes> has no read-only global nope: rebuild it"):
            opened.set_read_only({"nope": 1})
        assert opened.find_map("sdxfer_no_such_map") is None
        assert sorted(p.name for p in opened.programs()) == ["raw_tracepoint__sys_enter", "sdxfer_rest_raw_tracepoint"]
    finally:
        opened.close()


def test_a_missing_object_is_one_line(tmp_path):
    with pytest.raises(ProbeError, match=rf"^libbpf could not open {tmp_path}/nope.bpf.o: No such file or directory"):
        libbpf.Object(tmp_path / "nope.bpf.o")


# ---- live: the same events as BCC gives -----------------------------------------


@live
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_tutorial_probe_gives_what_bcc_gives(tutorial, transport):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", transport)
    actions = [("a-missing-file", os.O_RDONLY), ("another", os.O_RDONLY | os.O_CLOEXEC),
               ("x" * 200, os.O_WRONLY | os.O_NOFOLLOW)]
    runs = {}
    for backend, program in (("bcc", tutorial / "open.bpf.c"), ("libbpf", obj)):
        mine = EventFilter(pid=os.getpid())
        with Sensor(program, schema=tutorial / "events.yaml", transport=transport, backend=backend,
                    event_filter=mine) as sensor:
            assert (sensor.backend, sensor.transport, sensor.programs_attached) == (backend, transport, 1)
            open_missing(tutorial, actions)
            runs[backend] = opened_events(sensor, tutorial, len(actions))
            assert sensor.stats.lost == 0 and sensor.records_sequenced() >= len(actions)
    assert same_run(runs["libbpf"]) == same_run(runs["bcc"])
    paths = [str(tutorial / name) for name, _ in actions]
    assert [e.path for e in runs["libbpf"]] == paths[:2] + [paths[2][:256]]  # the schema keeps 256 bytes
    assert [e.truncated for e in runs["libbpf"]] == [(), (), ("path",)]
    assert {e.pid for e in runs["libbpf"]} == {os.getpid()}


@live
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("by_tail_call", [True, False], ids=["tail-call", "record-only"])
def test_spanning_fields_arrive_as_under_bcc(tmp_path, transport, by_tail_call):
    """Through the tail-called program, continuation records that reassemble;
    without it, the record and how much was left out."""
    defines = {"TARGET_PID": os.getpid(), "BAD_FD": BAD_FD, **({"SPAN_BY_TAIL_CALL": None} if by_tail_call else {})}
    obj = built(SPANS_PROBE, SPANS_SCHEMA, tmp_path / "spans.bpf.o", transport, **defines)
    payload = b"".join(bytes([65 + i % 26]) * 99 + b"\0" for i in range(25))  # 2,500 bytes
    runs = {}
    for backend, program, options in (("bcc", SPANS_PROBE, {"defines": defines}), ("libbpf", obj, {})):
        with Sensor(program, schema=SPANS_SCHEMA, transport=transport, backend=backend, **options) as sensor:
            write_bad_fd(payload)
            runs[backend] = collect(sensor, 1, "big")
            assert sensor.reassembler.pending == 0 and sensor.stats.continuations_lost == 0
            assert sensor.stats.delivered == 1
    (event,) = runs["libbpf"]
    if by_tail_call:
        assert event.argv == [chunk.decode() for chunk in payload.split(b"\0")[:-1]]
        assert (event.n, event.data, event.lost) == (len(payload), payload[:1000], {"data": len(payload) - 1000})
    else:
        assert event.lost == {"argv": len(payload) - 64, "data": len(payload) - 32}
    assert same_run(runs["libbpf"]) == same_run(runs["bcc"])


CHILD = """
import os, sys
sys.stdin.readline()
try:
    os.open(sys.argv[1], os.O_RDONLY)
except OSError:
    pass
print("done", flush=True)
sys.stdin.readline()
"""


def opened_with(tutorial, program, event_filter) -> tuple[list, int]:
    """The opens of this process and of a child (its pid too), as a probe reports them loaded with
    event_filter(the child's pid)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tutorial / "by-child")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        with Sensor(program, schema=tutorial / "events.yaml", event_filter=event_filter(child.pid)) as sensor:
            open_missing(tutorial, [("by-me", os.O_RDONLY)])
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
            events = opened_events(sensor, tutorial, 1)
            sensor.detach()
            events += [e for e in sensor.decoded(sensor.drain()) if e.path.startswith(str(tutorial))]
    finally:
        child.communicate("end\n")
    return [(e.pid, e.path) for e in events], child.pid


@live
def test_a_pid_filter_is_a_read_only_global_of_one_object(tutorial):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "perf")
    # the object's bytes, as well as its path
    events, child = opened_with(tutorial, obj.read_bytes(), lambda child: EventFilter(pid=child))
    assert events == [(child, str(tutorial / "by-child"))]


@live
def test_the_process_left_out_is_a_read_only_global_too(tutorial):
    """What --include-self turns off: the loading process's own events never sent."""
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "perf")
    events, child = opened_with(tutorial, obj, lambda child: EventFilter(not_tgid=os.getpid()))
    assert events == [(child, str(tutorial / "by-child"))]


@live
def test_nothing_on_the_core_path_imports_bcc(tutorial):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "ringbuf")
    code = ("import sys\nfrom sdxfer import Sensor\n"
            f"with Sensor({str(obj)!r}, schema={str(tutorial / 'events.yaml')!r}) as s:\n"
            "    print(s.backend, s.transport, s.programs_attached, 'bcc' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "libbpf ringbuf 1 False\n", "")


@live
def test_a_verifier_rejection_names_the_program(tmp_path):
    probe = tmp_path / "bad.bpf.c"
    probe.write_text('#include "xfer.h"\n\nRAW_TRACEPOINT_PROBE(sys_enter)\n{\n'
                     '    return *(volatile long *)((char *)ctx + 4096);\n}\n')
    obj = built(probe, None, tmp_path / "bad.bpf.o", "perf")
    with pytest.raises(ProbeError) as error:
        Sensor(obj)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("the kernel's verifier rejected program raw_tracepoint__sys_enter (Permission denied): ")
    assert "invalid bpf_context access off=4096" in message


@live
def test_the_objects_transport_and_filters_are_its_build_and_said_in_one_line(tutorial):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "perf")
    schema = tutorial / "events.yaml"
    cases = [({"transport": "ringbuf"}, f"{obj} was built for the perf transport: rebuild it with -D SDXFER_RINGBUF for ringbuf"),
             ({"event_filter": EventFilter(pid=1, children=True)},
              f"{obj} was built without -D SDXFER_FILTER_CHILDREN: rebuild it with it for this filter"),
             ({"defines": {"X": 1}}, "a built object takes its -D defines from sdxfer build, not at load"),
             ({"backend": "bcc"}, f"BCC compiles C text, not the object {obj}: load it with backend='libbpf'")]
    for options, message in cases:
        with pytest.raises(ProbeError) as error:
            Sensor(obj, schema=schema, **options)
        assert str(error.value) == message
    # backend="libbpf" (or its old name) given C text builds it with clang, and falls back to nothing
    bcc_only = tutorial / "bcc_only.bpf.c"
    bcc_only.write_text(OPEN_PROBE.replace("return 0;", "return BTF_OFF_TASK_STRUCT_TGID < 0;", 1))
    with pytest.raises(ProbeError, match=rf"^{bcc_only}:\d+:\d+: error: use of undeclared identifier 'BTF_OFF_TASK"):
        Sensor(bcc_only, schema=schema, backend="core")


@live
def test_sdxfer_run_loads_a_built_object_through_libbpf(tutorial):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "ringbuf")
    run = subprocess.Popen([SDXFER, "run", str(obj), "--schema", str(tutorial / "events.yaml"), "--json",
                            "-p", str(os.getpid())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = run.stderr.readline()
        assert banner.startswith("sdxfer run: 1 events, 1 programs attached in ") and "(ringbuf, libbpf)" in banner
        open_missing(tutorial, [("by-run", os.O_RDONLY)])
        line = json.loads(run.stdout.readline())
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=LIVE_WAIT_S)
    assert (line["event"], line["pid"], line["path"]) == ("file_open", os.getpid(), str(tutorial / "by-run"))


@live
def test_children_and_cgroup_filters_fill_the_objects_maps(tutorial):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "perf",
                SDXFER_FILTER_CHILDREN=None, SDXFER_FILTER_CGROUP=None)
    mine = cgroup2_root() / Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip().lstrip("/")
    selection = EventFilter(pid=os.getpid(), children=True, cgroup=mine)
    with Sensor(obj, schema=tutorial / "events.yaml", event_filter=selection) as sensor:
        assert sensor.programs_attached == 3  # the probe, and the fork and free followers
        open_missing(tutorial, [("followed", os.O_RDONLY)])
        events = opened_events(sensor, tutorial, 1)
    assert [(e.pid, e.path) for e in events] == [(os.getpid(), str(tutorial / "followed"))]


@live
@pytest.mark.parametrize("transport, size", [("perf", {"perf_pages": 1}), ("ringbuf", {"ringbuf_pages": 1})])
def test_loss_in_a_tiny_buffer_is_read_from_the_drop_counters(tutorial, transport, size):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", transport)
    sent = 300
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one CPU: one perf buffer to fill
    try:
        with Sensor(obj, schema=tutorial / "events.yaml", event_filter=EventFilter(pid=os.getpid()), **size) as sensor:
            open_missing(tutorial, [("f" * 200, os.O_RDONLY)] * sent)
            sensor.detach()
            events = list(sensor.decoded(sensor.drain()))
            stats, numbered = sensor.stats, sensor.records_sequenced()
    finally:
        os.sched_setaffinity(0, affinity)
    counts = stats.per_event["file_open"]
    assert counts.lost > 0 and counts.delivered == len(events)
    assert counts.delivered + counts.lost == numbered >= sent


@live
def test_a_filter_not_asked_for_keeps_the_value_the_object_was_built_with(tutorial):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "ringbuf",
                SDXFER_FILTER_PID=1)
    found = {}
    for name, selection in (("built-for-init", EventFilter()), ("set-at-load", EventFilter(pid=os.getpid()))):
        with Sensor(obj, schema=tutorial / "events.yaml", event_filter=selection) as sensor:
            open_missing(tutorial, [(name, os.O_RDONLY)])
            sensor.detach()
            found[name] = [e.path for e in sensor.decoded(sensor.drain()) if e.path.startswith(str(tutorial))]
    assert found == {"built-for-init": [], "set-at-load": [str(tutorial / "set-at-load")]}


# ---- C text: built by clang once (cached), else BCC -------------------------------


@live
def test_c_text_is_built_by_clang_once_cached_by_content_and_said_in_one_line(tutorial, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mine = EventFilter(pid=os.getpid())
    lines, objects = [], []
    for _ in range(2):
        with Sensor(tutorial / "open.bpf.c", schema=tutorial / "events.yaml", event_filter=mine) as sensor:
            assert (sensor.backend, sensor.transport) == ("libbpf", "ringbuf") and sensor.assembly is None
            assert set(sensor.phases) == {"open", "load", "attach"} and all(t >= 0 for t in sensor.phases.values())
            open_missing(tutorial, [("cached-probe", os.O_RDONLY)])
            [event] = opened_events(sensor, tutorial, 1)
            assert event.path == str(tutorial / "cached-probe")
            objects.append(sensor.built)
        lines += capsys.readouterr().err.splitlines()
    assert objects[0] == objects[1] and objects[0].parent == tmp_path / "cache" / "sdxfer" / "objects"
    assert (os.stat(objects[0].parent).st_mode & 0o777) == 0o700
    assert lines == [f"sdxfer: {tutorial / 'open.bpf.c'}: built by clang (now: {objects[0]}), loaded through libbpf",
                     f"sdxfer: {tutorial / 'open.bpf.c'}: built by clang (cached: {objects[0]}), loaded through libbpf"]
    # another -D is another object
    with Sensor(tutorial / "open.bpf.c", schema=tutorial / "events.yaml", defines={"UNUSED_HERE": 1},
                event_filter=mine) as sensor:
        assert sensor.built != objects[0] and sensor.built.parent == objects[0].parent


@live
def test_without_clang_c_text_is_compiled_by_bcc_and_said(tutorial, tmp_path, monkeypatch, capsys):
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with Sensor(tutorial / "open.bpf.c", schema=tutorial / "events.yaml", transport="perf",
                event_filter=EventFilter(pid=os.getpid())) as sensor:
        assert (sensor.backend, sensor.transport, sensor.built) == ("bcc", "perf", None)
        assert sensor.assembly is not None and set(sensor.phases) == {"open", "load", "attach"}
    assert capsys.readouterr().err == (f"sdxfer: {tutorial / 'open.bpf.c'}: compiled by BCC (clang not found:"
                                       " apt-get install clang to build it once for libbpf)\n")


@live
def test_c_text_only_bcc_can_compile_falls_back_to_bcc_saying_why(tmp_path, monkeypatch, capsys):
    """BTF_OFF_ macros are the BCC path's own: clang refuses them, BCC loads the probe."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = OPEN_PROBE.replace("return 0;", "return BTF_OFF_TASK_STRUCT_TGID < 0;", 1)
    assert text != OPEN_PROBE
    (tmp_path / "events.yaml").write_text(OPEN_SCHEMA)
    with Sensor(text, schema=tmp_path / "events.yaml") as sensor:
        assert sensor.backend == "bcc"
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("sdxfer: <program text>: compiled by BCC (clang/libbpf: <program text>:")
    assert "BTF_OFF_TASK_STRUCT_TGID" in line


@live
def test_btf_names_the_kernel_types_an_object_is_relocated_against(tutorial, tmp_path):
    obj = built(tutorial / "open.bpf.c", tutorial / "events.yaml", tutorial / "open.bpf.o", "ringbuf")
    copy = tmp_path / "vmlinux.btf"
    copy.write_bytes(Path(core.BTF_PATH).read_bytes())
    with Sensor(obj, schema=tutorial / "events.yaml", btf=copy, event_filter=EventFilter(pid=os.getpid())) as sensor:
        open_missing(tutorial, [("with-custom-btf", os.O_RDONLY)])
        [event] = opened_events(sensor, tutorial, 1)
        assert event.path == str(tutorial / "with-custom-btf")
    with pytest.raises(ProbeError, match=rf"^no BTF file {tmp_path}/nope.btf: give the kernel's BTF"):
        Sensor(obj, schema=tutorial / "events.yaml", btf=tmp_path / "nope.btf")
    with pytest.raises(ProbeError, match="^btf= is for the libbpf backend"):
        Sensor(tutorial / "open.bpf.c", schema=tutorial / "events.yaml", backend="bcc", btf=copy)


def test_without_kernel_btf_or_a_btf_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(core, "BTF_PATH", str(tmp_path / "no-vmlinux"))
    with pytest.raises(ProbeError, match=rf"^this kernel has no {tmp_path}/no-vmlinux .*: load with --btf FILE"):
        core.check_btf(None)


@live
@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_detach_without_waiting_lets_go_of_every_program_once_closed(tutorial, backend):
    """detach(wait=False) hands the attachments to a helper process: the
    programs run on until close(), then the helper lets go and they are freed."""
    program = tutorial / "open.bpf.c"
    if backend == "libbpf":
        program = built(program, tutorial / "events.yaml", tutorial / "open.bpf.o", "ringbuf")
    sensor = Sensor(program, schema=tutorial / "events.yaml", backend=backend,
                    event_filter=EventFilter(pid=os.getpid()))
    ids = {prog_id(fd) for fd in sensor._probe.attachment_fds()}
    assert len(ids) == 1 and None not in ids
    sensor.detach(wait=False)
    assert sensor.programs_attached == 0
    # still attached, through the helper, until close: an action is still seen
    open_missing(tutorial, [("after-detach", os.O_RDONLY)])
    [event] = opened_events(sensor, tutorial, 1)
    assert event.path == str(tutorial / "after-detach")
    sensor.close()
    wait_until(lambda: not loaded(ids), what="the programs' release")


def prog_id(fd: int) -> int | None:
    """The program an attachment (a BPF link or a perf event) runs, from its fdinfo or bpftool."""
    info = Path(f"/proc/self/fdinfo/{fd}").read_text()
    found = re.search(r"^prog_id:\s*(\d+)", info, re.MULTILINE)
    if found:
        return int(found.group(1))
    programs = json.loads(subprocess.run(["bpftool", "-j", "perf"], capture_output=True, text=True).stdout)
    return next((p["prog_id"] for p in programs if p["pid"] == os.getpid() and p["fd"] == fd), None)


def loaded(ids: set[int]) -> set[int]:
    return {i for i in ids if subprocess.run(["bpftool", "prog", "show", "id", str(i)], capture_output=True).returncode == 0}


BIG_STACK_PROBE = OPEN_PROBE.replace("char comm[16];", "char comm[16];\n    char big[1024];\n"
                                     "    bpf_get_current_comm(big, sizeof(big));", 1)

STACK_CHILD = """
import sys
from sdxfer import Sensor
from sdxfer.errors import ProbeError
try:
    Sensor(sys.argv[1], schema=sys.argv[2])
except ProbeError as exc:
    print("refused:", str(exc).splitlines()[0][-200:])
"""


@live
def test_c_text_over_the_stack_limit_is_one_error_not_a_fallback_that_ends_the_process(tmp_path):
    """BCC's LLVM would end the whole process on the same error: clang's is raised."""
    assert BIG_STACK_PROBE != OPEN_PROBE
    (tmp_path / "events.yaml").write_text(OPEN_SCHEMA)
    probe = tmp_path / "big.bpf.c"
    probe.write_text(BIG_STACK_PROBE)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", STACK_CHILD, str(probe), str(tmp_path / "events.yaml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:") and "stack" in done.stdout
