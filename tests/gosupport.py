"""The Go side of the tests: the generated Go package of any schema, built
with tests/go/decode (offline, Debian's Go), and the same lines from Python.

A schema's package is generated into a throwaway module that has the repo's
module path, so tests/go/decode imports it as it imports the shipped one.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

from sdxfer import DecodeError, Reassembler
from sdxfer.cli import main as sdxfer_main

ROOT = Path(__file__).resolve().parent.parent
GO_ENV = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"}
MODULE = "module sdxfer\n\ngo 1.19\n"


def go(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """A go command, offline; AssertionError with its output when it fails."""
    done = subprocess.run(["go", *args], cwd=cwd, env=GO_ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"go {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def build_decoder(schema: Path, work: Path) -> Path:
    """tests/go/decode built on the Go package generated from `schema`."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(MODULE)
    package = work / "generated" / "go" / "events"
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(work / "gen"), "--go", str(package)]) == 0
    shutil.copytree(ROOT / "tests" / "go" / "decode", work / "tests" / "go" / "decode", dirs_exist_ok=True)
    go("build", "-o", "decode", "./tests/go/decode", cwd=work)
    return work / "decode"


def frames(records) -> bytes:
    return b"".join(struct.pack("<I", len(r)) + bytes(r) for r in records)


def go_lines(binary: Path, records, reassemble: bool = False, **limits: int) -> list[str]:
    """limits: the Reassembler's max_pending_bytes, max_age_ns and max_pending_parts, as Python names them."""
    flags = [f"-{name.replace('_', '-')}={value}" for name, value in limits.items()]
    done = subprocess.run([str(binary)] + ["-reassemble"] * reassemble + flags, input=frames(records),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


def _line(event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=True)


def python_lines(decoder, records, reassemble: bool = False, **limits: int) -> list[str]:
    """What go_lines gives, from the Python decoder."""
    lines = []
    reassembler = Reassembler(decoder, **limits)
    for record in records:
        try:
            events = reassembler.feed(record) if reassemble else [decoder.decode(record)]
        except DecodeError:
            lines.append("error")
            continue
        lines += [_line(e) for e in events]
    return lines + [_line(e) for e in reassembler.flush()]
