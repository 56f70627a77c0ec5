"""Every identifier generated code derives from schema names, made here.

The renderers ask this module for names and hand them to the templates,
which only print them. The schema check asks it which names an event would
take (`event_c_names`, `unique_names`) and whether the C runtime already
declares one (`RESERVED_C_NAMES`).
"""
from __future__ import annotations

import re

from ..paths import C_INCLUDE_DIR, TEMPLATES_DIR
from ..runtime import record

# ---- C: the generated xfer.h -------------------------------------------------


def c_struct(event: str) -> str:
    """The record's struct tag: struct sdxfer_exec."""
    return f"sdxfer_{event}"


def c_print(event: str) -> str:
    """The packer a probe calls."""
    return f"{event}_print"


def c_pack(event: str) -> str:
    """The function behind <event>_print where fields span records (it takes `spans` first)."""
    return f"{event}_pack"


def c_id_macro(event: str) -> str:
    return f"SDXFER_EVENT_{event.upper()}"


def c_index_macro(event: str) -> str:
    return f"SDXFER_INDEX_{event.upper()}"


def c_max_macro(event: str, field: str) -> str:
    return f"SDXFER_MAX_{event.upper()}_{field.upper()}"


def c_entry_struct(event: str, field: str) -> str:
    """An array field's entry: struct sdxfer_exec_ancestors_entry."""
    return f"sdxfer_{event}_{field}_entry"


def c_length_param(field: str) -> str:
    """A packer's byte count of a blob, ublob or strlist parameter."""
    return f"{field}_len"


def c_count_param(field: str) -> str:
    """A packer's entry count of an array parameter."""
    return f"{field}_count"


def c_rest_local(field: str) -> str:
    """A packer's local holding what a spanning field leaves to continuation records."""
    return f"rest_{field}"


def c_source_macro(source: str) -> str:
    return f"SDXFER_SOURCE_{source.upper()}"


def c_source_reader(source: str) -> str:
    return f"sdxfer_source_{source}"


# The structs the record format and the runtime share, by what they hold.
SHARED_STRUCTS = ("head", "var", "sockaddr", "creds", "cpu_state")


def c_shared_struct(kind: str) -> str:
    assert kind in SHARED_STRUCTS, kind
    return f"sdxfer_{kind}"


def event_c_names(event: str) -> tuple[str, ...]:
    """The C identifiers an event's name alone makes."""
    return (c_struct(event), c_print(event), c_pack(event), c_id_macro(event), c_index_macro(event))


# ---- Python: the generated events.py -------------------------------------------


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def py_class(event: str) -> str:
    """exec -> ExecEvent, creds_change -> CredsChangeEvent."""
    return _camel(event) + "Event"


def py_entry_class(event: str, field: str) -> str:
    return _camel(f"{event}_{field}") + "Entry"


def py_entry_var(event: str, field: str) -> str:
    return f"{event.upper()}_{field.upper()}_ENTRY"


def py_version_struct(event: str, version: int) -> str:
    """The construct Struct of one published version."""
    return f"{event.upper()}_V{version}_STRUCT"


def py_version_fixed(event: str, version: int) -> str:
    """The struct.Struct of one published version's header and fixed part."""
    return f"_{event.upper()}_V{version}_FIXED"


def py_decode_function(event: str, version: int) -> str:
    return f"_decode_{event}_v{version}"


def py_value(field: str) -> str:
    """A decoder's local holding a field's value."""
    return f"f_{field}"


def py_descriptor(field: str) -> tuple[str, str, str]:
    """A decoder's locals holding a variable field's descriptor: off, len, lost."""
    return f"d_{field}_off", f"d_{field}_len", f"d_{field}_lost"


def field_names(event: str, field) -> tuple[str, ...]:
    """Names an event's field makes (a codegen.model.Field): no other event's
    or field's may be the same, as `a` with `b_c` and `a_b` with `c` would be."""
    names = (c_max_macro(event, field.name),) if field.type.variable else ()
    if field.type.entries:
        names += (c_entry_struct(event, field.name), py_entry_var(event, field.name),
                  py_entry_class(event, field.name), f"Go type {go_entry_type(event, field.name)}")
    return names + (f"Go field {go_event_type(event)}.{go_field(field.name)}",)


def unique_names(event: str) -> tuple[str, ...]:
    """Names two events may not share (names differing only in case or
    underscores make the same macro or class)."""
    return c_struct(event), c_id_macro(event), py_class(event), f"Go type {go_event_type(event)}"


# ---- what the C runtime already declares ----------------------------------------

_COMMENT_OR_STRING = re.compile(r'/\*.*?\*/|//[^\n]*|"[^"\n]*"', re.DOTALL)
_RUNTIME_NAME = re.compile(r"\b(?:sdxfer|SDXFER)_\w*[A-Za-z0-9]\b(?!\s*##)")


def runtime_names(text: str) -> set[str]:
    """sdxfer_* and SDXFER_* identifiers in C text, comments and strings left
    out (a token pasted with ## is a prefix, not a name)."""
    return set(_RUNTIME_NAME.findall(_COMMENT_OR_STRING.sub(" ", text)))


def _reserved_c_names() -> frozenset[str]:
    """Read from the runtime headers and the xfer.h template, so the set
    follows them; the names the template prints from sdxfer.runtime.record
    (macros, maps, the continuation program) come from there."""
    names: set[str] = set()
    for path in sorted(C_INCLUDE_DIR.glob("*.h")) + [TEMPLATES_DIR / "xfer.h.j2"]:
        names |= runtime_names(path.read_text())
    names |= {name for name, _ in record.C_MACROS} | {c_shared_struct(kind) for kind in SHARED_STRUCTS}
    names |= {record.SCRATCH_MAP, record.CPU_MAP, record.DROPS_MAP, record.EVENTS_MAP, record.REST_MAP,
              record.REST_PROGRAMS_MAP, record.REST_PROGRAM, record.FOLLOWED_MAP, record.CGROUP_MAP,
              record.EXE_PATHS_MAP, record.EXE_LONG_PATHS_MAP, record.EXE_WALKS_MAP, record.EXE_FORGET_PROGRAM,
              *record.FOLLOW_PROGRAMS}
    return frozenset(names)


RESERVED_C_NAMES = _reserved_c_names()


def reserved_clash(event: str) -> str | None:
    """The runtime name an event's generated C names would clash with, if any."""
    return next((name for name in event_c_names(event) if name in RESERVED_C_NAMES), None)


# ---- Go: a package from `sdxfer gen --go` ------------------------------------------

# Words Go spells in capitals (Go's own style: ID, not Id).
GO_INITIALISMS = frozenset({"id", "pid", "tid", "ppid", "pgid", "sid", "uid", "gid", "euid", "egid", "suid", "sgid",
                            "fsuid", "fsgid", "cpu", "fd", "ip", "tcp", "udp", "dns", "ssh", "ld", "url", "tls"})
# Exported names the package's own code declares: an event or entry type never takes one.
GO_RUNTIME_NAMES = frozenset({"Header", "Record", "Event", "Text", "Loss", "SockAddr", "Creds", "Decode",
                              "DecodeError", "Reassembler", "ReassemblyStats", "NewReassembler", "SchemaDigest"})


def go_name(name: str) -> str:
    """An exported Go identifier from a schema name: cgroup_id -> CgroupID, ssh_connection -> SSHConnection."""
    return "".join(part.upper() if part in GO_INITIALISMS else part.capitalize() for part in name.split("_"))


def go_event_type(event: str) -> str:
    """exec -> Exec; a name the package declares itself gets Event after it (header -> HeaderEvent)."""
    name = go_name(event)
    return name + "Event" if name in GO_RUNTIME_NAMES else name


def go_entry_type(event: str, field: str) -> str:
    """An array field's entry: ExecAncestorsEntry."""
    return go_name(f"{event}_{field}") + "Entry"


# What every event type has already: the embedded Record and the Event interface's methods.
GO_EVENT_MEMBERS = frozenset({"Record", "EventName", "Head", "Truncated", "Missing", "Newer", "MarshalJSON"})


def go_field(field: str) -> str:
    """An event's field; one named as what every event has already gets _ after it (event_name -> EventName_)."""
    name = go_name(field)
    return name + "_" if name in GO_EVENT_MEMBERS else name


def go_spec(event: str) -> str:
    """The unexported table describing an event's versions."""
    return go_name(event)[0].lower() + go_name(event)[1:] + "Spec"
