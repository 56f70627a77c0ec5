"""hidsmon: its formatter and filters without a kernel, then live end to end."""
import datetime
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import sdxfer
from sdxfer import hidsmon
from sdxfer.tools import driver
from sdxfer.tools.text import short_path
from sdxfer.console import Clock

from conftest import BACKENDS_AND_TRANSPORTS, EACH_BACKEND_AND_TRANSPORT, Tool, backend_options, wait_until

ROOT = Path(__file__).resolve().parent.parent
HIDSMON = str(ROOT / ".venv" / "bin" / "hidsmon")
DECODER = sdxfer.default_decoder()
START_NS = 1_000_000_000_000


def make(event_name, truncated=(), **values):
    cls = DECODER.events[event_name]
    defaults = {"pid": 4242, "tid": 4242, "ppid": 1, "pgid": 4242, "sid": 4242, "uid": 1000, "gid": 1000,
                "euid": 1000, "cgroup_id": 1, "mntns": 4026531840, "comm": "curl", "exe_path": "/usr/bin/curl"}
    row = [values.get(f, defaults.get(f)) for f in cls.fields]
    return cls((START_NS + 5_000_000, 3, 1, len(cls.versions), *row, truncated, {name: None for name in truncated}))


def test_text_line_is_time_event_pid_comm_exe_path_then_own_fields():
    clock = Clock(start_ns=START_NS)
    event = make("connect", fd=3, protocol=6, remote=sdxfer.SockAddr(2, 443, ipaddress.ip_address("10.1.2.3")),
                 local=sdxfer.SockAddr(2, 51000, ipaddress.ip_address("127.0.0.1")), ret=-115)
    line = hidsmon.text_line(event, clock, DECODER.common_fields)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} connect +4242 +curl +/usr/bin/curl +fd=3 protocol=6 "
                        r"remote=10\.1\.2\.3:443 local=127\.0\.0\.1:51000 ret=-115", line)


@pytest.mark.parametrize("exe_path, shown", [
    ("/usr/bin/curl", "/usr/bin/curl"),
    ("/opt/vendor/agent/releases/2026.12/bin/agent-worker", ".../2026.12/bin/agent-worker"),
    ("/memfd:payload (deleted)", "/memfd:payload (deleted)"),
    ("/x/" + "y" * 40, "..." + "y" * 29),
    (None, "-"),
])
def test_text_line_shows_exe_path_in_short_form(exe_path, shown):
    line = hidsmon.text_line(make("setsid", ret=0, exe_path=exe_path), Clock(start_ns=START_NS), DECODER.common_fields)
    after_comm = line.split(" curl ", 1)[1].lstrip()
    assert after_comm.startswith(shown + " ") and len(shown) <= 32
    assert "exe_path" not in line  # the whole path is in JSON


def test_text_line_says_question_mark_for_an_exe_path_the_kernel_could_not_tell():
    event = make("setsid", truncated=("exe_path",), ret=0, exe_path=None)
    line = hidsmon.text_line(event, Clock(start_ns=START_NS), DECODER.common_fields)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} setsid +4242 +curl +\? +ret=0 truncated=exe_path", line)


def test_text_line_is_terminal_safe_and_shows_names_and_entries():
    clock = Clock(start_ns=START_NS)
    event = make("prctl", comm="evil\x1b[2J", option=15, name="new\nname", ret=0)
    line = hidsmon.text_line(event, clock, DECODER.common_fields)
    assert "\x1b" not in line and "\n" not in line
    assert 'evil\\x1b[2J' in line and 'option=PR_SET_NAME name=new\\nname ret=0' in line
    entry = DECODER.events["exec"].entry_types["ancestors"].cls(1, "init")
    line = hidsmon.text_line(make("exec", ret=0, exe="/bin/x", argv=["x"], ancestors=[entry]), clock, ())
    assert "ancestors=[{pid=1,comm=init}]" in line


def test_json_line_is_to_dict_plus_time():
    clock = Clock(start_ns=START_NS)
    event = make("memfd_create", name="jit", flags=1, ret=3)
    record = json.loads(hidsmon.json_line(event, clock))
    time_field = record.pop("time")
    assert record == event.to_dict() and record["name"] == "jit" and record["event"] == "memfd_create"
    assert time_field == clock.iso(event.timestamp_ns) and time_field.endswith("Z")
    datetime.datetime.fromisoformat(time_field.replace("Z", "+00:00"))


def test_filters_go_to_the_kernel_but_the_name_regex():
    args = hidsmon.build_parser().parse_args(["-p", "4242", "--children", "-u", "1000", "--mntns", "4026531840",
                                              "-n", "^cu"])
    assert driver.event_filter(args).defines() == {"SDXFER_FILTER_PID": 4242, "SDXFER_FILTER_CHILDREN": 1,
                                                   "SDXFER_FILTER_UID": 1000, "SDXFER_FILTER_MNTNS": 4026531840,
                                                   "SDXFER_FILTER_NOT_TGID": os.getpid()}
    with_self = hidsmon.build_parser().parse_args(["--include-self"])
    assert driver.event_filter(with_self).defines() == {}
    matches = driver.name_matches(args)
    assert matches(make("setsid", ret=0)) and not matches(make("setsid", comm="bash", ret=0))


def test_no_failed_hides_failed_execs_and_leaves_their_programs_out():
    assert hidsmon.failed_exec(make("exec", ret=-2)) and not hidsmon.failed_exec(make("exec", ret=0))
    assert not hidsmon.failed_exec(make("connect", ret=-111))
    from sdxfer.kernel import probes

    assert probes.FAILED_EXECS_OFF in probes.defines_for(["exec"], failed_execs=False)
    assert probes.FAILED_EXECS_OFF not in probes.defines_for(["exec"])


def test_unknown_events_are_refused_naming_the_catalogue(capsys):
    with pytest.raises(SystemExit) as exit_:
        hidsmon.build_parser().parse_args(["--events", "exec,nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no event nope; the catalogue has: exec, exit, connect" in err


def test_not_root_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert hidsmon.main(["--events", "exec"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hidsmon: ") and "sudo" in err


def _start(*args, backend: str, transport: str) -> tuple[Tool, str]:
    mon = Tool(HIDSMON, *args, *backend_options(backend, transport))
    # the start line (after one saying stale prebuilt objects are rebuilt, if they are)
    started = mon.wait_err(lambda line: "Ctrl+C to stop" in line)
    assert re.fullmatch(rf"hidsmon: \d+ events, \d+ programs attached in \d+\.\d s \({transport}, {backend}\); "
                        r"Ctrl\+C to stop\n", started), mon.text()
    return mon, started


CHILD = "import os, sys\nsys.stdin.readline()\nos.setsid()\nos._exit(7)\n"


def _child_records(lines: list[str], pid: int) -> dict:
    """The child's exec, exit and setsid records by event (read until all three came)."""
    got = {}
    for line in lines:
        record = json.loads(line)
        assert record["event"] in ("exec", "exit", "setsid")
        if record["pid"] == pid:
            got[record["event"]] = record
        if len(got) == 3:
            break
    return got


@pytest.mark.live
@pytest.mark.parametrize("backend, transport", BACKENDS_AND_TRANSPORTS)
def test_live_selected_events_as_json(backend, transport):
    mon, started = _start("--events", "exec,exit,setsid", "--json", backend=backend, transport=transport)
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, text=True)
    child.communicate("go\n")
    try:
        # 3 programs watch execs (one success, two failure paths), one exits, one setsid
        assert started.startswith("hidsmon: 3 events, 5 programs attached")
        wait_until(lambda: len(_child_records(list(mon.out), child.pid)) == 3)
    finally:
        err = mon.stop(signal.SIGINT)
    got = _child_records(mon.out, child.pid)
    assert got["exec"]["argv"][1:] == ["-c", CHILD] and got["exec"]["ret"] == 0
    assert got["setsid"]["ret"] == child.pid and got["setsid"]["sid"] == child.pid
    assert got["exit"]["code"] == 7 << 8
    for record in got.values():
        assert record["time"].endswith("Z") and record["ppid"] == os.getpid()
    # the summary line (loss too: it watches every exec of a busy host, so some may be lost)
    assert mon.returncode == 0 and re.search(r"hidsmon: \d+ events received, \d+ lost", err)


@pytest.mark.live
@pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)
def test_live_text_filtered_by_pid(backend, transport):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, text=True)
    mon, _ = _start("--events", "setsid,exit", "-p", str(child.pid), backend=backend, transport=transport)
    try:
        subprocess.run([sys.executable, "-c", "import os; os.setsid()"])  # another process: not shown
        child.communicate("go\n")
        mon.wait_out(lambda line: re.search(rf" exit +{child.pid} ", line))
    finally:
        mon.stop(signal.SIGINT)
    lines = [line.rstrip("\n") for line in mon.out[:2]]
    exe = re.escape(short_path(os.path.realpath(sys.executable)))  # the program, as /proc/PID/exe names it
    assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} setsid +{child.pid} +python +{exe} +ret={child.pid}", lines[0])
    assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} exit +{child.pid} +python +{exe} +exit=7", lines[1])
