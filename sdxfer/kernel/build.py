"""`sdxfer build`: a probe compiled once by clang into a CO-RE object for libbpf.

    program.bpf.c  -> clang -target bpf -O2 -g -DSDXFER_CORE, on the real files
                      (so compiler messages name them), with -include sdxfer_core.h
    xfer.h         -> the schema's, written into a private build folder
    vmlinux.h      -> --vmlinux, else bpftool's dump of the running kernel's BTF,
                      cached by the BTF's digest in a private folder
    TRACEPOINT_PROBE argument structs -> from the build host's tracefs formats, for
                      the tracepoints the preprocessed program attaches to

Member offsets are CO-RE relocations (SDXFER_MEMBER), patched by libbpf at
load: nothing here reads a structure offset.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ProbeError
from ..paths import BPF_DIR, C_INCLUDE_DIR
from ..private import private_dir
from .program import (BTF_PATH, PROGRAM_TEXT, STRICT_CFLAGS, amalgamate, define_flag, include_finder, program_source,
                      schema_code)

TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
# bpf_tracing.h's PT_REGS_* need the target's architecture under its kernel name.
_KERNEL_ARCH = {"x86_64": "x86", "aarch64": "arm64", "s390x": "s390", "ppc64le": "powerpc", "riscv64": "riscv"}
# a TRACEPOINT_PROBE's section name once preprocessed: strings not yet joined
_TRACEPOINT = re.compile(r'"tp/"\s*"(\w+)"\s*"/"\s*"(\w+)"')
_FORMAT_FIELD = re.compile(r"^\s*field:(.+?);\s*offset:(\d+);\s*size:(\d+);", re.MULTILINE)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ProbeError(f"{name} not found: sdxfer build needs it (apt-get install {package})")
    return path


def _private_dir(path: Path) -> Path:
    """`path` as a folder only this user can write, made here if missing; refused
    if it is a link or anyone else's (files in it are then ours to trust)."""
    try:
        return private_dir(path)
    except PermissionError as exc:
        raise ProbeError(f"the build cache {path} is not a private folder of this user: remove it ({exc})") from None
    except OSError as exc:
        raise ProbeError(f"cannot make the build cache {path}: {exc.strerror}") from None


def vmlinux_header(btf_path: str = BTF_PATH) -> Path:
    """vmlinux.h for the kernel whose BTF is at `btf_path`, dumped by bpftool once per BTF."""
    try:
        digest = hashlib.sha256(Path(btf_path).read_bytes()).hexdigest()[:24]
    except OSError as exc:
        raise ProbeError(f"cannot read the kernel's BTF {btf_path} ({exc.strerror}): give a vmlinux.h with --vmlinux") from None
    cache = _private_dir(Path(tempfile.gettempdir()) / f"sdxfer-build-{os.getuid()}")
    header = cache / f"vmlinux-{digest}.h"
    if header.is_file() and not header.is_symlink():
        return header
    bpftool = _tool("bpftool", "bpftool")
    done = subprocess.run([bpftool, "btf", "dump", "file", btf_path, "format", "c"], capture_output=True)
    if done.returncode != 0:
        raise ProbeError(f"bpftool could not dump {btf_path}: {done.stderr.decode(errors='replace').strip()}")
    fd, partial = tempfile.mkstemp(dir=cache, suffix=".partial")  # renamed whole: a reader never sees half
    with os.fdopen(fd, "wb") as out:
        out.write(done.stdout)
    os.replace(partial, header)
    return header


def _tracefs_format(category: str, event: str) -> str:
    for root in TRACEFS:
        path = root / "events" / category / event / "format"
        try:
            return path.read_text()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ProbeError(f"TRACEPOINT_PROBE({category}, {event}): cannot read {path}: {exc.strerror}") from None
    raise ProbeError(f"TRACEPOINT_PROBE({category}, {event}): no such tracepoint in this kernel's tracefs")


def tracepoint_struct(category: str, event: str, fmt: str) -> str:
    """The struct BCC would give TRACEPOINT_PROBE(category, event) as `args`: each
    field at its format offset, in a union as wide as the format says (a syscall's
    int argument fills a 64-bit slot); __data_loc fields are their u32."""
    name = f"tracepoint__{category}__{event}"
    members, checks, at = [], [], 0
    for decl, offset, size in _FORMAT_FIELD.findall(fmt):
        offset, size = int(offset), int(size)
        field = re.search(r"(\w+)\s*(\[\d*\])?\s*$", decl).group(1)
        if decl.startswith("__data_loc"):
            decl = f"__u32 {field}"
        if offset > at:
            members.append(f"    char __pad_{at}[{offset - at}];")
        members.append(f"    union {{ {decl}; char __field_{offset}[{size}]; }};")
        checks.append(f'_Static_assert(__builtin_offsetof(struct {name}, {field}) == {offset}, "{event}.{field}");')
        at = offset + size
    return "\n".join([f"struct {name} {{", *members, "};", *checks]) + "\n"


def tracepoint_structs(preprocessed: str) -> str:
    """The argument structs of every TRACEPOINT_PROBE a preprocessed program compiles."""
    used = sorted(set(_TRACEPOINT.findall(preprocessed)))
    return "".join(tracepoint_struct(category, event, _tracefs_format(category, event)) for category, event in used)


def compile_flags(defines: dict | None = None) -> list[str]:
    """clang's flags for a CO-RE object, -I folders aside."""
    flags = ["-target", "bpf", "-O2", "-g", "-mcpu=v3", "-DSDXFER_CORE",
             "-include", str(C_INCLUDE_DIR / "sdxfer_core.h")]
    arch = _KERNEL_ARCH.get(platform.machine())
    if arch:
        flags.append(f"-D__TARGET_ARCH_{arch}")
    flags += [define_flag(name, value) for name, value in sorted((defines or {}).items(), key=lambda kv: str(kv[0]))]
    return flags + list(STRICT_CFLAGS)


def build(program: str | Path, out: str | Path, *, schema: str | Path | None = None, defines: dict | None = None,
          vmlinux: str | Path | None = None, transport: str | None = None) -> str:
    """Compiles `program` (a file) into the CO-RE object `out`; returns clang's
    warnings. ProbeError: one line, or clang's messages, which name the
    program's files and lines. `transport` None: as the defines say (the
    ring buffer with SDXFER_RINGBUF, else perf)."""
    defines = dict(defines or {})
    if transport == "ringbuf":
        defines.setdefault("SDXFER_RINGBUF", None)
    elif transport == "perf" and "SDXFER_RINGBUF" in defines:
        raise ProbeError("-D SDXFER_RINGBUF asks for the ring buffer: leave it out for --transport perf")
    elif transport not in (None, "perf"):
        raise ProbeError(f"unknown transport {transport!r}: choose ringbuf or perf")
    with _compiler(program, schema, defines, vmlinux) as (command, folder):
        # Preprocessed first, without tracepoint structs: which tracepoints it attaches to.
        done = _clang(command + ["-E"])
        (folder / "sdxfer_tracepoints.h").write_text(tracepoint_structs(done.stdout))
        done = _clang(command + ["-c", "-o", str(out)])
    return done.stderr


def preprocess(program: str | Path, *, schema: str | Path | None = None, defines: dict | None = None,
               vmlinux: str | Path | None = None) -> str:
    """The text clang compiles for `program` with these defines (tracepoint structs left out)."""
    with _compiler(program, schema, defines, vmlinux) as (command, _):
        return _clang(command + ["-E", "-P"]).stdout


@contextlib.contextmanager
def _compiler(program, schema, defines, vmlinux):
    """clang's command for `program` (its output options to add) and the private
    folder its generated headers are in, for as long as the block runs."""
    if not Path(program).is_file():
        raise ProbeError(f"cannot read the program {program}: no such file")
    program_dir = Path(program).resolve().parent
    flags = compile_flags(defines)
    clang = _tool("clang", "clang")
    code = schema_code(schema)
    header = Path(vmlinux) if vmlinux is not None else vmlinux_header()
    with tempfile.TemporaryDirectory(prefix="sdxfer-build-") as folder:
        folder = Path(folder)
        try:
            shutil.copyfile(header, folder / "vmlinux.h")
        except OSError as exc:
            raise ProbeError(f"cannot read {header}: {exc.strerror}") from None
        (folder / "xfer.h").write_text(code.header)
        (folder / "sdxfer_tracepoints.h").write_text("")
        # The schema's xfer.h first (as for BCC), then the program's folder, sdxfer's, bpf/.
        yield [clang, *flags, *[f"-I{d}" for d in (folder, program_dir, C_INCLUDE_DIR, BPF_DIR)], str(program)], folder


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/sdxfer/objects (else ~/.cache/...): objects built from C text, by content."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProbeError(f"cannot make the cache folder {base}: {exc.strerror}") from None
    return _private_dir(_private_dir(base / "sdxfer") / "objects")


def clang_available() -> bool:
    return shutil.which("clang") is not None


def cached_object(program: str | Path, *, schema: str | Path | None = None, defines: dict | None = None) -> tuple[Path, bool]:
    """`program` (a file or C text) built by clang into a CO-RE object, kept in
    the user's cache folder under a digest of everything that goes into it;
    (the object, whether it was there already)."""
    source, where, dirs = program_source(program)
    code = schema_code(schema)
    find = include_finder({"xfer.h": code.header}, dirs + [C_INCLUDE_DIR, BPF_DIR])
    clang = Path(_tool("clang", "clang")).resolve().stat()
    digest = hashlib.sha256()
    for part in (amalgamate(source, find, where), (C_INCLUDE_DIR / "sdxfer_core.h").read_text(), vmlinux_header().name,
                 " ".join(compile_flags(defines)), f"clang {clang.st_size} {clang.st_mtime_ns}"):
        digest.update(part.encode() + b"\0")
    cache = user_cache_dir()
    target = cache / f"{digest.hexdigest()[:32]}.bpf.o"
    if target.is_file() and not target.is_symlink():
        return target, True
    with tempfile.TemporaryDirectory(prefix="sdxfer-text-") as folder:
        if where == PROGRAM_TEXT:  # C text: compiled as a file, messages still call it <program text>
            program = Path(folder) / "program.bpf.c"
            program.write_text(f'#line 1 "{PROGRAM_TEXT}"\n{source}')
        fd, partial = tempfile.mkstemp(dir=cache, suffix=".partial")
        os.close(fd)
        try:
            build(program, partial, schema=schema, defines=defines)
            os.replace(partial, target)  # whole: a concurrent reader never sees half an object
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return target, False


def _clang(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ProbeError(done.stderr.strip() or f"clang failed (exit status {done.returncode})")
    return done
