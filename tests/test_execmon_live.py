"""Live tests: load the probe into the running kernel, run execs whose pid,
ppid, uid and argv are known, and check what arrives, on both transports.

Needs root (CI runs as root); skipped otherwise. The probe is the prebuilt
object through libbpf and the BCC build, on both transports.
"""

import ctypes
import json
import os
import re
import struct
import subprocess
import sys
import time

import pytest

from conftest import BACKENDS_AND_TRANSPORTS, EACH_BACKEND_AND_TRANSPORT, LIVE_WAIT_S, Tool, backend_options, wait_until
from hids_support import Identity, wait_for
from sdxfer.kernel.probes import ExecProbe, ProbeError

pytestmark = pytest.mark.live

TRUE = "/bin/true"
ARGV_MAX = 16384  # schema max of exec.argv
EXE_MAX = 4096  # schema max of exec.exe
ANCESTORS_MAX = 16  # schema max of exec.ancestors
FAILED_ARGS_MAX = 1024  # arguments the probe gathers for a failed exec
ENV_SCAN_MAX = 2048  # environment entries of a new image the probe examines
CALLER_ENV_SCAN_MAX = 1024  # environment entries of a failed exec the probe examines
BEYOND_ENV_SCAN = 20000  # environment entries, more than the probe examines


@pytest.fixture(scope="module", params=BACKENDS_AND_TRANSPORTS, ids="-".join)
def probe(request):
    backend, transport = request.param
    with ExecProbe(transport=transport, backend=backend) as opened:
        yield opened


def run_exec(probe, argv, **popen_args):
    """Runs argv to completion and returns its successful exec event."""
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **popen_args)
    child.wait()
    return wait_for(probe, lambda e: e.pid == child.pid and e.ret == 0)


def run_failed_execs(probe, attempts, marker):
    """Runs, in one child pinned to one CPU, os.execve(path, argv, env) for each
    (path, argv, env) in attempts (all must fail), and returns the failed exec
    event whose argv[0] is marker."""
    code = (
        "import ast, os, sys\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "for path, argv, env in ast.literal_eval(sys.stdin.read()):\n"
        "    try:\n"
        "        os.execve(path, argv, env)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    child.communicate(repr(attempts))  # through stdin: one argument may hold only 128 KiB
    return wait_for(probe, lambda e: e.pid == child.pid and e.ret != 0 and e.argv and e.argv[0] == marker)


def test_identity_and_exe(probe):
    event = run_exec(probe, [TRUE, "x"])
    assert event.name == "exec"
    assert event.tid == event.pid
    assert event.ppid == os.getpid()
    assert (event.uid, event.gid) == (os.getuid(), os.getgid())
    assert event.comm == "true"
    assert event.exe == TRUE
    assert event.argv == [TRUE, "x"]
    assert event.truncated == ()


def test_spaces_and_empty_arguments(probe):
    argv = [TRUE, "a b", "", "  ", "tab\there", "new\nline", ""]
    assert run_exec(probe, argv).argv == argv


def test_unicode_and_non_utf8_bytes(probe):
    argv = [TRUE.encode(), "héllo → ✓".encode(), b"\xff\xfe\x80", b"mixed\xc3(\xa0"]
    event = run_exec(probe, argv)
    assert [a.encode("utf-8", "surrogateescape") for a in event.argv] == argv


def test_thousand_arguments(probe):
    argv = [TRUE] + [f"arg{i}" for i in range(1000)]
    assert run_exec(probe, argv).argv == argv


def test_four_kib_argument(probe):
    argv = [TRUE, "k" * 4096, "tail"]
    assert run_exec(probe, argv).argv == argv


def test_twelve_kib_in_total(probe):
    argv = [TRUE] + [chr(ord("a") + i) * 4100 for i in range(3)] + ["end"]
    assert sum(len(a) + 1 for a in argv) > 12 * 1024
    event = run_exec(probe, argv)
    assert event.argv == argv
    assert event.truncated == ()


def distinct_arguments(total: int, size: int = 1000) -> list[str]:
    """[TRUE] and numbered arguments of `size` bytes, argv `total` bytes in all:
    no two alike, so a chunk spliced in the wrong place cannot pass."""
    argv = [TRUE]
    used = len(TRUE) + 1
    while used < total:
        n = min(size, total - used) - 1
        arg = (f"{len(argv):07d}" + "abcdefghij" * (n // 10 + 1))[:max(n, 1)]
        argv.append(arg)
        used += len(arg) + 1
    return argv


def argv_bytes(argv) -> int:
    return sum(len(a) + 1 for a in argv)


def default_stack_limit():
    """In the child before exec: the default 8 MiB stack limit, which puts the
    kernel's argv limit at 2 MiB (a quarter of it), whatever the suite runs under."""
    import resource

    resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))


@pytest.mark.parametrize("total", [20 << 10, 200 << 10, 1 << 20], ids=["20KiB", "200KiB", "1MiB"])
def test_argv_beyond_one_record_arrives_whole(probe, total):
    argv = distinct_arguments(total)
    assert argv_bytes(argv) == total
    event = run_exec(probe, argv)
    assert event.argv == argv
    assert event.truncated == () and event.lost == {}


def test_a_single_128_kib_argument(probe):
    argv = [TRUE, "m" * (128 * 1024 - 1), "after"]  # the kernel's largest argument, its NUL included
    event = run_exec(probe, argv)
    assert event.argv == argv
    assert event.truncated == ()


def largest_accepted_argv(probe) -> list[str]:
    """The longest argv of 100 KiB arguments and a last shorter one that execs
    with an empty environment under the default stack limit (the probe's
    records of the tries are read and dropped as they come)."""
    low, high = 1 << 20, 3 << 20
    while high - low > 64:
        mid = (low + high) // 2
        try:
            subprocess.run(distinct_arguments(mid, 100 << 10), env={}, preexec_fn=default_stack_limit, check=True)
            low = mid
        except OSError:
            high = mid
        list(probe.decoded(probe.drain()))
    return distinct_arguments(low, 100 << 10)


def test_the_largest_argv_the_kernel_accepts(probe):
    argv = largest_accepted_argv(probe)
    assert argv_bytes(argv) > 2_000_000
    child = subprocess.Popen(argv, env={}, preexec_fn=default_stack_limit)
    child.wait()
    event = wait_for(probe, lambda e: e.pid == child.pid and e.ret == 0)
    assert event.argv == argv
    assert event.truncated == ()
    assert probe.stats.continuations_lost == 0


def test_an_ordinary_exec_sends_one_record(probe):
    from sdxfer import record

    child = subprocess.Popen([TRUE, "one", "record"])
    child.wait()
    raw, deadline = [], time.monotonic() + LIVE_WAIT_S
    while time.monotonic() < deadline and not any(
            record.parse_header(r.data)["id"] == record.CONTINUATION_ID or
            probe.decoder.decode(r.data).pid == child.pid for r in raw if r.data):
        raw += probe.read(100)
    time.sleep(0.3)
    raw += probe.drain()
    heads = [(record.parse_header(r.data), r.data) for r in raw if r.data]
    mine = [h for h, data in heads if h["id"] != record.CONTINUATION_ID and probe.decoder.decode(data).pid == child.pid]
    assert len(mine) == 1
    continued = {struct.unpack_from(record.CONTINUATION_FORMAT, data)[8] for h, data in heads
                 if h["id"] == record.CONTINUATION_ID and h["cpu"] == mine[0]["cpu"]}
    assert mine[0]["seq"] not in continued


def test_without_the_tail_call_the_rest_is_counted_lost_at_once(probe):
    """The program array emptied (as when a program is loaded without Sensor):
    the record keeps max bytes and its last continuation says how many are missing."""
    if probe.backend != "bcc":
        pytest.skip("empties BCC's program array (the libbpf loader fills the same map the same way)")
    from bcc import BPF

    from sdxfer import record

    programs = probe._bpf[record.REST_PROGRAMS_MAP.encode()]
    rest_program = ctypes.c_int(probe._bpf.load_func(record.REST_PROGRAM.encode(), BPF.RAW_TRACEPOINT).fd)
    del programs[ctypes.c_int(0)]
    try:
        argv = distinct_arguments(100 << 10)
        event = run_exec(probe, argv)
    finally:
        programs[ctypes.c_int(0)] = rest_program
    assert event.truncated == ("argv",)
    assert event.lost == {"argv": argv_bytes(argv) - ARGV_MAX}
    kept = event.argv
    assert kept[:-1] == argv[:len(kept) - 1] and argv[len(kept) - 1].startswith(kept[-1])


def test_failed_exec_beyond_the_limit(probe):
    event = run_failed_execs(probe, [("/nonexistent/sdxfer-big", ["ghost"] + ["w" * 3000] * 8, {})], "ghost")
    assert event.truncated == ("argv",)
    assert event.lost == {"argv": None}  # gathered string by string: the amount is unknown
    assert event.argv[:6] == ["ghost"] + ["w" * 3000] * 5
    assert "w" * 3000 != event.argv[-1] and set(event.argv[-1]) <= {"w"}


def test_failed_exec_over_the_argument_count_limit_sends_no_stale_bytes(probe):
    """More arguments than the probe gathers: what was gathered, flagged, and
    nothing left in the scratch slot by an earlier, larger exec."""
    big = ("/nonexistent/sdxfer-big", ["g1", "s" * 15000], {})
    many = ("/nonexistent/sdxfer-many", ["g2"] + ["a"] * 1100, {})
    event = run_failed_execs(probe, [big, many], "g2")
    assert event.argv == ["g2"] + ["a"] * (FAILED_ARGS_MAX - 1)
    assert event.truncated == ("argv",)
    assert event.lost == {"argv": None}


def test_failed_exec_with_exactly_the_argument_count_limit(probe):
    argv = ["g3"] + [f"b{i}" for i in range(FAILED_ARGS_MAX - 1)]
    event = run_failed_execs(probe, [("/nonexistent/sdxfer-exact", argv, {})], "g3")
    assert event.argv == argv
    assert event.truncated == ()


def test_failed_exec_filling_the_blob_exactly_with_more_arguments_flags_it(probe):
    first = ["g4", "f" * (ARGV_MAX - 4)]  # "g4\0" + 16380 + "\0" fill the blob to the byte
    event = run_failed_execs(probe, [("/nonexistent/sdxfer-full", first + ["next"], {})], "g4")
    assert event.argv == first
    assert event.truncated == ("argv",)


def test_failed_exec_path_too_long_is_flagged(probe):
    path = "/nonexistent/" + "p" * 5000
    event = run_failed_execs(probe, [(path, ["g5"], {})], "g5")
    assert event.ret == -36  # ENAMETOOLONG
    assert event.exe == path[:EXE_MAX]
    assert "exe" in event.truncated


def test_environment_value_behind_hundreds_of_entries(probe):
    env = {f"F{i}": "v" for i in range(300)}
    env["LD_PRELOAD"] = "/nonexistent/evil.so"
    env["SSH_CONNECTION"] = "1.1.1.1 1 2.2.2.2 22"
    event = run_exec(probe, [TRUE], env=env, stderr=subprocess.DEVNULL)
    assert event.ld_preload == "/nonexistent/evil.so"
    assert event.ssh_connection == "1.1.1.1 1 2.2.2.2 22"
    failed = run_failed_execs(probe, [("/nonexistent/sdxfer-env", ["g6"], env)], "g6")
    assert failed.ld_preload == "/nonexistent/evil.so"
    assert failed.ssh_connection == "1.1.1.1 1 2.2.2.2 22"


def test_environment_values_across_many_kilobytes(probe):
    """Entries far into a 40 KiB environment, and near misses that must not match."""
    env = {f"A{i}": "a" * 100 for i in range(100)}
    env["SSH_CONNECTIONS"] = "near miss"
    env["LD_PRELOAD"] = "/nonexistent/middle.so"
    env.update({f"B{i}": "b" * 100 for i in range(300)})
    env["LD_PRELOADED"] = "near miss"
    env["SSH_CONNECTION"] = "3.3.3.3 3 4.4.4.4 22"
    event = run_exec(probe, [TRUE], env=env, stderr=subprocess.DEVNULL)
    assert (event.ld_preload, event.ssh_connection) == ("/nonexistent/middle.so", "3.3.3.3 3 4.4.4.4 22")
    assert event.truncated == ()
    failed = run_failed_execs(probe, [("/nonexistent/sdxfer-env", ["g8"], env)], "g8")
    assert (failed.ld_preload, failed.ssh_connection) == ("/nonexistent/middle.so", "3.3.3.3 3 4.4.4.4 22")
    assert failed.truncated == ()


@pytest.mark.parametrize("entries", [ENV_SCAN_MAX, ENV_SCAN_MAX + 1])
def test_environment_at_the_scan_limit(probe, entries):
    env = {f"F{i}": "v" for i in range(entries - 1)}
    env["LD_PRELOAD"] = "/nonexistent/last.so"
    event = run_exec(probe, [TRUE], env=env, stderr=subprocess.DEVNULL)
    if entries <= ENV_SCAN_MAX:
        assert event.ld_preload == "/nonexistent/last.so"
        assert event.truncated == ()
    else:
        assert event.ld_preload is None
        assert set(event.truncated) == {"ld_preload", "ssh_connection"}


@pytest.mark.parametrize("entries", [CALLER_ENV_SCAN_MAX, CALLER_ENV_SCAN_MAX + 1])
def test_failed_exec_environment_at_the_scan_limit(probe, entries):
    env = {f"F{i}": "v" for i in range(entries - 1)}
    env["LD_PRELOAD"] = "/nonexistent/last.so"
    failed = run_failed_execs(probe, [("/nonexistent/sdxfer-env", ["g9"], env)], "g9")
    if entries <= CALLER_ENV_SCAN_MAX:
        assert failed.ld_preload == "/nonexistent/last.so"
        assert failed.truncated == ()
    else:
        assert failed.ld_preload is None
        assert set(failed.truncated) == {"ld_preload", "ssh_connection"}


def test_environment_beyond_the_scan_says_unknown_not_absent(probe):
    env = {f"F{i}": "v" for i in range(BEYOND_ENV_SCAN)}
    env["LD_PRELOAD"] = "/nonexistent/evil.so"
    event = run_exec(probe, [TRUE], env=env, stderr=subprocess.DEVNULL)
    failed = run_failed_execs(probe, [("/nonexistent/sdxfer-env", ["g7"], env)], "g7")
    for exec_event in (event, failed):
        assert exec_event.ld_preload is None and exec_event.ssh_connection is None
        assert set(exec_event.truncated) == {"ld_preload", "ssh_connection"}
        assert exec_event.lost == {"ld_preload": None, "ssh_connection": None}


def test_environment_value_found_before_the_scan_ends_is_kept(probe):
    env = {"LD_PRELOAD": "/nonexistent/first.so", **{f"F{i}": "v" for i in range(BEYOND_ENV_SCAN)}}
    event = run_exec(probe, [TRUE], env=env, stderr=subprocess.DEVNULL)
    assert event.ld_preload == "/nonexistent/first.so"
    assert event.truncated == ("ssh_connection",)


def test_argv0_differs_from_path(probe):
    event = run_exec(probe, ["not-true", "--flag"], executable=TRUE)
    assert event.argv == ["not-true", "--flag"]
    assert event.exe == TRUE


def test_fexecve(probe):
    code = "import os; fd = os.open('/bin/true', os.O_RDONLY); os.execve(fd, ['by-fd', 'q'], {})"
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()
    event = wait_for(probe, lambda e: e.pid == child.pid and e.argv and e.argv[0] == "by-fd")
    assert event.argv == ["by-fd", "q"]
    assert event.ret == 0
    assert event.tid == child.pid
    assert event.exe.startswith("/dev/fd/")


def test_exec_from_a_non_main_thread(probe):
    code = (
        "import os, sys, threading\n"
        "def go():\n"
        "    print(threading.get_native_id(), flush=True)\n"
        "    os.execv('/bin/true', ['from-thread'])\n"
        "t = threading.Thread(target=go); t.start(); t.join()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    thread_id = int(child.stdout.readline())
    child.wait()
    event = wait_for(probe, lambda e: e.pid == child.pid and e.argv == ["from-thread"])
    assert thread_id != child.pid
    assert event.tid == thread_id
    assert event.ppid == os.getpid()


def test_failed_exec_enoent(probe):
    event = run_failed_execs(probe, [("/nonexistent/sdxfer-test", ["ghost", "a b"], {})], "ghost")
    assert event.ret == -2
    assert event.exe == "/nonexistent/sdxfer-test"
    assert event.argv == ["ghost", "a b"]
    assert event.tid == event.pid
    assert event.ppid == os.getpid()


def test_failed_execveat(probe, tmp_path):
    """fexecve of a file that is not executable: execveat's arguments sit in other registers."""
    data = tmp_path / "not-a-program"
    data.write_text("data\n")
    data.chmod(0o644)
    code = (
        "import os\n"
        f"fd = os.open({str(data)!r}, os.O_RDONLY)\n"
        "try:\n"
        "    os.execve(fd, ['by-fd', 'denied'], {'LD_PRELOAD': '/x.so'})\n"
        "except PermissionError:\n"
        "    pass\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()
    event = wait_for(probe, lambda e: e.pid == child.pid and e.ret != 0)
    assert event.ret == -13
    assert event.argv == ["by-fd", "denied"]
    assert event.exe == ""  # AT_EMPTY_PATH: the path is the descriptor
    assert event.ld_preload == "/x.so"


def test_uid_65534(probe):
    event = run_exec(probe, [TRUE, "nobody"], user=65534, group=65534, extra_groups=[])
    assert (event.uid, event.gid) == (65534, 65534)


def test_environment_values(probe):
    env = {"PATH": "/usr/bin", "SSH_CONNECTION": "10.0.0.1 5555 10.0.0.2 22", "LD_PRELOAD": ""}
    event = run_exec(probe, [TRUE], env=env)
    assert event.ssh_connection == "10.0.0.1 5555 10.0.0.2 22"
    assert event.ld_preload == ""
    absent = run_exec(probe, [TRUE], env={"PATH": "/usr/bin"})
    assert absent.ssh_connection is None and absent.ld_preload is None


def test_environment_value_among_many(probe):
    env = {f"FILLER_{i}": "v" * 50 for i in range(150)}
    env["SSH_CONNECTION"] = "late 1 2 3"
    assert run_exec(probe, [TRUE], env=env).ssh_connection == "late 1 2 3"


def test_no_loss_in_quiet_operation(probe):
    for _ in range(20):
        run_exec(probe, [TRUE])
    assert probe.stats.lost == 0
    assert probe.stats.undecodable == 0


@pytest.mark.parametrize("transport, buffer_size", [("perf", {"perf_pages": 1}), ("ringbuf", {"ringbuf_pages": 1})],
                         ids=["perf", "ringbuf"])
@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_loss_from_a_full_buffer_is_counted_once(backend, transport, buffer_size):
    """A one-page buffer nobody reads overflows: every record the probe numbered
    is delivered or counted lost, once, and sequence gaps never exceed that loss."""
    one_cpu = {min(os.sched_getaffinity(0))}  # so that a per-CPU perf buffer overflows too
    with ExecProbe(transport=transport, backend=backend, **buffer_size) as small:
        for _ in range(100):
            subprocess.run([TRUE, "x" * 1000], preexec_fn=lambda: os.sched_setaffinity(0, one_cpu))
        numbered_before = small.records_sequenced()
        small.detach()  # others' execs numbered or lost later (close counts loss again) would upset the sums
        delivered = list(small.decoded(small.drain()))
        numbered_after = small.records_sequenced()
        stats, cpus = small.stats, small.cpu_state()
    assert stats.lost > 0
    assert stats.delivered == len(delivered) > 0
    # a record refused a scratch slot is counted lost without a number
    accounted = stats.delivered + stats.lost + stats.undecodable
    assert numbered_before <= accounted <= numbered_after + stats.nesting_drops, (stats.to_dict(), cpus)
    assert stats.sequence_gaps <= stats.lost


def test_a_closed_probe_refuses_a_look_at_its_maps():
    """libbpf's object is gone once closed: a ProbeError, not a crash in libbpf."""
    with ExecProbe(backend="libbpf") as closed:
        pass
    with pytest.raises(ProbeError, match="is closed"):
        closed.cpu_state()


def _bpf_programs_held():
    held = set()
    for info in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{info}") as text:
                held.update(line for line in text if line.startswith("prog_id:"))
        except OSError:
            continue
    return held


@pytest.mark.parametrize("backend", ["libbpf", "bcc"])
def test_a_transport_that_cannot_open_detaches_the_probe(backend):
    before = _bpf_programs_held()
    with pytest.raises(ProbeError, match="perf buffer"):
        ExecProbe(transport="perf", perf_pages=3, backend=backend)  # both want a power of two
    assert _bpf_programs_held() == before


def start_execmon(*options) -> Tool:
    return Tool(sys.executable, "-m", "sdxfer.tools.execmon", *options)


@pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)
def test_execmon_cli_text_with_filters(backend, transport):
    """Text output of a real exec, with -n and -l keeping only the matching one."""
    marker = f"sdxfer-text-{os.getpid()}"
    execmon = start_execmon("-n", "^true$", "-l", f"{marker} b$", *backend_options(backend, transport))

    def execs():
        subprocess.run([TRUE, marker, "b"])
        subprocess.run([TRUE, marker, "other"])  # name matches, argument line does not
        subprocess.run(["/bin/echo", marker, "b"], stdout=subprocess.DEVNULL)  # line matches, name does not

    try:
        execmon.wait_out(lambda line: marker in line, act=execs, every=0.3)
    finally:
        err = execmon.stop()
    lines = execmon.out
    assert lines[:2] == ["Watching execve events... Ctrl+C to stop\n", "PID      EXEC                 ARGS\n"]
    shown = lines[2:]
    assert shown, "execmon never printed the matching exec"
    for line in shown:
        assert re.fullmatch(rf"\d+ +true {{16}} {TRUE} {marker} b\n", line)
    assert execmon.returncode == 0
    assert "Traceback" not in err


@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_execmon_cli_failed_exec_with_x(backend, transport):
    """The console entry point end to end: -x shows a failed exec, SIGTERM stops it cleanly."""
    execmon = start_execmon("-x", "--json", *backend_options(backend, transport))
    target = f"/nonexistent/sdxfer-cli-{backend}-{transport}"
    attempt = f"import os\ntry:\n    os.execv({target!r}, ['x'])\nexcept OSError:\n    pass\n"
    try:
        execmon.wait_out(lambda line: f'"exe": "{target}"' in line,
                         act=lambda: subprocess.run([sys.executable, "-c", attempt]), every=0.3)
    finally:
        err = execmon.stop()
    failed = [event for event in map(json.loads, execmon.out) if event["exe"] == target]
    assert failed, "execmon never printed the failed exec"
    assert failed[0]["ret"] == -2
    assert failed[0]["exe"] == target
    assert failed[0]["argv"] == ["x"]
    assert execmon.returncode == 0
    assert "Traceback" not in err
    assert "events received" in err


@pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)
def test_execmon_cli_json_carries_a_mib_argv_whole_and_text_honours_max_args(backend, transport):
    """(The probe's own delivery of a MiB argv is held on every backend and transport above.)"""
    argv = distinct_arguments(1 << 20)
    marker = argv[1]
    execmon = start_execmon("--json", *backend_options(backend, transport), "-n", "^true$")
    texts = start_execmon("--max-args", "3", *backend_options(backend, transport), "-n", "^true$")
    try:
        for tool in (execmon, texts):  # an exec while programs are still attaching may come in part (and flagged)
            tool.wait_err(lambda line: "Ctrl+C to stop" in line)
        wait_until(lambda: any(marker in line for line in execmon.out) and any(marker in line for line in texts.out),
                   act=lambda: subprocess.run(argv), every=0.5)
    finally:
        err, text_err = execmon.stop(), texts.stop()
    events = [event for event in map(json.loads, execmon.out) if event["argv"] and event["argv"][1:2] == [marker]]
    assert events, "execmon --json never printed the exec"
    assert events[0]["argv"] == argv
    assert events[0]["argv_truncated"] is False and events[0]["truncated"] == []
    shown = [line for line in texts.out if marker in line]
    assert shown, "execmon never printed the exec"
    assert shown[0].rstrip("\n").endswith(f"{TRUE} {argv[1]} {argv[2]} ...")
    assert "Traceback" not in err + text_err


def _chain_from_proc(pid: int) -> list[tuple[int, set[str]]]:
    """A process's parent chain as /proc tells it, nearest parent first, up to
    init: each parent's pid and the names of its threads (the parent of record
    is the thread that forked, which may have a name of its own)."""
    chain = []
    while True:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
        pid = int(status["PPid"])
        if pid == 0:
            return chain
        tasks = os.listdir(f"/proc/{pid}/task")
        chain.append((pid, {open(f"/proc/{pid}/task/{t}/comm").read().rstrip("\n") for t in tasks}))


def test_common_fields_and_ancestors(probe):
    child = subprocess.Popen(["/bin/sleep", "2"])
    try:
        event = wait_for(probe, lambda e: e.pid == child.pid and e.ret == 0)
        Identity(child.pid).check(event)  # pid, tid, ppid, uid, gid, comm, cgroup_id, mntns, sid
        assert (event.pgid, event.euid) == (os.getpgid(child.pid), os.geteuid())
        expected = _chain_from_proc(child.pid)
    finally:
        child.kill()
        child.wait()
    assert event.ancestors[0] == (os.getpid(), open("/proc/self/comm").read().rstrip("\n"))
    assert [a.pid for a in event.ancestors] == [pid for pid, _ in expected[:ANCESTORS_MAX]]
    assert all(a.comm in names for a, (_, names) in zip(event.ancestors, expected))
    assert ("ancestors" in event.truncated) == (len(expected) > ANCESTORS_MAX)
    assert event.to_dict()["ancestors"][0] == {"pid": os.getpid(), "comm": event.ancestors[0].comm}


DEEP = """
import os, subprocess, sys
depth = int(sys.argv[1])
if depth:
    subprocess.run([sys.executable, "-c", os.environ["DEEP"], str(depth - 1)])
else:
    os.execv("/bin/true", ["/bin/true", "deepest"])
"""


def test_ancestors_beyond_the_limit_are_flagged(probe):
    chain = subprocess.Popen([sys.executable, "-c", DEEP, str(ANCESTORS_MAX + 2)], env={**os.environ, "DEEP": DEEP})
    chain.wait()
    event = wait_for(probe, lambda e: e.argv == ["/bin/true", "deepest"] and e.ret == 0)
    assert len(event.ancestors) == ANCESTORS_MAX and "ancestors" in event.truncated
    assert all(a.comm == "python" for a in event.ancestors)  # the nearest ANCESTORS_MAX are the chain's own
    assert event.lost["ancestors"] is None
