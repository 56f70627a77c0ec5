"""The docs' live steps, exactly as written. docs/probes.md's "Write your own
probe": its schema and probe saved under my/, its command run, its action
done, its output seen (as written: built by sdxfer build, loaded through
libbpf). docs/c-runtime.md's example: loaded with Sensor against the shipped
schema on each backend, an exit seen with its code.

Needs root and bcc (CI runs as root); skipped otherwise. The checks that need
no kernel are in tests/test_docs.py.
"""
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EACH_BACKEND_AND_TRANSPORT, LIVE_WAIT_S

if os.geteuid() != 0:
    pytest.skip("live probe tests need root", allow_module_level=True)
pytest.importorskip("bcc")

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = LIVE_WAIT_S


def section(title: str, page: str = "docs/probes.md") -> str:
    text = (ROOT / page).read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def seconds_out(line: str) -> str:
    return re.sub(r"in \d+\.\d s", "in N s", line)


def time_and_pid_out(line: str) -> str:
    """A text line (time event pid comm ...) with its time and pid replaced."""
    return re.sub(r"^\d\d:\d\d:\d\d\.\d{3} (\S+ +)\d+ +", r"TIME \1PID ", line)


def test_write_your_own_probe(tmp_path):
    steps = section("Write your own probe")
    files = dict(re.findall(r"`(my/[\w.]+)`[^`]*?```\w+\n(.*?)```", steps, re.DOTALL))
    assert set(files) == {"my/events.yaml", "my/open.bpf.c"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    console = re.search(r"\n    # (.+)\n    # (.+)\n((?:    .+\n)+)", steps)  # build, then run
    build, command, shown = console.group(1), console.group(2), [line[4:] for line in console.group(3).splitlines()]
    action = re.search(r"while `([^`]+)` runs", steps).group(1)

    def argv(text: str) -> list[str]:
        return shlex.split(text.replace(".venv/bin/", f"{ROOT}/.venv/bin/"))

    built = subprocess.run(argv(build), cwd=tmp_path, capture_output=True, text=True)
    assert (built.returncode, built.stdout) == (0, "sdxfer build: wrote my/open.bpf.o\n"), built.stderr
    run = subprocess.Popen(argv(command), cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert seconds_out(run.stderr.readline()) == seconds_out(shown[0] + "\n")
        cat = subprocess.run(action.split(), capture_output=True, check=True)
        assert cat.stdout == Path("/etc/hostname").read_bytes()
        expected = [time_and_pid_out(line) for line in shown[1:]]
        got = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < len(expected) and time.monotonic() < deadline:
            line = run.stdout.readline()
            if re.match(r"\S+ file_open +\d+ +cat ", line):
                got.append(time_and_pid_out(line.rstrip("\n")))
        assert got == expected
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=WAIT_S)
        assert run.returncode == 0
        assert re.fullmatch(r"sdxfer run: \d+ events received, \d+ lost.*\n", err)
    finally:
        run.kill()
        run.wait()


@pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)
def test_c_runtime_bcc_example(backend, transport):
    from sdxfer import Sensor

    example = re.search(r"```c\n(.*?)```", section("Using the header", "docs/c-runtime.md"), re.DOTALL).group(1)
    with Sensor(example, backend=backend, transport=transport) as sensor:
        child = subprocess.Popen(["sh", "-c", "exit 3"])
        child.wait()
        deadline = time.monotonic() + WAIT_S
        found = []
        for event in sensor.events(stop=lambda: bool(found) or time.monotonic() > deadline):
            if event.name == "exit" and event.pid == child.pid:
                found.append(event)
    assert len(found) == 1
    assert found[0].code == 3 << 8
