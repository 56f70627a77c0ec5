"""Live: the Go execmon (examples/go-execmon) and execmon --json watch the
same execs, on both transports, and print the same objects.

Each tool loads its own copy of the probe, so what each copy stamps on its
own records (timestamp_ns and its aliases ts_ns and time, and seq, the
copy's record count) differs; every other key and value is the same.
"""
import json
import re
import subprocess
import time
import uuid

import pytest

from conftest import LIVE_WAIT_S, Tool, wait_until
from gosupport import ROOT, go

pytestmark = pytest.mark.live

TRUE = "/bin/true"
PER_PROBE = ("timestamp_ns", "ts_ns", "time", "seq")


@pytest.fixture(scope="module")
def go_execmon(tmp_path_factory):
    binary = tmp_path_factory.mktemp("go-execmon") / "go-execmon"
    go("build", "-o", str(binary), "./examples/go-execmon")
    return binary


def _marked(tool: Tool, marker: str, count: int, timeout: float) -> list[str]:
    """The tool's lines of execs with marker among their arguments, once `count` have come."""
    def found():
        lines = [line for line in list(tool.out) if f'"{marker}"' in line or f" {marker} " in line]
        return lines if len(lines) >= count else None

    return wait_until(found, timeout, what=f"{count} execs marked {marker} from {tool.proc.args[0]}")


def _seen_by_both(tools: list[Tool], runs) -> tuple[str, list[list[str]]]:
    """Runs runs(marker)'s execs, under a fresh marker each time, until both
    tools print every one of them (on a busy machine a tool may lose records,
    and says so on stderr): that marker, and each tool's lines of it."""
    deadline = time.monotonic() + LIVE_WAIT_S
    while True:
        marker = f"go-{uuid.uuid4().hex}"
        for argv in runs(marker):
            subprocess.run(argv, check=True)
        try:
            return marker, [_marked(tool, marker, len(runs(marker)), timeout=15) for tool in tools]
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.parametrize("transport", ["perf", "ringbuf"])
def test_same_objects_as_execmon_json(go_execmon, transport):
    tools = [Tool(str(go_execmon), "-json", "-transport", transport, "-objects", str(ROOT / "sdxfer" / "objects")),
             Tool(str(ROOT / ".venv" / "bin" / "execmon"), "--json", "--transport", transport)]
    # the same programs: the exec ones but those of failed execs (the continuation program is tail-called)
    attached = [re.search(r"(\d+) programs attached", tool.wait_err(lambda line: "programs attached" in line)).group(1)
                for tool in tools]
    assert attached[0] == attached[1]
    big = [bytes([65 + i]) * 65536 for i in range(16)]  # 1 MiB of arguments, 64 KiB each

    def runs(marker: str) -> list:
        return [[TRUE, marker, "a b", "", "  ", "tab\there"],
                [TRUE.encode(), marker.encode(), b"\xff\xfe", b"caf\xc3\xa9", b"\xe2\x82", b""],
                [TRUE.encode(), marker.encode(), *big]]

    marker, lines = _seen_by_both(tools, runs)
    go_objects, py_objects = ([json.loads(line) for line in found] for found in lines)
    for tool in tools:
        tool.stop()
    assert all(list(o) == list(py_objects[0]) for o in go_objects + py_objects)  # the same keys, in the same order
    same = [[{k: v for k, v in o.items() if k not in PER_PROBE} for o in objects] for objects in (go_objects, py_objects)]
    assert sorted(same[0], key=json.dumps) == sorted(same[1], key=json.dumps)
    argvs = sorted((o["argv"] for o in go_objects), key=json.dumps)
    expected = [[TRUE, marker, "a b", "", "  ", "tab\there"],
                [TRUE, marker, "\udcff\udcfe", "café", "\udce2\udc82", ""],
                [TRUE, marker, *(b.decode() for b in big)]]
    assert argvs == sorted(expected, key=json.dumps)
    assert all(o["truncated"] == [] and o["argv_truncated"] is False for o in go_objects)


def test_same_text_lines_as_execmon(go_execmon):
    """The seed's columns: the same header and, exec by exec, the same line (escapes and cut argv marked alike)."""
    tools = [Tool(str(go_execmon), "-objects", str(ROOT / "sdxfer" / "objects")),
             Tool(str(ROOT / ".venv" / "bin" / "execmon"), "--transport", "perf")]
    for tool in tools:
        tool.wait_err(lambda line: "programs attached" in line)

    def runs(marker: str) -> list:
        return [[TRUE, marker, "a b", "", "tab\there", "\x1b[31m"],
                [TRUE.encode(), marker.encode(), b"\xff", "\u202e".encode()],
                [TRUE, marker, *["x" * 4000] * 8]]  # beyond the record's argv: continuation records

    _, lines = _seen_by_both(tools, runs)
    headers = [tool.out[:2] for tool in tools]
    for tool in tools:
        tool.stop()
    assert headers[0] == headers[1] == ["Watching execve events... Ctrl+C to stop\n", f"{'PID':<8} {'EXEC':<20} ARGS\n"]
    assert sorted(lines[0]) == sorted(lines[1])
    assert any("\\xff \\u202e" in line for line in lines[0]) and any("\\x1b[31m" in line for line in lines[0])


def test_objects_of_another_schema_are_refused(go_execmon, tmp_path):
    """The manifest names the schema the objects' records follow: go-execmon,
    whose decoders are compiled in, refuses objects of another (and a
    manifest that does not say) rather than decode their records wrongly."""
    shipped = ROOT / "sdxfer" / "objects"
    manifest = json.loads((shipped / "hids.manifest.json").read_text())
    for name in manifest["objects"].values():
        (tmp_path / name).symlink_to(shipped / name)
    for digest in ("0" * 64, None):
        manifest["schema_digest"] = digest
        (tmp_path / "hids.manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
        out = subprocess.run([str(go_execmon), "-objects", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.startswith(f"go-execmon: the objects in {tmp_path} were built from schema \"{digest or ''}\","
                                     " this program's decoders from \""), out.stderr
