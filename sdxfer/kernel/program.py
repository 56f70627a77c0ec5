"""A probe's program text, assembled as BCC will compile it.

    program (path or text) + the schema's generated xfer.h + sdxfer/include/
      + helpers from bpf/     -> one text (BCC rewrites map calls only in the
                                 main file, so quoted includes are inlined)
    BTF_OFF_/BTF_SIZE_ names  -> -D values from the running kernel's BTF
    transport, defines        -> -D flags

Nothing here loads anything: `assemble` is what Sensor compiles and what
`--ebpf` prints.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable, NamedTuple

from ..paths import BPF_DIR, C_INCLUDE_DIR
from ..runtime import record
from ..errors import ProbeError

TRANSPORTS = ("perf", "ringbuf")
BTF_PATH = "/sys/kernel/btf/vmlinux"
# A call of a function nobody declared would reach LLVM's BPF back end, which
# exits the process; as an error, clang stops first and says which.
STRICT_CFLAGS = ("-Werror=implicit-function-declaration",)

_NOT_CONTINUED = r"(?<!\\\n)(?<!\\\r\n)"  # at a line's start: the line before does not end in a backslash
_NOT_CONTINUING = r"(?<!\\)(?<!\\\r)$"  # at a line's end: it does not end in one
_DIRECTIVE_LINES = re.compile(
    # an include amalgamate may inline
    r'^[ \t]*#[ \t]*include[ \t]+"(?P<include>[^"]+)"[ \t]*$'
    # a TRACEPOINT_PROBE(category, event) line: BCC writes the tracepoint's args
    # struct into the text before the function it makes
    rf"|^{_NOT_CONTINUED}(?P<probe>[ \t]*TRACEPOINT_PROBE[ \t]*\([^()\n]*\)[^\n]*{_NOT_CONTINUING})"
    # a conditional directive, where a marker inside a group left out (not obeyed) stops counting
    rf"|^{_NOT_CONTINUED}(?P<conditional>[ \t]*#[ \t]*(?:if|ifdef|ifndef|elif|elifdef|elifndef|else|endif)\b"
    rf"[^\n]*{_NOT_CONTINUING})",
    re.MULTILINE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PROGRAM_TEXT = "<program text>"  # what compiler messages call a program given as text


def _line_marker(line: int, where: str) -> str:
    """The compiler counts the next line as `line` of `where`, in its messages."""
    quoted = where.replace("\\", "\\\\").replace('"', '\\"')
    return f'#line {line} "{quoted}"'


def amalgamate(source: str, find: Callable[[str], tuple[str, str] | None], where: str = PROGRAM_TEXT,
               _seen: frozenset = frozenset()) -> str:
    """Replace each `#include "name"` that `find` knows by its text (recursively,
    each file once); other includes are left to the compiler. #line markers
    around each inlined file keep compiler errors at the file and line they
    are in; `where` names `source` in them.

    In a text with a TRACEPOINT_PROBE, a marker also follows each probe's
    line, since BCC writes lines into the text before the probe's function,
    and each conditional directive: a probe's marker in a group the
    preprocessor leaves out is not obeyed, yet its line is counted."""
    probes = any(match.group("probe") for match in _DIRECTIVE_LINES.finditer(source))

    def replace(match: re.Match) -> str:
        after = source.count("\n", 0, match.start()) + 2  # the line after the matched one
        name = match.group("include")
        if name is None:
            return f"{match.group(0)}\n{_line_marker(after, where)}" if probes else match.group(0)
        found = find(name)
        if found is None:
            return match.group(0)
        if name in _seen:
            return f"/* {name} already included above */"
        path, text = found
        return (f"/* begin {name} */\n{_line_marker(1, path)}\n{amalgamate(text, find, path, _seen | {name}).rstrip()}\n"
                f"/* end {name} */\n{_line_marker(after, where)}")

    return _DIRECTIVE_LINES.sub(replace, source)


def include_finder(files: dict[str, str], dirs: list[Path]) -> Callable[[str], tuple[str, str] | None]:
    """Looks a quoted include up among in-memory files, then in each folder:
    (where it was found, its text)."""

    def find(name: str) -> tuple[str, str] | None:
        if name in files:
            return name, files[name]
        for folder in dirs:
            path = folder / name
            if path.is_file():
                return str(path), path.read_text()
        return None

    return find


class SchemaCode(NamedTuple):
    """The two sides generated from one schema."""

    header: str  # xfer.h
    decoder: object  # sdxfer.Decoder
    event_names: tuple[str, ...]  # schema order, which indexes the drop counters

    @property
    def spans(self) -> bool:
        """Some field may continue beyond its record."""
        return any(v.spans for cls in self.decoder.events.values() for v in cls.versions)

    def buffer_pages(self, pages: int | None, default: int) -> int:
        """`pages` as given, else the default for this schema."""
        return pages if pages is not None else record.SPANNING_BUFFER_PAGES if self.spans else default


def schema_code(schema: str | Path | None) -> SchemaCode:
    """The shipped schema's committed files, or any schema generated in memory
    (once per version of the schema and its lock: a tool asks several times at start)."""
    if schema is None:
        from .. import default_decoder
        from ..generated import events

        header = (Path(events.__file__).parent / "xfer.h").read_text()
        return SchemaCode(header, default_decoder(), tuple(spec.cls.name for spec in events.EVENTS))
    return _generated_code(str(schema), _file_stamp(Path(schema)), _file_stamp(Path(schema).with_suffix(".lock")))


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """What changes when a file is written (None: it is not there, which generation reports)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=8)
def _generated_code(schema: str, *stamps) -> SchemaCode:
    from ..codegen import SchemaError, generate  # the generator is needed only for other schemas
    from ..stream.decoder import Decoder

    try:
        files = generate(schema)
    except SchemaError as exc:
        raise ProbeError(f"schema {schema}: {'; '.join(str(p) for p in exc.problems)}") from None
    module = Decoder.module_from_source(files["events.py"], schema)
    return SchemaCode(files["xfer.h"], Decoder.from_module(module), tuple(spec.cls.name for spec in module.EVENTS))


def define_flag(name: str, value) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ProbeError(f"define {name!r} is not a C macro name")
    if name.startswith(("BTF_OFF_", "BTF_SIZE_")):
        raise ProbeError(f"define {name}: BTF_OFF_ and BTF_SIZE_ names are resolved from the kernel's BTF, not given")
    if value is None or value is True:
        return f"-D{name}"
    if isinstance(value, bool) or not isinstance(value, (int, str)) or "\n" in str(value):
        raise ProbeError(f"define {name}: value {value!r} is not an integer or one line of text")
    return f"-D{name}={value}"


def transport_flags(transport: str, ringbuf_pages: int) -> list[str]:
    """The one place a transport is checked."""
    if transport not in TRANSPORTS:
        raise ProbeError(f"unknown transport {transport!r}: choose {' or '.join(TRANSPORTS)}")
    if transport == "perf":
        return []
    if ringbuf_pages < 1 or ringbuf_pages & (ringbuf_pages - 1):
        raise ProbeError(f"ring buffer pages must be a power of two, not {ringbuf_pages}")
    return ["-DSDXFER_RINGBUF", f"-DSDXFER_RINGBUF_PAGES={ringbuf_pages}"]


def kernel_values(text: str, btf_path: str = BTF_PATH) -> dict[str, int]:
    """Every BTF_OFF_/BTF_SIZE_ macro the text uses, resolved from the running kernel."""
    from . import offsets
    from .btf import BtfError, load

    names = offsets.macros_used(text)
    if not names:
        return {}
    try:
        btf = load(btf_path)
    except BtfError as exc:
        raise ProbeError(str(exc)) from None
    return offsets.resolve(btf, names)


class Assembly(NamedTuple):
    text: str  # what BCC compiles
    cflags: list[str]
    code: SchemaCode

    def with_defines(self) -> str:
        """The text with its -D flags written out as #defines: exactly what runs."""
        defines = "\n".join("#define " + flag[2:].replace("=", " ", 1) for flag in self.cflags if flag.startswith("-D"))
        return f"/* -D macros passed by sdxfer */\n{defines}\n\n{self.text}"


def program_source(program: str | Path) -> tuple[str, str, list[Path]]:
    """(text, what compiler messages call it, folders its quoted includes may
    come from): a path, or program text itself."""
    if isinstance(program, str) and "\n" in program:
        return program, PROGRAM_TEXT, []
    path = Path(program)
    try:
        return path.read_text(), str(path), [path.resolve().parent]
    except OSError as exc:
        raise ProbeError(f"cannot read the program {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProbeError(f"the program {path} is not UTF-8 text") from None


def assemble(program: str | Path, *, schema: str | Path | None = None, transport: str = "perf",
             defines: dict | None = None, ringbuf_pages: int | None = None,
             btf_path: str = BTF_PATH) -> Assembly:
    """`ringbuf_pages` None: the default for the schema (larger where fields span records)."""
    source, where, dirs = program_source(program)
    code = schema_code(schema)
    flags = transport_flags(transport, code.buffer_pages(ringbuf_pages, record.RINGBUF_PAGES))
    flags += [define_flag(name, value) for name, value in sorted((defines or {}).items(), key=lambda kv: str(kv[0]))]
    find = include_finder({"xfer.h": code.header}, dirs + [C_INCLUDE_DIR, BPF_DIR])
    text = f"{_line_marker(1, where)}\n{amalgamate(source, find, where)}"
    kernel = kernel_values(text, btf_path)
    flags = [f"-D{name}={value}" for name, value in sorted(kernel.items())] + flags + list(STRICT_CFLAGS)
    return Assembly(text, flags, code)
