from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sdxfer import Decoder
from sdxfer.cli import main as sdxfer_main
from sdxfer.codegen import plan

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SCHEMA = ROOT / "schema" / "events.yaml"
TEST_SCHEMA = ROOT / "tests" / "schemas" / "all_types.yaml"

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Generated:
    """A schema taken through the whole path: sdxfer gen into a folder, the
    host-C harness compiled against that header, the written events.py imported."""

    def __init__(self, schema: Path, out: Path):
        import hostc

        assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(out)]) == 0
        self.schema = schema
        self.layout = plan(str(schema))  # with the lock gen just wrote
        self.out = out
        spec = importlib.util.spec_from_file_location(f"gen_{out.name}", out / "events.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.decoder = Decoder.from_module(module)
        self.harness = hostc.build(self.layout, out, out)

    def pack(self, calls: list[tuple[int, dict]]) -> list[bytes]:
        import hostc

        return hostc.run(self.harness, b"".join(hostc.encode_call(self.layout, i, v) for i, v in calls))


@pytest.fixture(scope="session", params=[SHIPPED_SCHEMA, TEST_SCHEMA], ids=["shipped", "test-schema"])
def generated(request, tmp_path_factory):
    return Generated(request.param, tmp_path_factory.mktemp(request.param.stem))


# Live tests: programs loaded into the running kernel.

LIVE_WAIT_S = 60  # generous: other live tests may load this 2-CPU machine
# A task is freed an RCU grace period after it is reaped, and a kernel with
# lazy RCU batches such callbacks for 10 s or more. Writing rcutree's
# do_rcu_barrier runs every callback queued, the free among them, at once.
RCU_BARRIER = Path("/sys/module/rcutree/parameters/do_rcu_barrier")


def run_rcu_callbacks() -> bool:
    """Runs the RCU callbacks queued now (RCU_BARRIER); False where the kernel refuses."""
    try:
        RCU_BARRIER.write_text("1")
    except OSError:
        return False
    return True


def live_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "live probe tests need root"
    if importlib.util.find_spec("bcc") is None:
        return "live probe tests need bcc (Debian's python3-bpfcc, scripts/setup.sh)"
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "live: loads BPF programs into the running kernel (root and bcc, else skipped)")


def pytest_collection_modifyitems(config, items):
    reason = live_skip_reason()
    if reason:
        for item in items:
            if item.get_closest_marker("live"):
                item.add_marker(pytest.mark.skip(reason=reason))


def wait_until(predicate, timeout: float = LIVE_WAIT_S, act=None, every: float = 0.05, what: str = "the expected output"):
    """predicate()'s first true value; act() (if given) runs before each new
    look, every `every` s; AssertionError once the deadline has passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come in {timeout:g} s")
        if act is not None:
            act()
        time.sleep(every)


class Tool:
    """A CLI tool as a subprocess. Threads read its stdout and stderr into
    `out` and `err`, each a list of whole lines: a line is added only once
    its newline has come (bytes after the last newline at exit stay in `cut`)."""

    running: list[Tool] = []

    def __init__(self, *command: str, env: dict | None = None):
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        self.cut = {"out": "", "err": ""}
        self._readers = [threading.Thread(target=self._read, args=(stream, lines, name), daemon=True)
                         for stream, lines, name in ((self.proc.stdout, self.out, "out"),
                                                     (self.proc.stderr, self.err, "err"))]
        for reader in self._readers:
            reader.start()
        Tool.running.append(self)

    def _read(self, stream, lines: list[str], name: str) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", "surrogateescape")
            if text.endswith("\n"):
                lines.append(text)
            else:
                self.cut[name] = text

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def wait_out(self, predicate, timeout: float = LIVE_WAIT_S, act=None, every: float = 0.05) -> str:
        """The first whole stdout line that satisfies predicate (see wait_until)."""
        return self._wait(self.out, "stdout", predicate, timeout, act, every)

    def wait_err(self, predicate, timeout: float = LIVE_WAIT_S) -> str:
        """The first whole stderr line that satisfies predicate."""
        return self._wait(self.err, "stderr", predicate, timeout, None, 0.05)

    def _wait(self, lines, name, predicate, timeout, act, every) -> str:
        def found():
            match = next((line for line in list(lines) if predicate(line)), None)
            if match is None and self.proc.poll() is not None:
                self._join()
                match = next((line for line in lines if predicate(line)), None)
                assert match is not None, f"{self.proc.args[0]} exited ({self.proc.returncode}): {self.text()}"
            return match

        return wait_until(found, timeout, act, every, what=f"the expected {name} line of {self.proc.args}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = LIVE_WAIT_S) -> str:
        """Sends sig, waits for the exit and the readers' end; all of stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self._join()
        return "".join(self.err)

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(LIVE_WAIT_S)
        if self in Tool.running:
            Tool.running.remove(self)

    def text(self) -> str:
        return "".join(self.err) + self.cut["err"]


@pytest.fixture(autouse=True)
def no_tool_left():
    """Kills a test's tools still running at its end (after a failure)."""
    yield
    for tool in list(Tool.running):
        tool.proc.kill()
        tool.proc.wait()
        tool._join()


# Every live test of a probe runs on both backends and both transports.
BACKENDS_AND_TRANSPORTS = [("libbpf", "ringbuf"), ("libbpf", "perf"), ("bcc", "ringbuf"), ("bcc", "perf")]
# A test whose subject is neither (a tool's filter, format or output) runs
# once per backend, the two transports shared out between them: each backend
# and each transport is used, at half the cost.
EACH_BACKEND_AND_TRANSPORT = [("libbpf", "perf"), ("bcc", "ringbuf")]


def backend_options(backend: str, transport: str) -> list[str]:
    """A tool's command-line options for this backend and transport."""
    return ["--backend", backend, "--transport", transport]


@pytest.fixture(scope="module", params=BACKENDS_AND_TRANSPORTS, ids="-".join)
def sensor(request):
    """The test module's PROGRAM, SCHEMA and DEFINES loaded on each backend
    (libbpf: built by clang, cached) and transport; `backlog` holds events
    read but not yet looked for."""
    from sdxfer.kernel.sensor import Sensor

    module = request.module
    backend, transport = request.param
    with Sensor(module.PROGRAM, schema=module.SCHEMA, transport=transport, defines=module.DEFINES,
                backend=backend) as opened:
        opened.backlog = []
        yield opened


@pytest.fixture
def server(tmp_path):
    """A started nats-server (tests/nats_support.py), killed after the test."""
    from nats_support import NatsServer

    nats = NatsServer(tmp_path / "store")
    nats.start()
    yield nats
    nats.kill()
