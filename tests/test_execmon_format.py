"""execmon's formatter, filters and option parsing, without a kernel."""

import datetime
import io
import json
import os
import re
import sys

import pytest

import sdxfer
from sdxfer import execmon, hidsmon, loader
from sdxfer.stream.counting import SensorStats
from sdxfer.tools.driver import Follower, summary_line
from sdxfer.execmon import Clock, Filter, Options, escape, format_line, header_line, json_line

ExecEvent = sdxfer.default_decoder().events["exec"]
START_NS = 1_000_000_000_000


def make_event(*, pid=12350, tid=None, ppid=1, uid=1000, gid=1000, ret=0, comm="ls", exe="/bin/ls",
               argv=("ls", "--color=auto", "/tmp"), ssh=None, preload=None, lost=None, ts=START_NS + 1_500_000_000,
               cwd="/home/me"):
    lost = lost or {}
    values = {"pid": pid, "tid": pid if tid is None else tid, "ppid": ppid, "pgid": pid, "sid": 1, "uid": uid,
              "gid": gid, "euid": uid, "cgroup_id": 1, "mntns": 4026531840, "comm": comm, "ret": ret, "exe": exe,
              "argv": None if argv is None else list(argv), "ssh_connection": ssh, "ld_preload": preload,
              "ancestors": [], "start_ns": 4_000_000_000, "loginuid": 1000, "sessionid": 3, "pidns": 4026531836,
              "nodename": "host", "exe_path": exe, "exe_ino": 1234, "exe_dev": 2049, "exe_memfd": 0,
              "exe_deleted": 0, "stdio_remote": None, "stdio_local": None, "cwd": cwd, "tty": "pts/1",
              "stdin": "/dev/pts/1", "stdout": "/dev/pts/1", "stderr": "/dev/pts/1"}
    version = len(ExecEvent.versions)
    return ExecEvent((ts, 7, 0, version, *(values[f] for f in ExecEvent.fields), tuple(lost), lost))


@pytest.fixture
def clock():
    return Clock(start_ns=START_NS)


def test_seed_format(clock):
    assert header_line(Options()) == "PID      EXEC                 ARGS"
    assert format_line(make_event(), Options(), clock) == "12350    ls                   ls --color=auto /tmp"


def test_all_columns(clock):
    options = Options(failed=True, wall_time=True, relative_time=True, uid_column=True)
    assert header_line(options).split() == ["TIME", "TIME(s)", "UID", "PID", "EXEC", "RET", "ARGS"]
    line = format_line(make_event(ret=-2), options, clock)
    assert re.fullmatch(r"\d\d:\d\d:\d\d 1\.500    1000   12350    ls +-2   ls --color=auto /tmp", line)


def test_cwd_column_only_when_asked(clock):
    assert "/home/me" not in format_line(make_event(), Options(), clock)
    options = Options(cwd_column=True)
    assert header_line(options).split() == ["PID", "EXEC", "CWD", "ARGS"]
    line = format_line(make_event(cwd="/srv/app"), options, clock)
    assert line.index("/srv/app") == header_line(options).index("CWD")
    assert line.endswith("/srv/app                 ls --color=auto /tmp")
    assert "CWD" in header_line(execmon.options_from(execmon.build_parser().parse_args(["--cwd"]))[0])


def test_the_cwd_column_is_one_token(clock):
    """A space in a directory's name cannot pass for the start of ARGS; ? where the kernel could not tell it."""
    options = Options(cwd_column=True)
    assert format_line(make_event(cwd="/srv/my app"), options, clock).endswith('"/srv/my app"            ls --color=auto /tmp')
    assert " /srv/a\\\\nb " in format_line(make_event(cwd="/srv/a\\nb"), options, clock)  # a backslash doubled
    assert format_line(make_event(cwd=None, lost={"cwd": None}), options, clock).endswith("?                        ls --color=auto /tmp")


def test_columns_line_up_with_the_header(clock):
    options = Options(failed=True, uid_column=True)
    header = header_line(options)
    line = format_line(make_event(ret=-13), options, clock)
    assert line.index("12350") == header.index("PID")
    assert line.index("ls ") == header.index("EXEC")
    assert line.index("-13") == header.index("RET")


def test_control_characters_are_escaped(clock):
    event = make_event(comm="a\x1b]0;t\x07", argv=["x", "\x1b[31mred", "new\nline", "\x9b2J", "bidi\u202e", "\udcff"])
    line = format_line(event, Options(), clock)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
    assert "\\x1b[31mred" in line and "new\\nline" in line and "\\x9b2J" in line
    assert "bidi\\u202e" in line and "\\xff" in line
    assert line.split()[1] == "a\\x1b]0;t\\x07"


def test_escape_keeps_printable_unicode():
    assert escape("héllo → ✓") == "héllo → ✓"


def test_quoting(clock):
    event = make_event(argv=["echo", "a b", "", 'say "hi"'])
    line = format_line(event, Options(quote=True), clock)
    assert line.endswith('"echo" "a b" "" "say \\"hi\\""')


def test_max_args_and_kernel_truncation_are_marked(clock):
    event = make_event(argv=["a", "b", "c", "d"])
    assert format_line(event, Options(max_args=2), clock).endswith("a b ...")
    cut = make_event(argv=["a", "b"], lost={"argv": 10})
    assert format_line(cut, Options(), clock).endswith("a b ...")


def test_json_keys_and_values(clock):
    event = make_event(tid=12351, argv=["x", "\udcff\udcfe", ""], ssh="1.2.3.4 5 6.7.8.9 22", preload="")
    record = json.loads(json_line(event, Options(), clock))
    first_keys = ["event", "time", "ts_ns", "pid", "tid", "ppid", "uid", "gid", "comm", "exe",
                  "argv", "argv_truncated", "ret", "ssh_connection", "ld_preload", "truncated"]
    assert set(first_keys) <= set(record)
    # the object every tool prints for this event, plus execmon's own keys
    shared = json.loads(hidsmon.json_line(event, clock))
    assert {key: value for key, value in record.items() if key not in ("ts_ns", "argv_truncated")} == shared
    assert {"pgid", "sid", "euid", "cgroup_id", "mntns", "ancestors", "timestamp_ns", "lost"} <= set(record)
    assert record["event"] == "exec"
    assert record["ts_ns"] == event.timestamp_ns
    assert record["tid"] == 12351
    assert record["argv"][1].encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert record["argv_truncated"] is False
    assert record["ssh_connection"] == "1.2.3.4 5 6.7.8.9 22"
    assert record["ld_preload"] == ""
    assert record["truncated"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["time"])


def test_json_time_follows_the_kernel_clock(clock):
    first = json.loads(json_line(make_event(ts=START_NS), Options(), clock))
    later = json.loads(json_line(make_event(ts=START_NS + 2_000_000), Options(), clock))
    assert clock.wall(START_NS + 2_000_000) - clock.wall(START_NS) == datetime.timedelta(milliseconds=2)
    assert first["time"] < later["time"]


def test_json_absent_values_are_null(clock):
    record = json.loads(json_line(make_event(exe=None, argv=None), Options(), clock))
    assert record["exe"] is None and record["argv"] is None
    assert record["ssh_connection"] is None and record["ld_preload"] is None


def test_json_marks_truncation(clock):
    record = json.loads(json_line(make_event(lost={"argv": 3}), Options(), clock))
    assert record["argv_truncated"] is True
    assert record["truncated"] == ["argv"]


def test_json_says_which_null_values_are_unknown(clock):
    """An environment the probe could not read to the end: null, but named in truncated."""
    event = make_event(lost={"ssh_connection": None, "ld_preload": None})
    record = json.loads(json_line(event, Options(), clock))
    assert record["ssh_connection"] is None and record["ld_preload"] is None
    assert record["truncated"] == ["ssh_connection", "ld_preload"]
    assert record["argv_truncated"] is False


@pytest.mark.parametrize("event_filter, kept", [
    (Filter(), True),
    (Filter(uid=1000), True),
    (Filter(uid=0), False),
    (Filter(ppid=1), True),
    (Filter(ppid=2), False),
    (Filter(comm=re.compile("^l")), True),
    (Filter(comm=re.compile("^x")), False),
    (Filter(args=re.compile("color=auto /tmp")), True),  # the argument line, not the name
    (Filter(args=re.compile("^ls$")), False),
])
def test_filters(event_filter, kept):
    assert event_filter.matches(make_event()) is kept


def test_failed_execs_need_x():
    failed = make_event(ret=-2)
    assert not Filter().matches(failed)
    assert Filter(failed=True).matches(failed)


def test_options_from_the_command_line():
    args = execmon.build_parser().parse_args(
        ["-x", "-T", "-t", "-U", "-u", "0", "-n", "sh", "-l", "curl", "-P", "1", "-q", "--max-args", "3",
         "--transport", "ringbuf", "--json"])
    options, event_filter = execmon.options_from(args)
    assert options == Options(failed=True, wall_time=True, relative_time=True, uid_column=True, quote=True,
                              max_args=3)
    assert (event_filter.uid, event_filter.ppid, event_filter.failed) == (0, 1, True)
    assert event_filter.comm.pattern == "sh" and event_filter.args.pattern == "curl"
    assert args.transport == "ringbuf" and args.json


def test_user_names_resolve():
    args = execmon.build_parser().parse_args(["-u", "root"])
    assert args.uid == 0


@pytest.mark.parametrize("bad", [["-u", "no-such-user-xyz"], ["-n", "("], ["--max-args", "-1"],
                                 ["--transport", "carrier-pigeon"]])
def test_bad_options_exit_2_with_a_message(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        execmon.main(bad)
    assert exit_info.value.code == 2
    assert "execmon: error:" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        execmon.main(["--help"])
    assert "examples:" in capsys.readouterr().out


class FakeSensor:
    """Stands in for a Sensor: hands out prepared batches of events, with the
    loss of each event counted after each batch, then stops."""

    transport = "perf"

    def __init__(self, batches, lost_after):
        self.batches = list(batches)
        self.lost_after = list(lost_after)
        self.stats = SensorStats(["exec"])

    def read(self):
        lost = self.lost_after.pop(0)
        self.stats.lost = self.stats.counts("exec").lost = lost
        return self.batches.pop(0)

    def detach(self):
        pass

    def drain(self):
        return []

    def decoded(self, records):
        return iter(records)


def follow_with(sensor, args, clock):
    out = io.StringIO()
    Follower(sensor, "execmon", execmon.formatter(args, clock), out, sys.stderr).run(stop=lambda: not sensor.batches)
    return out.getvalue().splitlines()


def test_follower_prints_matches_and_reports_loss_once(capsys, clock):
    sensor = FakeSensor([[make_event(), make_event(ret=-2)], [make_event(pid=7)]], lost_after=[0, 5])
    lines = follow_with(sensor, execmon.build_parser().parse_args([]), clock)
    assert lines == ["12350    ls                   ls --color=auto /tmp", "7        ls                   ls --color=auto /tmp"]
    err = capsys.readouterr().err
    assert err.count("5 events lost (exec 5)") == 1


def test_follower_orders_each_batch_by_kernel_time(clock):
    late, early = make_event(pid=2, ts=START_NS + 20), make_event(pid=1, ts=START_NS + 10)
    lines = follow_with(FakeSensor([[late, early]], lost_after=[0]), execmon.build_parser().parse_args([]), clock)
    assert [line.split()[0] for line in lines] == ["1", "2"]


def test_summary_reports_one_loss_figure():
    stats = SensorStats()
    stats.delivered, stats.lost, stats.sequence_gaps = 10, 3, 3  # the gaps are the same records
    assert summary_line("execmon", stats) == "execmon: 10 events received, 3 lost"
    stats.undecodable = 1
    assert summary_line("execmon", stats) == "execmon: 10 events received, 3 lost, 1 undecodable"
    stats.counts("exec").lost = 3
    assert summary_line("execmon", stats) == "execmon: 10 events received, 3 lost (exec 3), 1 undecodable"


def test_transport_choices_come_from_the_loader():
    assert execmon.build_parser().parse_args(["--transport", loader.TRANSPORTS[-1]]).transport == "ringbuf"


@pytest.mark.skipif(not os.path.exists(loader.BTF_PATH), reason="no kernel BTF")
@pytest.mark.parametrize("transport, output", [("perf", "BPF_PERF_OUTPUT"), ("ringbuf", "BPF_RINGBUF_OUTPUT")])
def test_ebpf_prints_the_program_and_exits(transport, output, capsys):
    assert execmon.main(["--ebpf", "--transport", transport]) == 0
    text = capsys.readouterr().out
    assert "#define BTF_OFF_task_struct_mm " in text  # SDXFER_MEMBER(task_struct, mm), resolved under BCC
    assert "RAW_TRACEPOINT_PROBE(sched_process_exec)" in text and "exec_print(" in text
    assert output in text
    assert '#include "xfer.h"' not in text


def test_main_without_root_is_one_line_and_exit_1(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert execmon.main(["--transport", "ringbuf"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("execmon: ") and "sudo" in err


def test_wall_clock_keeps_every_microsecond():
    clock = Clock(start_ns=0)
    for step in range(2000):
        ts = 10**15 + step * 7919
        assert clock.wall(ts + 2_000_000) - clock.wall(ts) == datetime.timedelta(milliseconds=2)
