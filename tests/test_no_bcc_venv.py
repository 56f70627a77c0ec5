"""The run-time claim of the prebuilt objects: a virtualenv without system
site packages (so no bcc), the project installed into it as a user would
(`pip install .`, which builds the objects), and a mount namespace in which
clang and the kernel headers are gone: execmon --json and hidsmon --json
still report real actions, values exact."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, Tool, wait_until

pytestmark = [pytest.mark.live,
              pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")]

SYSTEM_PYTHON = "/usr/bin/python3"
# What the tools run without: the compiler (and BCC's LLVM) and every kernel header tree.
HIDDEN = ["/usr/src", *map(str, Path("/usr/lib").glob("llvm-*"))]
HIDE = 'for d in "$HIDDEN"; do /bin/mount -t tmpfs sdxfer-hidden "$d" || exit 1; done; exec "$@"'


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("no-bcc") / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", folder], check=True)
    done = subprocess.run([folder / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def hidden(venv: Path, *command) -> list[str]:
    """`command` in a new mount namespace where HIDDEN are empty folders."""
    return [shutil.which("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c",
            HIDE.replace('"$HIDDEN"', " ".join(HIDDEN)), "hide", *map(str, command)]


def bare_env(venv: Path) -> dict:
    return {"PATH": str(venv / "bin"), "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root")}


def test_the_venv_has_no_bcc_and_the_namespace_no_clang_or_headers(venv):
    check = ("import importlib.util, os, shutil, sdxfer.kernel.probes as p;"
             "print(importlib.util.find_spec('bcc') is None, shutil.which('clang') is None, os.listdir('/usr/src'),"
             " os.path.isdir(p.__file__.rsplit('/kernel/', 1)[0] + '/objects'))")
    done = subprocess.run(hidden(venv, venv / "bin" / "python", "-c", check), capture_output=True, text=True,
                          env=bare_env(venv), cwd="/")
    assert (done.returncode, done.stdout, done.stderr) == (0, "True True [] True\n", "")


def marked_exec(marker: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/true", marker, "second argument", ""])


def test_execmon_json_from_the_prebuilt_object(venv):
    marker = f"sdxfer-no-bcc-{os.getpid()}"
    execmon = Tool(*hidden(venv, venv / "bin" / "execmon", "--json"), env=bare_env(venv))
    try:
        execmon.wait_err(lambda line: "programs attached" in line)
        children = []

        def act():
            child = subprocess.Popen(["/bin/true", marker, "second argument", ""])
            child.wait()
            children.append(child.pid)

        line = execmon.wait_out(lambda line: marker in line, act=act, every=0.3)
    finally:
        err = execmon.stop()
    event = json.loads(line)
    assert event["pid"] in children and event["ppid"] == os.getpid()
    assert (event["exe"], event["argv"], event["ret"], event["comm"]) == (
        "/bin/true", ["/bin/true", marker, "second argument", ""], 0, "true")
    assert (event["uid"], event["euid"]) == (os.getuid(), os.geteuid())
    assert "libbpf" in err and "Traceback" not in err and execmon.returncode == 0


def test_hidsmon_json_from_the_prebuilt_object(venv, tmp_path):
    hidsmon = Tool(*hidden(venv, venv / "bin" / "hidsmon", "--json"), env=bare_env(venv))
    script = tmp_path / "exit-seven.sh"
    script.write_text("#!/bin/sh\nexit 7\n")
    script.chmod(0o755)
    pids = []

    def act():
        child = subprocess.Popen([str(script)])
        child.wait()
        pids.append(child.pid)

    def exit_seen(line):
        event = json.loads(line)
        return event["event"] == "exit" and event["pid"] in pids

    try:
        hidsmon.wait_err(lambda line: "programs attached" in line)
        exited = json.loads(hidsmon.wait_out(exit_seen, act=act, every=0.3))
        execs = wait_until(lambda: [e for e in map(json.loads, list(hidsmon.out))
                                    if e["event"] == "exec" and e["pid"] == exited["pid"]])
    finally:
        err = hidsmon.stop()
    assert exited["code"] == 7 << 8  # as wait(2) reports it
    # the file run as exec'd, the argv as the interpreter got it
    assert (execs[0]["exe"], execs[0]["argv"], execs[0]["ret"]) == (str(script), ["/bin/sh", str(script)], 0)
    assert execs[0]["ppid"] == os.getpid()
    assert "libbpf" in err and "Traceback" not in err and hidsmon.returncode == 0

