"""Renderers: the layout, printed as C, Python and Markdown.

Everything a template prints (declarations, statements, format strings) is
computed here from the `Layout`; the templates only loop and print.
"""
from __future__ import annotations

import os
import re
import struct

import jinja2

from ..runtime.record import (
    C_MACROS,
    CONTINUATION,
    CONTINUATION_PAYLOAD_OFF,
    CGROUP_MAP,
    CPU_MAP,
    CPU_STATE,
    CREDS_MEMBERS,
    DESCRIPTOR,
    DESCRIPTOR_FORMAT,
    DESCRIPTOR_SIZE,
    DROPS_MAP,
    EVENTS_MAP,
    EXE_FORGET_PROGRAM,
    EXE_FORGET_RAW_TRACEPOINT,
    EXE_LONG_PATHS_MAP,
    EXE_PATHS_MAP,
    EXE_WALKS_MAP,
    FOLLOW_FORK_PROGRAM,
    FOLLOW_FREE_PROGRAM,
    FOLLOW_RAW_TRACEPOINTS,
    FOLLOWED_MAP,
    HEADER,
    HEADER_FORMAT,
    HEADER_OFFSETS,
    HEADER_SIZE,
    LAYOUT_VERSION,
    REST_MAP,
    REST_PROGRAM,
    REST_PROGRAMS_MAP,
    REST_STEPS,
    SCRATCH_MAP,
    SCRATCH_SLOTS,
    SOCKADDR,
    SOCKADDR_SIZE,
    VARIABLE_DECODING,
    continuation_chunk,
)
from ..paths import TEMPLATES_DIR
from ..runtime import API_VERSION
from . import naming
from .golang import go_context, go_package_name
from .layout import EventLayout, Layout, Member, type_text
from .model import SOURCES, TYPES, Field

OUTPUT_FILES = ("xfer.h", "events.py", "LAYOUT.md")
# Where `sdxfer gen` writes the Go package beside the other files (generated/go/events:
# import path sdxfer/generated/go/events in go.mod's module).
GO_PACKAGE = "events"
GO_PACKAGE_DIR = f"go/{GO_PACKAGE}"

C_INT = {"u8": "__u8", "u16": "__u16", "u32": "__u32", "u64": "__u64",
         "s8": "__s8", "s16": "__s16", "s32": "__s32", "s64": "__s64", "ipv4": "__u32"}
C_STRUCT = {kind: f"struct {naming.c_shared_struct(kind)}" for kind in ("sockaddr", "creds")}
PY_FORMAT = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s8": "b", "s16": "h", "s32": "i", "s64": "q"}
# Fixed types whose struct value (bytes) becomes its Python value through rt.<type>().
PY_CONVERTED = ("ipv4", "ipv6", "sockaddr", "creds", "chars")
CONSTRUCT = {"u8": "Int8ul", "u16": "Int16ul", "u32": "Int32ul", "u64": "Int64ul",
             "s8": "Int8sl", "s16": "Int16sl", "s32": "Int32sl", "s64": "Int64sl",
             "sockaddr": "rt.SOCKADDR", "creds": "rt.CREDS"}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _c_decl(m: Member) -> str:
    f = m.field
    if f is None:
        return f"__u8 {m.name}[{m.size}];"
    kind = f.type.name
    if f.type.variable:
        return f"struct {naming.c_shared_struct('var')} {f.name};"
    if kind in C_INT:
        return f"{C_INT[kind]} {f.name};"
    if kind in C_STRUCT:
        return f"{C_STRUCT[kind]} {f.name};"
    if f.type.text:
        return f"char {f.name}[{m.size}];"
    return f"__u8 {f.name}[{m.size}];"  # ipv6, bytes


def _c_params(e: EventLayout) -> list[str]:
    params = ["void *ctx"]
    for f in e.event.fields:
        kind = f.type.name
        if f.source:
            continue  # the packer fills it
        if f.type.takes_count:
            params += [f"const void *{f.name}", f"__u32 {naming.c_count_param(f.name)}"]
        elif kind in C_INT:
            params.append(f"{C_INT[kind]} {f.name}")
        elif kind == "strlist":
            params += [f"const char *{f.name}", f"__u32 {naming.c_length_param(f.name)}"]
        elif f.type.takes_length:
            params += [f"const void *{f.name}", f"__u32 {naming.c_length_param(f.name)}"]
        elif f.type.variable:
            params.append(f"const char *{f.name}")
        else:
            assert f.type.by_pointer
            params.append(f"const void *{f.name}")
    return params


# Sources a packer copies by a function of their own (sdxfer_sources.h): its
# arguments are sdxfer_put_str's with the source's `now` for the text.
SOURCE_PUTTERS = {"comm": "sdxfer_put_source_comm", "exe_path": "sdxfer_put_source_exe_path"}


def _c_stores(e: EventLayout) -> list[str]:
    stores = [f"rec->head.version = {e.version};"]
    for m in e.members:
        f = m.field
        if f is None:
            stores.append(f"__builtin_memset(rec->{m.name}, 0, {m.size});")  # slot 0 holds an earlier record's bytes
        elif f.type.name in C_INT:
            stores.append(f"rec->{f.name} = {_c_value(f)};")
        elif not f.type.variable:
            stores.append(f"sdxfer_put_fixed(&rec->{f.name}, {f.name}, {m.size});")
    for v in e.variables:
        f = v.field
        if f.type.takes_count:
            put, length = "blob", f", sdxfer_entry_bytes({naming.c_count_param(f.name)}, {f.entry_size})"
        elif f.type.takes_length:
            put, length = "blob", f", {naming.c_length_param(f.name)}"
        else:
            put, length = "str", ""
        if f.source in SOURCE_PUTTERS:
            stores.append(f"cursor = {SOURCE_PUTTERS[f.source]}(rec, cursor, {v.cursor_max}, &rec->{f.name}, &now,"
                          f" {f.max_bytes});")
        else:
            stores.append(f"cursor = sdxfer_put_{put}(rec, cursor, {v.cursor_max}, &rec->{f.name}, {_c_value(f)}{length},"
                          f" {f.max_bytes}, {int(f.type.from_user)});")
        if f.spans:
            stores.append(f"sdxfer_rest_of(&{naming.c_rest_local(f.name)}, &rec->{f.name}, {f.name},"
                          f" {naming.c_length_param(f.name)}, {f.max});")
    return stores


def _c_spans(e: EventLayout, chunk: int) -> list[dict]:
    """Fields whose bytes beyond max go in continuation records, and the loop bound of each."""
    return [{"rest": naming.c_rest_local(f.name), "index": i, "total": f.total, "chunks": -(-(f.total - f.max) // chunk),
             "from_user": int(f.type.from_user)} for i, f in enumerate(e.event.fields) if f.spans]


def _c_value(f: Field) -> str:
    """What the packer stores: its parameter, or for a common field its source."""
    return f"{naming.c_source_reader(f.source)}(&now)" if f.source else f.name


def _c_entry_struct(event: str, f: Field) -> tuple[str, list[str], list[dict]]:
    """An array's entry as a C struct, with the asserts that hold it to the layout."""
    name = naming.c_entry_struct(event, f.name)
    members, asserts, offset = [], [], 0
    for entry in f.entries:
        members.append(_c_decl(Member(entry.name, offset, entry.fixed_size, entry)))
        asserts.append({"expr": f"__builtin_offsetof(struct {name}, {entry.name}) == {offset}",
                        "what": f"{event}.{f.name} entry {entry.name} at offset {offset}"})
        offset += entry.fixed_size
    asserts.append({"expr": f"sizeof(struct {name}) == {f.entry_size}", "what": f"{event}.{f.name} entries are {f.entry_size} bytes"})
    return name, members, asserts


def _c_source_type(kind: str) -> str:
    return "const char *" if TYPES[kind].variable else C_INT[kind]


def _c_shared_structs() -> list[tuple[str, list[str]]]:
    """The structs the record format and the runtime share, from sdxfer.record."""
    return [
        (naming.c_shared_struct("head"), [f"{ctype} {name};" for name, ctype, _ in HEADER]),
        (naming.c_shared_struct("var"), [f"{ctype} {name};" for name, ctype, _ in DESCRIPTOR]),
        (naming.c_shared_struct("sockaddr"), [f"{decl};" for _, decl in SOCKADDR]),
        (naming.c_shared_struct("creds"), [f"__u32 {name};" for name in CREDS_MEMBERS]),
        (naming.c_shared_struct("cpu_state"), [f"{ctype} {name};" for name, ctype in CPU_STATE]),
    ]


def _c_context(layout: Layout, banner: str) -> dict:
    events, asserts, entry_structs = [], [], []
    chunk = continuation_chunk(layout.schema.slot_size)
    for e in layout.events:
        event = e.event.name
        struct_name = f"struct {naming.c_struct(event)}"
        for v in e.variables:
            if v.field.type.entries:
                name, members, entry_asserts = _c_entry_struct(e.event.name, v.field)
                entry_structs.append((name, members))
                asserts += entry_asserts
        for m in e.members:
            asserts.append({"expr": f"__builtin_offsetof({struct_name}, {m.name}) == {m.offset}",
                            "what": f"{e.event.name}.{m.name} at offset {m.offset}"})
        asserts.append({"expr": f"sizeof({struct_name}) >= {e.payload_off}",
                        "what": f"{e.event.name}: fixed part is {e.payload_off} bytes"})
        events.append({
            "name": e.event.name,
            "struct": naming.c_struct(event),
            "print": naming.c_print(event),
            "pack": naming.c_pack(event),
            "id_macro": naming.c_id_macro(event),
            "index_macro": naming.c_index_macro(event),
            "id": e.event.id,
            "index": e.index,
            "doc": _c_comment(e.event.doc) or "no description",
            "members": ["struct sdxfer_head head;"] + [_c_decl(m) for m in e.members],
            "params": _c_params(e),
            "stores": _c_stores(e),
            "spans": _c_spans(e, chunk),
            "version": e.version,
            "has_variables": bool(e.variables),
            "reads_sources": any(f.source for f in e.event.fields),
            "limits": [f"{naming.c_max_macro(event, v.field.name)} {v.field.max}" for v in e.variables],
            "payload_off": e.payload_off,
            "fingerprint": f"0x{e.fingerprint:08x}U",
            "size_expr": f"cursor & 0x{e.size_mask:x}" if e.variables else str(e.payload_off),
        })
    header_asserts = [{"expr": f"sizeof(struct sdxfer_head) == {HEADER_SIZE}", "what": f"header is {HEADER_SIZE} bytes"},
                      {"expr": f"sizeof(struct sdxfer_var) == {DESCRIPTOR_SIZE}", "what": f"descriptor is {DESCRIPTOR_SIZE} bytes"},
                      {"expr": f"sizeof(struct sdxfer_sockaddr) == {SOCKADDR_SIZE}", "what": f"sockaddr is {SOCKADDR_SIZE} bytes"},
                      {"expr": f"sizeof(struct sdxfer_creds) == {4 * len(CREDS_MEMBERS)}", "what": "creds are 8 u32"}]
    header_asserts += [{"expr": f"__builtin_offsetof(struct sdxfer_head, {name}) == {HEADER_OFFSETS[name]}",
                        "what": f"header {name} at offset {HEADER_OFFSETS[name]}"} for name, _, _ in HEADER]
    header_asserts.append({"expr": f"__builtin_offsetof(struct sdxfer_continuation, data) == {CONTINUATION_PAYLOAD_OFF}",
                           "what": f"continuation bytes at offset {CONTINUATION_PAYLOAD_OFF}"})
    asserts = header_asserts + asserts
    # the longest field's chunks, spread over the calls of one tail-call chain
    most_chunks = max((span["chunks"] for e in events for span in e["spans"]), default=0)
    return {
        "banner": banner,
        "schema_path": _display_path(layout.schema.path),
        "digest": layout.schema.digest,
        "layout_version": LAYOUT_VERSION,
        "slot_size": layout.schema.slot_size,
        "macros": C_MACROS,
        "structs": _c_shared_structs(),
        "continuation": [f"{ctype} {name};" for name, ctype, _ in CONTINUATION],
        "chunk": chunk,
        "continuation_mask": f"0x{(1 << (CONTINUATION_PAYLOAD_OFF + chunk).bit_length()) - 1:x}",
        "maps": {"scratch": SCRATCH_MAP, "cpu": CPU_MAP, "drops": DROPS_MAP, "events": EVENTS_MAP,
                 "rest": REST_MAP, "rest_programs": REST_PROGRAMS_MAP, "followed": FOLLOWED_MAP,
                 "cgroup": CGROUP_MAP, "exe_paths": EXE_PATHS_MAP,
                 "exe_long_paths": EXE_LONG_PATHS_MAP, "exe_walks": EXE_WALKS_MAP},
        "rest_program": REST_PROGRAM,
        "exe_forget": {"program": EXE_FORGET_PROGRAM, "raw_tracepoint": EXE_FORGET_RAW_TRACEPOINT},
        "follow": {kind: {"program": program, "raw_tracepoint": FOLLOW_RAW_TRACEPOINTS[program]}
                   for kind, program in (("fork", FOLLOW_FORK_PROGRAM), ("free", FOLLOW_FREE_PROGRAM))},
        "has_spans": most_chunks > 0,
        "chunks_per_step": -(-most_chunks // REST_STEPS),
        "sources": [{"name": source, "macro": naming.c_source_macro(source), "reader": naming.c_source_reader(source),
                     "putter": SOURCE_PUTTERS.get(source)}
                    for source in sorted({f.source for e in layout.events for f in e.event.fields if f.source})],
        "host_sources": [(_c_source_type(kind), name) for name, kind in SOURCES.items()],
        "entry_structs": entry_structs,
        "events": events,
        "asserts": asserts,
    }


def _py_format(m: Member) -> str:
    f = m.field
    if f is None:
        return f"{m.size}x"
    if f.type.variable:
        return DESCRIPTOR_FORMAT
    return PY_FORMAT.get(f.type.name, f"{m.size}s")


def _py_construct(m: Member) -> str:
    f = m.field
    if f is None:
        return f"Padding({m.size})"
    if f.type.variable:
        return f'"{m.name}" / rt.VAR'
    return f'"{m.name}" / {CONSTRUCT.get(f.type.name, f"Bytes({m.size})")}'


def _py_variable_lines(e: EventLayout, v) -> list[str]:
    """Straight-line decoding of one variable field (no calls on the common path).

    Lists (strlist, array) are checked here and built on first read
    (rt.Deferred, on a copy of their bytes, so a reused buffer cannot change them)."""
    name = v.field.name
    (off, length, _), value = naming.py_descriptor(name), naming.py_value(name)
    field_bytes = f"buf[{off}:{off} + {length}]"
    entries = naming.py_entry_var(e.event.name, name)
    decoding = VARIABLE_DECODING[v.field.type.name]
    convert = {
        "list": f"rt.Deferred(rt.split_list, bytes({field_bytes}), 0, {length})",
        "bytes": f"bytes({field_bytes})",
        "text": f'str({field_bytes}, "utf-8", "surrogateescape")',
        "entries": f"rt.Deferred({entries}.decode, bytes({field_bytes}))",
    }[decoding]
    # payload_off, not the layout's: equal to it unless the record is of a newer version
    lines = [
        f"if {off}:",
        f"    if {off} < payload_off or {off} + {length} > size:",
        f'        rt.bad_field("{name}", {off}, {length}, payload_off, size)',
    ]
    if decoding == "entries":
        lines += [f"    if {length} % {v.field.entry_size}:", f"        {entries}.bad_length({length})"]
    return lines + [
        f"    {value} = {convert}",
        f"elif {length}:",
        f'    rt.bad_field("{name}", {off}, {length}, payload_off, size)',
        "else:",
        f"    {value} = None",
    ]


def _py_lost_lines(e: EventLayout) -> list[str]:
    """The lost map, built only for a record that lost bytes (most lose none)."""
    lines = []
    for v in e.variables:
        name, lost = v.field.name, naming.py_descriptor(v.field.name)[2]
        lines += [f"if {lost}:", f'    lost["{name}"] = None if {lost} == rt.LOST_UNKNOWN else {lost}']
    return lines


def _py_version(e: EventLayout, current: EventLayout) -> dict:
    """The straight-line decoder of one published version; fields it lacks are None."""
    targets, lines = [name for name, _, _ in HEADER], []
    for m in e.members:
        f = m.field
        if f is None:
            continue
        if f.type.variable:
            targets += naming.py_descriptor(f.name)
        else:
            value = naming.py_value(f.name)
            targets.append(value)
            if f.type.name in PY_CONVERTED:
                lines.append(f"{value} = rt.{f.type.name}({value})")
    for v in e.variables:
        lines += _py_variable_lines(e, v)
    fmt = HEADER_FORMAT + "".join(_py_format(m) for m in e.members)
    assert struct.calcsize(fmt) == e.payload_off
    known = len(e.event.fields)
    return {
        "version": e.version,
        "struct": naming.py_version_struct(e.event.name, e.version),
        "fixed": naming.py_version_fixed(e.event.name, e.version),
        "function": naming.py_decode_function(e.event.name, e.version),
        "field_count": known,
        "payload_off": e.payload_off,
        "max_size": e.max_size,
        "construct": [_py_construct(m) for m in e.members],
        "format": fmt,
        "targets": targets,
        "lines": lines,
        "field_values": [naming.py_value(f.name) for f in e.event.fields] + ["None"] * (len(current.event.fields) - known),
        "any_lost": " or ".join(naming.py_descriptor(v.field.name)[2] for v in e.variables),
        "lost_lines": _py_lost_lines(e),
        "spans": [f"rt.Span({i}, {v.descriptor_offset}, {v.field.max}, {v.field.total})"
                  for v in e.variables for i, f in enumerate(e.event.fields) if f is v.field and f.spans],
    }


def _py_entry_type(event: str, f: Field) -> dict:
    """An array field's entries: the arguments of rt.EntryType."""
    fmt = "<" + "".join(PY_FORMAT.get(e.type.name, f"{e.fixed_size}s") for e in f.entries)
    construct = ", ".join(f'"{e.name}" / {CONSTRUCT.get(e.type.name, f"Bytes({e.fixed_size})")}' for e in f.entries)
    # one comprehension builds the entries from struct's rows, converting in place
    columns = [f"f{i}" for i in range(len(f.entries))]
    values = [f"rt.{e.type.name}({c})" if e.type.name in PY_CONVERTED else c for e, c in zip(f.entries, columns)]
    rows = f"lambda new, rows: [new(({', '.join(values)},)) for {', '.join(columns)}, in rows]"
    return {"var": naming.py_entry_var(event, f.name), "field": f.name, "class_name": naming.py_entry_class(event, f.name),
            "names": [e.name for e in f.entries], "kinds": [e.type.name for e in f.entries], "format": fmt,
            "construct": f"Struct({construct})", "rows": rows}


def _py_event(e: EventLayout) -> dict:
    name = e.event.name
    return {
        "entry_types": [_py_entry_type(name, v.field) for v in e.variables if v.field.type.entries],
        "name": name,
        "class_name": e.event.class_name,
        "id": e.event.id,
        "doc": repr(_one_line(e.event.doc) or f"The {name} event."),
        "fingerprint": f"0x{e.fingerprint:08x}",
        "payload_off": e.payload_off,
        "max_size": e.max_size,
        "fields": [f.name for f in e.event.fields],
        "kinds": [f.type.name for f in e.event.fields],
        "versions": [_py_version(v, e) for v in e.older + (e,)],
    }


def _py_context(layout: Layout, banner: str) -> dict:
    return {
        "banner": banner,
        "schema_path": _display_path(layout.schema.path),
        "digest": layout.schema.digest,
        "layout_version": LAYOUT_VERSION,
        "runtime_api": API_VERSION,
        "header_size": HEADER_SIZE,
        "common": [f.name for f in layout.schema.common],
        "events": [_py_event(e) for e in layout.events],
    }


def _md_member_type(m: Member) -> str:
    f = m.field
    if f is None:
        return "padding (zero)"
    if f.type.variable:
        return f"{type_text(f)} (max {f.max}) descriptor"
    return type_text(f)


def _md_context(layout: Layout, banner: str) -> dict:
    header = [{"name": name, "offset": HEADER_OFFSETS[name], "size": struct.calcsize(fmt), "type": ctype.strip("_")}
              for name, ctype, fmt in HEADER]
    events = []
    for e in layout.events:
        events.append({
            "name": e.event.name, "id": e.event.id, "doc": _one_line(e.event.doc),
            "fingerprint": f"0x{e.fingerprint:08x}", "payload_off": e.payload_off, "max_size": e.max_size,
            "version": e.version, "older": [{"version": o.version, "payload_off": o.payload_off, "max_size": o.max_size}
                                             for o in e.older],
            "members": [{"name": m.name, "offset": m.offset, "size": m.size, "type": _md_member_type(m),
                         "doc": _md_cell(m.field.doc) if m.field else ""} for m in e.members],
            "variables": [{"name": v.field.name, "max_bytes": v.field.max_bytes, "cursor_max": v.cursor_max}
                          for v in e.variables],
        })
    return {"banner": banner, "schema_path": _display_path(layout.schema.path), "slot_size": layout.schema.slot_size,
            "scratch_slots": SCRATCH_SLOTS,
            "header": header, "header_size": HEADER_SIZE, "events": events}


def _display_path(path: str) -> str:
    # The file name only, so output does not depend on where the schema lives;
    # tame characters only, so it is safe in a C comment, a docstring and Markdown.
    return re.sub(r"[^A-Za-z0-9._+-]", "?", os.path.basename(path))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _c_comment(text: str) -> str:
    return _one_line(text).replace("*/", "* /")


def _md_cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _banner(layout: Layout) -> str:
    return (f"Generated by sdxfer gen from {_display_path(layout.schema.path)}"
            f" (schema sha256 {layout.schema.digest[:16]}). Do not edit.")


def render_python(layout: Layout) -> str:
    return _environment().get_template("events.py.j2").render(_py_context(layout, _banner(layout)))


def render_go(layout: Layout, package: str) -> str:
    """The Go package's one file, package `package`."""
    return _environment().get_template("events.go.j2").render(
        go_context(layout, package, _display_path(layout.schema.path)))


def go_file_name(layout: Layout) -> str:
    """The Go file, named after the schema (letters and digits: no _test or _linux suffix)."""
    return go_package_name(os.path.splitext(_display_path(layout.schema.path))[0], "events") + ".go"


def render_all(layout: Layout) -> dict[str, str]:
    """File name -> text for every generated file."""
    env = _environment()
    banner = _banner(layout)
    return {
        "xfer.h": env.get_template("xfer.h.j2").render(_c_context(layout, banner)),
        "events.py": env.get_template("events.py.j2").render(_py_context(layout, banner)),
        "LAYOUT.md": env.get_template("layout.md.j2").render(_md_context(layout, banner)),
    }

