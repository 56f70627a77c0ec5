"""The shipped probe, bpf/hids.bpf.c, built once into CO-RE objects that
execmon, hidsmon, `sdxfer run` of the shipped probe and ExecProbe load
through libbpf: no compiler, no kernel headers, no bcc at run time.

    python -m sdxfer.kernel.objects [--out DIR]   # scripts/setup.sh and the wheel build run it

    sdxfer/objects/hids.perf.bpf.o       every event, with the maps of the --children
    sdxfer/objects/hids.ringbuf.bpf.o    and --cgroup filters (off unless a run turns them on)
    sdxfer/objects/hids.manifest.json    which programs serve which event, which are the
                                         failed-exec and the filter programs; the inputs' digest

The manifest comes from the source itself, never from a table: the program is
preprocessed by clang once per selection (-DHIDS_SELECTED -DHIDS_WANT_<EVENT>,
-DHIDS_WITHOUT_FAILED_EXECS, the filter -D flags) and the programs each one
defines are read off; the build then checks that the objects hold exactly the
programs the manifest names. A run selects programs at load (autoload off for
the others), so one object serves every --events.

kmod_load has two variants (bpf/process.bpf.h): the objects carry the one the
build host's tracefs allows. A host without the module syscall tracepoints
(this project's CI machine among them) builds the raw sys_exit variant, which
attaches on every kernel; one built with the tracepoints variant needs hosts
that have them.

At load, the digest of the inputs (bpf/, sdxfer/include/, the schema, the
generated header and its template and generator, this build recipe and the
probe's -D choices in probes.py) is checked: stale or missing objects are
rebuilt into the user's cache folder when clang is there (one line on stderr
says so), else one line says what to run.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from ..errors import ProbeError
from ..paths import BPF_DIR, C_INCLUDE_DIR, GENERATED_DIR, PACKAGE_DIR, SCHEMA_DIR, TEMPLATES_DIR
from ..runtime import record
from .probes import FAILED_EXECS_OFF, PROGRAM, kmod_define, kmod_tracepoints
from .build import user_cache_dir
from .filters import STRUCTURAL_DEFINES
from .program import schema_code

OBJECTS_DIR = PACKAGE_DIR / "objects"
MANIFEST = "hids.manifest.json"
TRANSPORT_DEFINES = {"perf": {}, "ringbuf": {"SDXFER_RINGBUF": None}}
FILTER_DEFINES = dict.fromkeys(STRUCTURAL_DEFINES)
SELECTED = {"HIDS_SELECTED": None}
# a program once preprocessed (-E -P): SEC("...") expanded, libbpf's pragmas around it, then the function
_PROGRAM = re.compile(r'section\((?:"[^"]*"\s*)+\),\s*used\)\)\s*(?:#pragma[^\n]*\n\s*)*int\s+(\w+)\s*\(')


def object_name(transport: str) -> str:
    return f"hids.{transport}.bpf.o"


# ---- what the objects are built from ----------------------------------------------


def _codegen_dir() -> Path:
    """The generator's folder (codegen/ in a checkout, sdxfer/codegen once installed), not imported."""
    return Path(importlib.util.find_spec("sdxfer.codegen").submodule_search_locations[0])


def inputs() -> list[tuple[str, Path]]:
    """Every file the objects depend on, named the same in a checkout and an installed package."""
    places = [("bpf", BPF_DIR, ("*.c", "*.h")), ("include", C_INCLUDE_DIR, ("*.h",)),
              ("schema", SCHEMA_DIR, ("events.yaml", "events.lock")), ("generated", GENERATED_DIR, ("xfer.h",)),
              ("templates", TEMPLATES_DIR, ("xfer.h.j2",)), ("codegen", _codegen_dir(), ("*.py",)),
              ("kernel", Path(__file__).parent, ("build.py", "objects.py", "probes.py"))]
    return sorted((f"{role}/{path.name}", path) for role, folder, patterns in places
                  for pattern in patterns for path in folder.glob(pattern))


def input_digest() -> str:
    digest = hashlib.sha256()
    for name, path in inputs():
        content = path.read_bytes()
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()


# ---- building ----------------------------------------------------------------------


def programs_of(defines: dict, vmlinux: Path) -> set[str]:
    """The programs bpf/hids.bpf.c defines when compiled with `defines`."""
    from .build import preprocess

    return set(_PROGRAM.findall(preprocess(PROGRAM, defines={**defines, **kmod_define()}, vmlinux=vmlinux)))


def derive_manifest(vmlinux: Path) -> dict:
    """Which programs serve which event, from the #ifdef HIDS_WANT_<EVENT> guards themselves."""
    events = schema_code(None).event_names
    runtime = programs_of(SELECTED, vmlinux)  # in every selection: the continuation program
    per_event = {event: sorted(programs_of({**SELECTED, f"HIDS_WANT_{event.upper()}": None}, vmlinux) - runtime)
                 for event in events}
    exec_without_failed = programs_of({**SELECTED, "HIDS_WANT_EXEC": None, FAILED_EXECS_OFF: None}, vmlinux)
    filters = programs_of(FILTER_DEFINES, vmlinux) - programs_of({}, vmlinux)
    return {"digest": input_digest(),
            "schema_digest": schema_code(None).decoder.schema_digest,  # what the records follow (go-execmon checks)
            "objects": {transport: object_name(transport) for transport in TRANSPORT_DEFINES},
            "kmod_load": "tracepoints" if kmod_tracepoints() else "raw_syscalls",
            "events": per_event,
            "failed_execs": sorted(set(per_event["exec"]) - exec_without_failed),
            "filters": sorted(filters),
            "runtime": sorted(runtime)}


def _object_programs(path: Path) -> set[str]:
    from . import libbpf

    opened = libbpf.Object(path)
    try:
        return {program.name for program in opened.programs()}
    finally:
        opened.close()


def build_objects(out: Path) -> dict:
    """Builds both objects and the manifest into `out` (the manifest last, so a
    build cut short reads as missing); returns the manifest."""
    from .build import build, vmlinux_header

    vmlinux = vmlinux_header()
    manifest = derive_manifest(vmlinux)
    named = set(manifest["runtime"]) | set(manifest["filters"]) | {p for ps in manifest["events"].values() for p in ps}
    if set(record.FOLLOW_PROGRAMS) != set(manifest["filters"]):
        raise ProbeError(f"the --children programs are {manifest['filters']}, not record.FOLLOW_PROGRAMS")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".building-") as folder:
        for transport, name in manifest["objects"].items():
            partial = Path(folder) / name
            build(PROGRAM, partial, defines={**FILTER_DEFINES, **TRANSPORT_DEFINES[transport], **kmod_define()},
                  vmlinux=vmlinux)
            found = _object_programs(partial)
            if found != named:
                raise ProbeError(f"{name} holds programs the manifest does not name, or lacks some: "
                                 f"{', '.join(sorted(found ^ named))}")
            os.replace(partial, out / name)
        (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(Path(folder) / MANIFEST, out / MANIFEST)
    return manifest


# ---- finding them at load ----------------------------------------------------------


class Shipped(NamedTuple):
    """Built objects and their manifest."""

    folder: Path
    manifest: dict

    def object(self, transport: str) -> Path:
        if transport not in self.manifest["objects"]:
            raise ProbeError(f"unknown transport {transport!r}: choose {' or '.join(self.manifest['objects'])}")
        return self.folder / self.manifest["objects"][transport]

    def programs(self, events: Iterable[str] | None = None, failed_execs: bool = True) -> list[str]:
        """The programs serving `events` (None: every event), failed-exec ones left out if asked,
        and the runtime's own (the continuation sender, the exe_path keeper's)."""
        per_event = self.manifest["events"]
        unknown = sorted(set(events or ()) - set(per_event))
        if unknown:
            raise ProbeError(f"no event {', '.join(unknown)} in the shipped probe")
        left_out = set() if failed_execs else set(self.manifest["failed_execs"])
        return sorted(({program for event in (per_event if events is None else events)
                        for program in per_event[event]} - left_out) | set(self.manifest["runtime"]))


def current(folder: Path, digest: str) -> Shipped | None:
    """The objects in `folder` if they are there and built from these inputs."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("digest") != digest or not manifest.get("objects"):
        return None
    found = Shipped(folder, manifest)
    return found if all(found.object(t).is_file() for t in manifest["objects"]) else None


def _stderr_line(line: str) -> None:
    print(f"sdxfer: {line}", file=sys.stderr, flush=True)


def shipped(notice: Callable[[str], None] = _stderr_line) -> Shipped:
    """The shipped objects, current: the package's, else the user's cache, else
    rebuilt into the cache (saying so through `notice`) when clang is there."""
    digest = input_digest()
    for folder in (OBJECTS_DIR, None):
        found = current(folder or user_cache_dir(), digest)
        if found is not None:
            return found
    state = "out of date" if (OBJECTS_DIR / MANIFEST).is_file() else "missing"
    if shutil.which("clang") is None:
        raise ProbeError(f"the prebuilt objects in {OBJECTS_DIR} are {state} and there is no clang to rebuild them:"
                         " run `python -m sdxfer.kernel.objects` where clang is (scripts/setup.sh does), or use"
                         " --backend bcc")
    folder = user_cache_dir()
    notice(f"the prebuilt objects in {OBJECTS_DIR} are {state}: building them into {folder}")
    return Shipped(folder, build_objects(folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdxfer.kernel.objects",
                                     description="Build the shipped probe's CO-RE objects and manifest (if stale).")
    parser.add_argument("--out", type=Path, default=OBJECTS_DIR, help=f"where (default {OBJECTS_DIR})")
    args = parser.parse_args(argv)
    try:
        if current(args.out, input_digest()) is None:
            build_objects(args.out)
            print(f"sdxfer: built the shipped objects into {args.out}")
        else:
            print(f"sdxfer: the shipped objects in {args.out} are up to date")
    except ProbeError as exc:
        print(f"sdxfer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
