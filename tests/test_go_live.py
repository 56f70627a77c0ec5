"""Live: the Go execmon (examples/go-execmon) and execmon --json watch the
same execs, on both transports, and print the same objects.

Each tool loads its own copy of the probe, so what each copy stamps on its
own records (timestamp_ns and its aliases ts_ns and time, and seq, the
copy's record count) differs; every other key and value is the same.
"""
import json
import subprocess
import uuid

import pytest

from conftest import Tool, wait_until
from gosupport import ROOT, go

pytestmark = pytest.mark.live

TRUE = "/bin/true"
PER_PROBE = ("timestamp_ns", "ts_ns", "time", "seq")


@pytest.fixture(scope="module")
def go_execmon(tmp_path_factory):
    binary = tmp_path_factory.mktemp("go-execmon") / "go-execmon"
    go("build", "-o", str(binary), "./examples/go-execmon")
    return binary


def _objects(tool: Tool, marker: str, count: int) -> list[dict]:
    """The tool's objects of execs whose argv[1] is marker, once `count` have come."""
    def found():
        objects = [json.loads(line) for line in list(tool.out) if marker in line]
        objects = [o for o in objects if o["argv"][1:2] == [marker]]
        return objects if len(objects) >= count else None

    return wait_until(found, what=f"{count} execs marked {marker} from {tool.proc.args[0]}")


def _lines(tool: Tool, marker: str, count: int) -> list[str]:
    """The tool's text lines of execs with marker among their arguments, once `count` have come."""
    def found():
        lines = [line for line in list(tool.out) if f" {marker} " in line]
        return lines if len(lines) >= count else None

    return wait_until(found, what=f"{count} execs marked {marker} from {tool.proc.args[0]}")


@pytest.mark.parametrize("transport", ["perf", "ringbuf"])
def test_same_objects_as_execmon_json(go_execmon, transport):
    tools = [Tool(str(go_execmon), "-json", "-transport", transport, "-objects", str(ROOT / "sdxfer" / "objects")),
             Tool(str(ROOT / ".venv" / "bin" / "execmon"), "--json", "--transport", transport)]
    tools[0].wait_err(lambda line: "programs attached" in line)
    tools[1].wait_err(lambda line: "programs attached" in line)
    marker = f"go-{uuid.uuid4().hex}"
    big = [bytes([65 + i]) * 65536 for i in range(16)]  # 1 MiB of arguments, 64 KiB each
    runs = [[TRUE, marker, "a b", "", "  ", "tab\there"],
            [TRUE.encode(), marker.encode(), b"\xff\xfe", b"caf\xc3\xa9", b"\xe2\x82", b""],
            [TRUE.encode(), marker.encode(), *big]]
    for argv in runs:
        subprocess.run(argv, check=True)
    go_objects, py_objects = (_objects(tool, marker, len(runs)) for tool in tools)
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
    marker = f"go-{uuid.uuid4().hex}"
    runs = [[TRUE, marker, "a b", "", "tab\there", "\x1b[31m"], [TRUE.encode(), marker.encode(), b"\xff", "\u202e".encode()],
            [TRUE, marker, *["x" * 4000] * 8]]  # beyond the record's argv: continuation records
    for argv in runs:
        subprocess.run(argv, check=True)
    lines = [sorted(_lines(tool, marker, len(runs))) for tool in tools]
    headers = [tool.out[:2] for tool in tools]
    for tool in tools:
        tool.stop()
    assert headers[0] == headers[1] == ["Watching execve events... Ctrl+C to stop\n", f"{'PID':<8} {'EXEC':<20} ARGS\n"]
    assert lines[0] == lines[1]
    assert any("\\xff \\u202e" in line for line in lines[0]) and any("\\x1b[31m" in line for line in lines[0])
