"""Live tests: load the probe into the running kernel, run execs whose pid,
ppid, uid and argv are known, and check what arrives, on both transports.

Needs root and bcc (CI runs as root); skipped otherwise.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

if os.geteuid() != 0:
    pytest.skip("live probe tests need root", allow_module_level=True)
pytest.importorskip("bcc")

from sdxfer.loader import ExecProbe  # noqa: E402

TRUE = "/bin/true"
ARGV_MAX = 16384  # schema max of exec.argv
WAIT_S = 10


@pytest.fixture(scope="module", params=["perf", "ringbuf"])
def probe(request):
    with ExecProbe(transport=request.param) as opened:
        yield opened


def wait_for(probe, predicate):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for event in probe.decoded(probe.read(100)):
            if predicate(event):
                return event
    raise AssertionError("the expected exec event never arrived")


def run_exec(probe, argv, **popen_args):
    """Runs argv to completion and returns its successful exec event."""
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **popen_args)
    child.wait()
    return wait_for(probe, lambda e: e.pid == child.pid and e.ret == 0)


def as_bytes(arg):
    return arg if isinstance(arg, bytes) else arg.encode()


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


def test_beyond_the_limit_keeps_a_prefix_and_flags_it(probe):
    argv = [TRUE] + [f"{i:05d}" + "z" * 1000 for i in range(20)]
    total = sum(len(a) + 1 for a in argv)
    event = run_exec(probe, argv)
    assert "argv" in event.truncated
    assert event.lost["argv"] == total - ARGV_MAX
    kept = event.argv
    assert kept[:-1] == argv[: len(kept) - 1]
    assert argv[len(kept) - 1].startswith(kept[-1])
    assert sum(len(a) + 1 for a in kept) - 1 <= ARGV_MAX


def test_far_beyond_the_limit_counts_the_loss_exactly(probe):
    argv = [TRUE] + ["y" * 4000] * 30  # 120 KiB
    event = run_exec(probe, argv)
    assert event.lost["argv"] == sum(len(a) + 1 for a in argv) - ARGV_MAX
    assert event.argv[:4] == argv[:4]


def test_failed_exec_beyond_the_limit(probe):
    code = (
        "import os\n"
        "try:\n"
        "    os.execv('/nonexistent/sdxfer-big', ['ghost'] + ['w' * 3000] * 8)\n"
        "except FileNotFoundError:\n"
        "    pass\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()
    event = wait_for(probe, lambda e: e.pid == child.pid and e.ret != 0)
    assert event.truncated == ("argv",)
    assert event.lost == {"argv": None}  # gathered string by string: the amount is unknown
    assert event.argv[:6] == ["ghost"] + ["w" * 3000] * 5
    assert "w" * 3000 != event.argv[-1] and set(event.argv[-1]) <= {"w"}


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
    code = (
        "import os\n"
        "try:\n"
        "    os.execv('/nonexistent/sdxfer-test', ['ghost', 'a b'])\n"
        "except FileNotFoundError:\n"
        "    pass\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()
    event = wait_for(probe, lambda e: e.pid == child.pid and e.ret != 0)
    assert event.ret == -2
    assert event.exe == "/nonexistent/sdxfer-test"
    assert event.argv == ["ghost", "a b"]
    assert event.tid == child.pid
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


@pytest.mark.parametrize("transport", ["perf", "ringbuf"])
def test_execmon_cli_failed_exec_with_x(transport):
    """The console entry point end to end: -x shows a failed exec, SIGTERM stops it cleanly."""
    execmon = subprocess.Popen(
        [sys.executable, "-m", "sdxfer.execmon", "-x", "--json", "--transport", transport],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(execmon.stdout), daemon=True)
    reader.start()
    target = f"/nonexistent/sdxfer-cli-{transport}"
    attempt = f"import os\ntry:\n    os.execv({target!r}, ['x'])\nexcept OSError:\n    pass\n"
    try:
        deadline = time.monotonic() + WAIT_S * 2
        while time.monotonic() < deadline and not any(f'"exe": "{target}"' in line for line in lines):
            subprocess.run([sys.executable, "-c", attempt])
            time.sleep(0.3)
    finally:
        execmon.send_signal(signal.SIGTERM)
        err = execmon.stderr.read()
        execmon.wait(timeout=WAIT_S)
        reader.join(timeout=WAIT_S)
    failed = [event for event in map(json.loads, lines) if event["exe"] == target]
    assert failed, "execmon never printed the failed exec"
    assert failed[0]["ret"] == -2
    assert failed[0]["exe"] == target
    assert failed[0]["argv"] == ["x"]
    assert execmon.returncode == 0
    assert "Traceback" not in err
    assert "events received" in err
