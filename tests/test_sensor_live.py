"""Live tests of the Sensor SDK: a test-only schema and probe, loaded through
Sensor (on both backends) and through `sdxfer run`, on both transports: exact values, kernel
offsets named in the program (nested and anonymous members, sizes), each
one-line error, per-event loss, nothing lost at start-up, and records that
stay intact while interrupt-context programs pack their own on the same CPU.

Needs root and bcc (CI runs as root); skipped otherwise.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import (BACKENDS_AND_TRANSPORTS, EACH_BACKEND_AND_TRANSPORT, LIVE_WAIT_S, Tool, backend_options,
                      run_rcu_callbacks)
from sdxfer import ProbeError, Sensor, btf
from sdxfer.kernel.filters import EventFilter
from sdxfer.program import BTF_PATH
from sdxfer.runtime import record

pytestmark = pytest.mark.live

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCHEMA = HERE / "schemas" / "sensor.yaml"
PROBE = HERE / "probes" / "sensor.bpf.c"
BAD_FD = 987654  # write(2) to it fails at once; the probe reports only those
SDXFER = str(ROOT / ".venv" / "bin" / "sdxfer")


def defines(pid: int, **more) -> dict:
    return {"TARGET_PID": pid, "TEST_MARKER": "0x1122334455ULL", "BAD_FD": BAD_FD, **more}


def getpgid(value: int) -> None:
    try:
        os.getpgid(value)
    except OSError:
        pass


def write_bad_fd(data: bytes) -> None:
    try:
        os.write(BAD_FD, data)
    except OSError:
        pass


def collect(sensor, count: int, name: str | None = None) -> list:
    got = []
    deadline = time.monotonic() + LIVE_WAIT_S
    while len(got) < count and time.monotonic() < deadline:
        got += [e for e in sensor.decoded(sensor.read(100)) if name is None or e.name == name]
    return got


def kernel_values() -> dict:
    kernel = btf.load(BTF_PATH)
    return {"tgid_offset": kernel.offsetof("task_struct", "tgid"),
            "dport_offset": kernel.offsetof("sock", "__sk_common.skc_dport"),
            "arg_start_offset": kernel.offsetof("mm_struct", "arg_start"),
            "task_size": kernel.sizeof("task_struct")}


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_sensor_delivers_exact_values(backend, transport):
    with Sensor(PROBE, schema=str(SCHEMA), transport=transport, backend=backend,
                defines=defines(os.getpid())) as sensor:
        for value in (100001, -7, 0):
            getpgid(value)
        write_bad_fd(b"a\0b\xff" * 3)
        events = collect(sensor, 4)
        assert str(sensor.stats).startswith("delivered 4, lost 0, undecodable 0")
    calls = [e for e in events if e.name == "getpgid_call"]
    assert [e.asked for e in calls] == [100001, -7, 0]
    comm = Path("/proc/self/comm").read_text().strip()
    for e in calls:
        assert (e.pid, e.marker, e.comm, e.parent_tgid) == (os.getpid(), 0x1122334455, comm, os.getppid())
        assert {k: getattr(e, k) for k in kernel_values()} == kernel_values()
    (write,) = [e for e in events if e.name == "write_call"]
    assert (write.fd, write.data, write.truncated) == (BAD_FD, b"a\0b\xff" * 3, ())
    assert sensor.stats.per_event["getpgid_call"].delivered == 3
    assert sensor.stats.per_event["write_call"].delivered == 1
    assert sensor.stats.per_event["interrupt"].delivered == 0


@pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)
def test_program_text_is_accepted_too(backend, transport):
    text = PROBE.read_text()
    with Sensor(text, schema=SCHEMA, transport=transport, backend=backend, defines=defines(os.getpid())) as sensor:
        getpgid(31337)
        (event,) = collect(sensor, 1)
    assert (event.name, event.asked) == ("getpgid_call", 31337)


WRITTEN = b"x y\nz"
CHILD = """
import os, sys
sys.stdin.readline()
try:
    os.getpgid(4242)
except OSError:
    pass
try:
    os.write(%d, %r)
except OSError:
    pass
print("done", flush=True)
sys.stdin.readline()
""" % (BAD_FD, WRITTEN)


def run_cli_against_child(extra: list[str], backend: str, transport: str, events=("getpgid_call", "write_call")):
    """sdxfer run (on this backend and transport) on a child that acts once the probe
    is attached; once a line names each of `events`, returns (the first len(events)
    stdout lines, stderr)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    command = [SDXFER, "run", str(PROBE), "--schema", str(SCHEMA), *backend_options(backend, transport),
               "-D", f"TARGET_PID={child.pid}", "-D", "TEST_MARKER=7", "-D", f"BAD_FD={BAD_FD}", *extra]
    run = Tool(*command)
    try:
        started = run.wait_err(lambda line: True)
        assert "programs attached" in started and f"({transport}, {backend})" in started, run.text()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        for name in events:
            run.wait_out(lambda line: name in line)
        err = run.stop(signal.SIGINT)
        assert run.returncode == 0, err
        return [line.rstrip("\n") for line in run.out[:len(events)]], err
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_sdxfer_run_json(backend, transport):
    lines, err = run_cli_against_child(["--json"], backend, transport)
    call, write = (json.loads(line) for line in lines)
    assert {k: call[k] for k in ("event", "asked", "marker", "comm", *kernel_values())} == {
        "event": "getpgid_call", "asked": 4242, "marker": 7, "comm": Path(sys.executable).name[:15], **kernel_values()}
    assert (write["event"], write["fd"], write["data"], write["truncated"]) == ("write_call", BAD_FD, WRITTEN.hex(), [])
    assert "sdxfer run: 2 events received, 0 lost" in err


@pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)
def test_sdxfer_run_text_and_event_filter(backend, transport):
    lines, err = run_cli_against_child(["--events", "write_call"], backend, transport, events=("write_call",))
    # time event pid comm key=value: this schema's events have no pid or comm fields
    [line] = lines
    assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} write_call +- +- +fd={BAD_FD} data={WRITTEN.hex()}", line)
    assert "sdxfer run: 2 events received, 0 lost" in err


def test_sdxfer_run_ebpf_prints_the_final_program():
    out = subprocess.run([SDXFER, "run", str(PROBE), "--schema", str(SCHEMA), "-D", "TARGET_PID=1",
                          "-D", "TEST_MARKER=2", "-D", "BAD_FD=3", "--ebpf"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "#define TARGET_PID 1" in out.stdout and "#define BTF_OFF_SOCK___SK_COMMON_SKC_DPORT" in out.stdout
    assert "static __always_inline int getpgid_call_print(" in out.stdout and '#include "xfer.h"' not in out.stdout


BROKEN = {
    "compile": ('int x = ;\n', "BCC could not compile the probe: {where}:1:9: error: expected expression"),
    "missing_packer": ('#include "xfer.h"\nTRACEPOINT_PROBE(syscalls, sys_enter_getpgid)\n{\n    nope_print(args, 1);\n'
                       '    return 0;\n}\n',
                       "the program calls nope_print(), but the schema has no event 'nope' "
                       "(its events: getpgid_call, write_call, interrupt)"),
    "verifier": ('#include "xfer.h"\nTRACEPOINT_PROBE(syscalls, sys_enter_getpgid)\n{\n'
                 '    char *p = (char *)sdxfer_scratch_slot(0);\n    if (p)\n        p[args->pid] = 1;\n    return 0;\n}\n',
                 "the kernel's verifier rejected program tracepoint__syscalls__sys_enter_getpgid ("),
    "member": ('#include "xfer.h"\nint x = BTF_OFF_TASK_STRUCT_NO_SUCH_MEMBER;\n',
               "BTF_OFF_TASK_STRUCT_NO_SUCH_MEMBER: struct task_struct has no member"),
    "struct": ('#include "xfer.h"\nint x = BTF_SIZE_NO_SUCH_STRUCT;\n',
               "BTF_SIZE_NO_SUCH_STRUCT: this kernel (/sys/kernel/btf/vmlinux) has no struct or union"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_failure_is_one_probe_error_line(case, tmp_path):
    """No backend asked for (Sensor's and sdxfer run's default for C text):
    where clang's build fails too, BCC's error is the one raised."""
    text, message = BROKEN[case]
    with pytest.raises(ProbeError) as caught:
        Sensor(text, schema=SCHEMA)
    assert str(caught.value).startswith(message.replace("{where}", "<program text>")) and "\n" not in str(caught.value)
    # the same line from sdxfer run, exit status 1, nothing on stdout
    program = tmp_path / "broken.bpf.c"
    program.write_text(text)
    out = subprocess.run([SDXFER, "run", str(program), "--schema", str(SCHEMA)], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr.startswith(f"sdxfer run: {message.replace('{where}', str(program))}")
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("broken", ["mine.h", "probe.bpf.c"])
def test_a_compile_error_names_its_file_and_line(tmp_path, broken):
    """Inlined includes keep their file and line numbers in clang's messages,
    and the includer gets its own back after each (BCC's assembled text: no
    backend asked for, where clang's build fails too, BCC's error is raised)."""
    files = {"mine.h": "#define MINE 1\nstatic int mine = MINE;\n",
             "probe.bpf.c": '#include "xfer.h"\n#include "mine.h"\n\nint after = 2;\n'}
    files[broken] = files[broken].replace("= ", "= nope_", 1)  # an undeclared identifier on line 2, 4
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    line = {"mine.h": 2, "probe.bpf.c": 4}[broken]
    with pytest.raises(ProbeError) as caught:
        Sensor(tmp_path / "probe.bpf.c", schema=SCHEMA)
    assert str(caught.value).startswith(f"BCC could not compile the probe: {tmp_path / broken}:{line}:")
    assert "error: use of undeclared identifier 'nope_" in str(caught.value)


LEFT_OUT_PROBE = "#ifdef NOT_DEFINED\nTRACEPOINT_PROBE(syscalls, sys_enter_getsid)\n{\n    return 0;\n}\n#endif\n"


@pytest.mark.parametrize("broken", ["mine.h", "probe.bpf.c"])
@pytest.mark.parametrize("backend", ["bcc", "libbpf"])
def test_a_compile_error_after_tracepoint_probes_keeps_its_line(tmp_path, backend, broken):
    """BCC writes each TRACEPOINT_PROBE's args struct into the text before its
    function: the lines after it keep their numbers all the same, after a
    probe the preprocessor leaves out too, and in an include after them."""
    files = {"mine.h": LEFT_OUT_PROBE + "static int mine = 1;\n",
             "probe.bpf.c": '#include "xfer.h"\nTRACEPOINT_PROBE(syscalls, sys_enter_getpgid)\n{\n    return 0;\n}\n'
                            + LEFT_OUT_PROBE + '#include "mine.h"\n'
                            'TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {\n    return mine + 1;\n}\n'}
    files[broken] = files[broken].replace("= 1", "= nope_value").replace("mine + 1", "mine + nope_value")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    line = {"mine.h": 7, "probe.bpf.c": 14}[broken]
    with pytest.raises(ProbeError) as caught:
        Sensor(tmp_path / "probe.bpf.c", schema=SCHEMA, backend=backend)
    assert f"{tmp_path / broken}:{line}:" in str(caught.value), str(caught.value)
    assert "undeclared identifier 'nope_value'" in str(caught.value)


@pytest.mark.parametrize("transport, size", [("perf", {"perf_pages": 1}), ("ringbuf", {"ringbuf_pages": 1})],
                         ids=["perf", "ringbuf"])
@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_loss_is_counted_per_event_with_a_tiny_buffer(backend, transport, size):
    sent = {"write_call": 200, "getpgid_call": 300}
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one CPU: one perf buffer to fill
    try:
        with Sensor(PROBE, schema=SCHEMA, transport=transport, backend=backend, defines=defines(os.getpid()),
                    **size) as sensor:
            for _ in range(sent["write_call"]):
                write_bad_fd(b"w" * 3000)
            for i in range(sent["getpgid_call"]):
                getpgid(i)
            sensor.detach()
            events = list(sensor.decoded(sensor.drain()))
            stats = sensor.stats
            numbered = sensor.records_sequenced()
    finally:
        os.sched_setaffinity(0, affinity)
    for name, count in sent.items():
        counts = stats.per_event[name]
        assert counts.delivered == sum(e.name == name for e in events)
        assert counts.delivered + counts.lost == count, name
    assert stats.per_event["write_call"].lost > 0
    assert stats.lost == sum(c.lost for c in stats.per_event.values())
    assert stats.delivered + stats.lost == numbered == sum(sent.values())
    assert stats.sequence_gaps <= stats.lost


@pytest.mark.parametrize("transport, size", [("perf", {"perf_pages": 1}), ("ringbuf", {"ringbuf_pages": 1})],
                         ids=["perf", "ringbuf"])
@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_records_that_wrap_around_a_one_page_buffer_arrive_whole(backend, transport, size):
    """Records of many sizes through a one-page buffer, read as they come, so
    that many wrap around its end: each arrives whole and in order, and what
    did not fit is counted lost."""
    sent = [b"%05d" % i + bytes([65 + i % 26]) * (i * 37 % 1500) for i in range(600)]
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one CPU: one perf buffer
    try:
        with Sensor(PROBE, schema=SCHEMA, transport=transport, backend=backend, defines=defines(os.getpid()),
                    **size) as sensor:
            events = []
            for i, data in enumerate(sent):
                write_bad_fd(data)
                if i % 2:
                    events += sensor.decoded(sensor.read(0))
            sensor.detach()
            events += sensor.decoded(sensor.drain())
            stats = sensor.stats
            numbered = sensor.records_sequenced()
    finally:
        os.sched_setaffinity(0, affinity)
    writes = [e.data for e in events if e.name == "write_call"]
    left = iter(sent)
    assert all(any(data == candidate for candidate in left) for data in writes)  # in order, each whole
    assert len(writes) >= 100  # the buffer holds about three: it wrapped many times
    assert len(writes) + stats.per_event["write_call"].lost == len(sent) == numbered
    assert stats.undecodable == 0 and stats.sequence_gaps <= stats.lost


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_drain_takes_all_the_buffer_holds(backend, transport):
    """A read takes a batch (up to readers.BATCH_BYTES of a buffer); drain() takes everything."""
    sent = [b"%05d" % i + b"d" * 2000 for i in range(100)]  # about 3 batches' worth
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one CPU: one perf buffer
    try:
        with Sensor(PROBE, schema=SCHEMA, transport=transport, backend=backend, defines=defines(os.getpid())) as sensor:
            for data in sent:
                write_bad_fd(data)
            sensor.detach()
            first = sensor.read(0)
            assert 0 < len(first) < len(sent)
            events = list(sensor.decoded(first + sensor.drain()))
            stats = sensor.stats
    finally:
        os.sched_setaffinity(0, affinity)
    assert stats.lost == 0 and stats.delivered == len(sent)
    assert [e.data for e in events] == sent


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_close_from_another_thread_ends_its_reading(backend, transport):
    """close() while other threads are inside records() and events(): their
    loops end, without an error from buffers unmapped under them."""
    sensor = Sensor(PROBE, schema=SCHEMA, transport=transport, backend=backend, defines=defines(os.getpid()))
    errors, ended = [], []

    def read(loop):
        try:
            for _ in loop():
                pass
            ended.append(loop.__name__)
        except Exception as exc:  # what the test is for: none may escape
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(loop,)) for loop in (sensor.records, sensor.events)]
    for reader in readers:
        reader.start()
    for i in range(50):
        write_bad_fd(b"close-%d" % i)
    time.sleep(0.3)
    sensor.close()
    for reader in readers:
        reader.join(5)
    assert not errors and sorted(ended) == ["events", "records"]


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_nothing_is_lost_at_start_up(backend, transport):
    """Calls made from before the programs attach until after: the very first
    records the probe numbers on each CPU arrive (the reader opens first)."""
    script = ("import os, time\nwhile True:\n    for _ in range(20):\n        try:\n            os.getpgid(-1)\n"
              "        except OSError:\n            pass\n    time.sleep(0.001)\n")
    hammer = subprocess.Popen([sys.executable, "-c", script])
    try:
        with Sensor(PROBE, schema=SCHEMA, transport=transport, backend=backend, defines=defines(hammer.pid)) as sensor:
            events = collect(sensor, 500)
            sensor.detach()
            events += list(sensor.decoded(sensor.drain()))
            numbered = sensor.records_sequenced()
            stats = sensor.stats
    finally:
        hammer.kill()
        hammer.wait()
    assert stats.lost == 0 and stats.delivered == numbered == len(events) >= 500
    assert {min(e.seq for e in events if e.cpu == cpu) for cpu in {e.cpu for e in events}} == {0}
    assert stats.sequence_gaps == 0


NESTING_WRITER = """
import os, sys, time
sys.stdin.readline()
n = 0
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    for _ in range(100):
        try:
            os.write(%d, b"%%08d" %% n * 500)
        except OSError:
            pass
        n += 1
print(n, flush=True)
""" % BAD_FD


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_records_stay_intact_when_interrupt_programs_nest(backend, transport):
    """A process-context program packs 4000-byte records while raw tracepoints
    in timer and softirq context pack their own on the same CPUs."""
    writer = subprocess.Popen([sys.executable, "-c", NESTING_WRITER, "3"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        with Sensor(PROBE, schema=SCHEMA, transport=transport, backend=backend,
                    defines=defines(writer.pid, WATCH_INTERRUPTS=None)) as sensor:
            writer.stdin.write("go\n")
            writer.stdin.flush()
            events = []
            while writer.poll() is None:
                events += sensor.decoded(sensor.read(50))
            sent = int(writer.stdout.read())
            sensor.detach()
            events += sensor.decoded(sensor.drain())
            busy = [cpu["busy"] for cpu in sensor.cpu_state()]
            stats = sensor.stats
    finally:
        writer.kill()
        writer.wait()
    writes = [e for e in events if e.name == "write_call"]
    interrupts = [e for e in events if e.name == "interrupt"]
    numbers = set()
    for e in writes:
        number = e.data[:8]
        assert e.data == number * 500, "a write record was overwritten"
        numbers.add(int(number))
    assert len(numbers) == len(writes)  # each once
    assert len(writes) + stats.per_event["write_call"].lost == sent
    for e in interrupts:
        assert e.fill == bytes([e.kind]) * 512 and e.kind in (1, 2)
    assert any(e.busy_seen for e in interrupts), "no interrupt program ran while a record was being packed"
    assert busy == [0] * len(busy)
    assert stats.undecodable == 0 and stats.nesting_drops == 0


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
@pytest.mark.parametrize("by_tail_call", [True, False], ids=["tail-call", "record-only"])
def test_any_raw_tracepoint_probe_spans_fields_over_records(backend, transport, by_tail_call):
    """A probe of its own on a schema of its own: both fields of one event span
    continuation records through SDXFER_RAW_TRACEPOINT_PROBE; under BCC's
    RAW_TRACEPOINT_PROBE the record keeps max bytes and says exactly how many
    were left out, at once (nothing waits for parts that never come)."""
    schema = HERE / "schemas" / "spans.yaml"
    payload = b"".join(bytes([65 + i % 26]) * 99 + b"\0" for i in range(25))  # 2,500 bytes
    names = [chunk.decode() for chunk in payload.split(b"\0")[:-1]]
    options = defines(os.getpid(), **({"SPAN_BY_TAIL_CALL": None} if by_tail_call else {}))
    with Sensor(HERE / "probes" / "spans.bpf.c", schema=schema, transport=transport, backend=backend,
                defines=options) as sensor:
        write_bad_fd(payload)
        events = collect(sensor, 1, "big")
        assert sensor.reassembler.pending == 0
    assert len(events) == 1
    event = events[0]
    assert event.n == len(payload)
    if by_tail_call:
        assert event.argv == names
        assert event.data == payload[:1000]
        assert event.lost == {"data": len(payload) - 1000}
    else:
        assert event.lost == {"argv": len(payload) - 64, "data": len(payload) - 32}
        assert event.data == payload[:32]
        assert names[0].startswith(event.argv[0])
    assert sensor.stats.continuations_lost == 0


# The exe_path keeper's tests: probes of a child shell's exit.
SH_PATH = os.path.realpath(shutil.which("sh"))
EXIT_SCHEMA = """\
version: 1
slot_size: 8192
common:
  - {name: pid, type: u32, source: pid}
  - {name: exe_path, type: str, max: 4096, source: exe_path}
events:
  - name: exited
    id: 1
    fields:
      - {name: task_pid, type: u32}
  - name: freed
    id: 2
    fields:
      - {name: task_pid, type: u32}
  - name: notified
    id: 3
    fields:
      - {name: sig, type: u32}
"""
FREED_PROBE = """\
#include "xfer.h"

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    if (args->pid == TARGET_PID)
        exited_print(args, args->pid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_free)
{
    if (args->pid == TARGET_PID)
        freed_print(args, args->pid);
    return 0;
}
"""


@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_a_probe_may_have_the_exe_path_keepers_tracepoint_and_sched_process_free(backend, tmp_path):
    """A schema with exe_path brings the runtime's program on the raw
    tracepoint sched_process_exit, under a name of its own: a probe's own
    programs there and at sched_process_free load and run beside it, are
    the programs counted, and the exit's event has the path the keeper
    forgets there. (That the keeper runs after the probe's programs is
    test_identity_live's long path test: where the mm is still there, an
    exit event after the keeper would walk again and show the path too.)"""
    schema = tmp_path / "exit.yaml"
    schema.write_text(EXIT_SCHEMA)
    child = subprocess.Popen(["sh", "-c", "read line"], stdin=subprocess.PIPE)
    with Sensor(FREED_PROBE, schema=schema, backend=backend, defines={"TARGET_PID": child.pid}, quiet=True) as sensor:
        assert sensor.programs_attached == 2
        assert set(sensor._probe.program_fds()) >= {"tracepoint__sched__sched_process_exit",
                                                    "tracepoint__sched__sched_process_free", record.EXE_FORGET_PROGRAM}
        child.communicate(b"\n")
        seen = {}
        deadline = time.monotonic() + LIVE_WAIT_S
        while len(seen) < 2 and time.monotonic() < deadline:
            seen.update((e.name, e) for e in sensor.decoded(sensor.read(100)) if e.task_pid == child.pid)
            run_rcu_callbacks()  # the free, at once where the kernel lets the test
    assert set(seen) == {"exited", "freed"}, f"the probe's own programs did not both run: {sorted(seen)}"
    assert seen["exited"].exe_path == SH_PATH


NOTIFIED_PROBE = """\
#include "xfer.h"

TRACEPOINT_PROBE(signal, signal_generate)
{
    if (args->sig == SIGCHLD_NR && bpf_get_current_pid_tgid() >> 32 == TARGET_PID)
        notified_print(args, args->sig);
    return 0;
}
"""


@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_an_event_after_the_keeper_late_in_exit_has_the_path_or_says_unknown(backend, tmp_path):
    """The SIGCHLD a process's exit sends its parent is generated by the
    exiting task after its mm is gone and after the keeper forgot its path:
    the event takes the copy the keeper left on its CPU, or (another CPU,
    another path since) says the path unknown; never absent, as for a
    kernel thread."""
    schema = tmp_path / "exit.yaml"
    schema.write_text(EXIT_SCHEMA)
    child = subprocess.Popen(["sh", "-c", "read line"], stdin=subprocess.PIPE)
    defines = {"TARGET_PID": child.pid, "SIGCHLD_NR": int(signal.SIGCHLD)}
    with Sensor(NOTIFIED_PROBE, schema=schema, backend=backend, defines=defines, quiet=True) as sensor:
        child.communicate(b"\n")
        notified = []
        deadline = time.monotonic() + LIVE_WAIT_S
        while not notified and time.monotonic() < deadline:
            notified = [e for e in sensor.decoded(sensor.read(100)) if e.pid == child.pid]
    assert notified, "no SIGCHLD from the child's exit"
    event = notified[0]
    assert event.exe_path == SH_PATH or \
        (event.exe_path is None and "exe_path" in event.truncated), (event.exe_path, event.truncated)


FORK_SCHEMA = """\
version: 1
slot_size: 8192
common:
  - {name: pid, type: u32, source: pid}
events:
  - name: forked
    id: 1
    fields:
      - {name: child, type: u32}
"""
FORK_PROBE = """\
#include "xfer.h"

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    forked_print(ctx, sdxfer_kernel_u32((const char *)ctx->args[1] + SDXFER_MEMBER(task_struct, tgid)));
    return 0;
}
"""


@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_a_probe_of_its_own_at_sched_process_fork_loads_with_the_children_filter(backend, tmp_path):
    """The --children filter's fork and free programs have names of their
    own: a probe's RAW_TRACEPOINT_PROBE(sched_process_fork) loads beside
    them (it was a redefinition of the filter's program), both run, and the
    filter still follows: the fork inside a forked shell is the shell's
    event, which passes only if the shell was followed at its own fork."""
    schema = tmp_path / "fork.yaml"
    schema.write_text(FORK_SCHEMA)
    with Sensor(FORK_PROBE, schema=schema, backend=backend, event_filter=EventFilter(pid=os.getpid(), children=True), quiet=True) as sensor:
        assert sensor.programs_attached == 3  # the probe's, and the filter's fork and free programs
        shell = subprocess.Popen(["sh", "-c", "sh -c 'echo $$'; :"], stdout=subprocess.PIPE, text=True)
        inner = int(shell.communicate(timeout=LIVE_WAIT_S)[0])
        forks = []
        deadline = time.monotonic() + LIVE_WAIT_S
        while not any(e.child == inner for e in forks) and time.monotonic() < deadline:
            forks += [e for e in sensor.decoded(sensor.read(100)) if e.name == "forked"]
    assert (os.getpid(), shell.pid) in {(e.pid, e.child) for e in forks}
    assert (shell.pid, inner) in {(e.pid, e.child) for e in forks}, "the shell was not followed from its fork"
