"""A real nats-server with JetStream on 127.0.0.1 for the fleet tests (Debian's
package, installed by scripts/setup.sh): a free port, a store of its own,
and kill/restart on the same port and store (conftest's `server` fixture
starts one per test)."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NatsServer:
    def __init__(self, store: Path, *options: str):
        self.store = store
        self.options = options  # more nats-server flags (TLS, auth)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, subject: str, scheme: str = "nats") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{subject}"

    def start(self) -> None:
        log = (self.store.parent / f"{self.store.name}.log").open("ab")
        command = [SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store), *self.options]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "nats-server exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.1)  # JetStream comes up just after the port
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nats-server did not listen in 20 s")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as when a machine goes away."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

