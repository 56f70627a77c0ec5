"""Fleet end to end, live: hidsmon processes publishing real exec events to a
real nats-server on loopback, a consumer decoding them; rotated files. Each
test runs once per backend, the two transports shared out between them."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sdxfer
from sdxfer.errors import DecodeError
from sdxfer.fleet import envelope

from conftest import EACH_BACKEND_AND_TRANSPORT, Tool, backend_options
from nats_support import NatsServer
from test_fleet import consume_all

pytestmark = pytest.mark.live
on_each_backend = pytest.mark.parametrize("backend, transport", EACH_BACKEND_AND_TRANSPORT)

ROOT = Path(__file__).resolve().parent.parent
HIDSMON = str(ROOT / ".venv" / "bin" / "hidsmon")
EXECMON = str(ROOT / ".venv" / "bin" / "execmon")


class Marker:
    """A copy of true with a name of its own: its execs are told apart from
    everything else on the host (hidsmon -n), each by its argument."""

    def __init__(self, folder: Path):
        self.name = "fm" + secrets.token_hex(4)
        self.path = folder / self.name
        shutil.copy("/bin/true", self.path)

    def run(self, numbers) -> list[str]:
        tags = [f"n{n}" for n in numbers]
        for tag in tags:
            subprocess.run([str(self.path), tag], check=True)
        return tags


class Monitor:
    """hidsmon --events exec -n MARKER --output URL (or execmon), attached once started.

    hidsmon sees every exec on the host: under others' load its perf buffer
    can overflow, so each test allows the loss the sensor reports (exact when
    the machine is quiet) and checks the fleet path exactly."""

    def __init__(self, marker: Marker, *options: str, backend: str, transport: str, host: str = "h-a",
                 tool: tuple = (HIDSMON, "--events", "exec")):
        env = dict(os.environ, SDXFER_HOSTNAME=host, SDXFER_MACHINE_ID=f"machine-{host}", SDXFER_BOOT_ID=f"boot-{host}")
        self.tool = Tool(*tool, "-n", f"^{marker.name}$", *backend_options(backend, transport), *options, env=env)
        started = self.tool.wait_err(lambda line: "Ctrl+C to stop" in line, timeout=120)
        assert self.tool.proc.poll() is None and f"({transport}, {backend}" in started, self.tool.text()

    def stop(self) -> tuple[str, int]:
        """hidsmon's stderr, and the events the kernel lost."""
        text = self.tool.stop(signal.SIGINT, timeout=60)
        assert self.tool.returncode == 0 and "Traceback" not in text, text
        return text, int(re.search(r"events received, (\d+) lost", text).group(1))


@pytest.fixture
def marker(tmp_path):
    return Marker(tmp_path)


def published(err: str) -> int:
    return int(re.search(r"(\d+) events (?:published|written)", err).group(1))


def check_once(got: list[str], tags: list[str], sent: int, lost: int, dropped: int = 0) -> None:
    """What the consumer got is what the sensor sent, each once; missing are
    exactly the drops counted, and at most the kernel's reported loss besides."""
    assert len(got) == len(set(got)) == sent and set(got) <= set(tags)
    assert dropped <= len(tags) - sent <= dropped + lost


def by_host(items) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    for item in items:
        hosts.setdefault(item.host.hostname, []).append(item.event.argv[1])
    return hosts


def test_two_hosts_publish_one_consumer_decodes_each_event_once(server, marker):
    """The two hosts' sensors: one on each backend (and transport)."""
    url = server.url("fleet.live")
    monitors = [Monitor(marker, "--output", url, host=host, backend=backend, transport=transport)
                for host, (backend, transport) in zip(("h-a", "h-b"), EACH_BACKEND_AND_TRANSPORT)]
    tags = marker.run(range(150))
    results = [monitor.stop() for monitor in monitors]
    items = consume_all(url, sum(published(err) for err, _ in results), durable="central")
    hosts = by_host(items)
    assert sorted(hosts) == ["h-a", "h-b"]
    for host, (err, lost) in zip(("h-a", "h-b"), results):
        check_once(hosts[host], tags, published(err), lost)
    ids = {(item.host.machine_id, item.host.boot_id) for item in items}
    assert ids == {("machine-h-a", "boot-h-a"), ("machine-h-b", "boot-h-b")}
    assert all(item.event.comm == marker.name and item.to_dict()["host"]["hostname"] in hosts for item in items)


@on_each_backend
def test_server_killed_and_restarted_under_a_live_sensor(server, marker, tmp_path, backend, transport):
    url = server.url("fleet.restart")
    monitor = Monitor(marker, "--output", url, "--spool", str(tmp_path / "spool"), "--memory-bytes", "16K",
                      backend=backend, transport=transport)
    tags = marker.run(range(100))
    server.kill()
    tags += marker.run(range(100, 200))
    server.start()
    tags += marker.run(range(200, 300))
    err, lost = monitor.stop()
    assert re.search(r"events published in \d+ messages to \S+, 0 dropped", err), err
    check_once(by_host(consume_all(url, published(err)))["h-a"], tags, published(err), lost)


@on_each_backend
def test_full_spool_under_a_live_sensor_drops_exactly_what_it_says(tmp_path, marker, backend, transport):
    nats = NatsServer(tmp_path / "store")  # away while the sensor runs
    url = nats.url("fleet.full")
    monitor = Monitor(marker, "--output", url, "--spool", str(tmp_path / "spool"), "--memory-bytes", "8K",
                      "--spool-bytes", "16K", backend=backend, transport=transport)
    tags = marker.run(range(300))
    nats.start()
    try:
        err, lost = monitor.stop()
        dropped = int(re.search(r"events published in \d+ messages to \S+, (\d+) dropped", err).group(1))
        assert dropped > 0 and re.search(rf"events dropped: memory .* \({dropped} in all\)", err), err
        got = by_host(consume_all(url, published(err)))["h-a"]
    finally:
        nats.kill()
    assert published(err) > 0
    check_once(got, tags, published(err), lost, dropped)


@on_each_backend
def test_file_output_rotates_under_load_without_a_torn_or_lost_line(tmp_path, marker, backend, transport):
    path = tmp_path / "out" / "events.ndjson"
    path.parent.mkdir()
    monitor = Monitor(marker, "--output", f"file:{path}", "--rotate-bytes", "16K", "--keep", "1000",
                      backend=backend, transport=transport)
    loops = [threading.Thread(target=marker.run, args=(range(start, start + 200),)) for start in (0, 1000, 2000)]
    for loop in loops:
        loop.start()
    for loop in loops:
        loop.join()
    err, lost = monitor.stop()
    rotations = int(re.search(r"events written to \S+ \((\d+) rotations\)", err).group(1))
    files = sorted(path.parent.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert rotations >= 5 and len(files) == rotations + 1
    tags = []
    for file in files:
        data = file.read_bytes()
        assert data.endswith(b"\n") and len(data) <= 16 * 1024  # whole lines, none past the bound
        for line in data.decode().split("\n")[:-1]:
            record = json.loads(line)
            assert record["host"]["hostname"] == "h-a" and record["comm"] == marker.name
            tags.append(record["argv"][1])
    check_once(tags, [f"n{start + n}" for start in (0, 1000, 2000) for n in range(200)], published(err), lost)


@on_each_backend
def test_execmon_publishes_too(server, marker, backend, transport):
    url = server.url("fleet.execmon")
    monitor = Monitor(marker, "--output", url, tool=(EXECMON,), backend=backend, transport=transport)
    tags = marker.run(range(20))
    err, lost = monitor.stop()
    check_once(by_host(consume_all(url, published(err)))["h-a"], tags, published(err), lost)


def spooled_events(spool: Path) -> list:
    """The events in a spool's files (continuation records left out)."""
    decoder = sdxfer.default_decoder()
    events = []
    for path in spool.glob("*.sdxb"):
        payload = path.read_bytes().split(b"\n", 1)[1]
        for raw in envelope.unpack(payload).records:
            try:
                events.append(decoder.decode(raw))
            except DecodeError:
                pass
    return events


@on_each_backend
def test_the_sensor_never_reports_its_own_spool_writes(tmp_path, backend, transport):
    """Issue 16 item 2: with the server away for 30 s and every message
    spooled, a loop creates 1,000 files; the spool holds those events and
    none of the sensor's own (each spool write would be events to spool)."""
    nats = NatsServer(tmp_path / "store")  # never started
    spool, made = tmp_path / "spool", tmp_path / "made"
    made.mkdir()
    tool = Tool(HIDSMON, "--events", "file_create,rename", *backend_options(backend, transport),
                "--output", nats.url("fleet.self"), "--spool", str(spool),
                "--memory-bytes", "0", "--spool-bytes", "64M")
    started = tool.wait_err(lambda line: "Ctrl+C to stop" in line, timeout=120)
    assert f"({transport}, {backend}" in started, started
    loop = subprocess.run([sys.executable, "-c", "import os, sys\nfor n in range(1000):\n"
                           "    open(os.path.join(sys.argv[1], f'f{n}'), 'w').close()\nprint(os.getpid())",
                           str(made)], capture_output=True, text=True, check=True)
    time.sleep(30)  # the server stays away: a sensor that fed on itself would spool on and on
    err = tool.stop(signal.SIGINT, timeout=60)
    assert tool.returncode == 0 and "Traceback" not in err, err
    lost = int(re.search(r"events received, (\d+) lost", err).group(1))
    events = spooled_events(spool)
    created = {event.path for event in events if event.name == "file_create" and event.pid == int(loop.stdout)}
    assert len(created) >= 1000 - lost and created <= {str(made / f"f{n}") for n in range(1000)}
    assert not [event for event in events if event.pid == tool.proc.pid]
