"""The Go renderer: the layout, printed as one Go package file (`sdxfer gen --go`).

Like render.py, everything the template prints (types, offsets, reads,
JSON writes) is computed here from the `Layout` and sdxfer.runtime.record;
templates/events.go.j2 only loops and prints. The package decodes exactly
what generated/events.py decodes, and an event's JSON is its to_dict().
"""
from __future__ import annotations

import re
import struct

from ..runtime.record import (CONTINUATION, CONTINUATION_ID, CONTINUATION_LAST, CONTINUATION_PAYLOAD_OFF, CREDS_MEMBERS,
                              DESCRIPTOR, EVENTS_MAP, EXE_FORGET_PROGRAM, FILTER_GLOBALS, HEADER, HEADER_SIZE,
                              LOST_UNKNOWN, REASSEMBLY_MAX_PARTS, REST_PROGRAM, REST_PROGRAMS_MAP, RINGBUF_PAGES,
                              SOCKADDR, SPANNING_BUFFER_PAGES)
from . import naming
from .layout import EventLayout, Layout
from .model import Field

GO_INT = {"u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
          "s8": "int8", "s16": "int16", "s32": "int32", "s64": "int64"}
C_SIZE = {"__u8": 1, "__u16": 2, "__u32": 4}
GO_UNSIGNED = {"B": "uint8", "H": "uint16", "I": "uint32", "Q": "uint64"}
VARIABLE_TYPE = {"str": "*Text", "ustr": "*Text", "strlist": "[]Text", "blob": "[]byte", "ublob": "[]byte"}
VARIABLE_READ = {"str": "text", "ustr": "text", "strlist": "list", "blob": "blob", "ublob": "blob"}
FIXED_TYPE = {"ipv4": "netip.Addr", "ipv6": "netip.Addr", "sockaddr": "*SockAddr", "creds": "Creds"}


def _uint_read(fmt: str, buf: str, at: int | str) -> str:
    """A little-endian unsigned integer of struct format `fmt` at buf[at:]."""
    if fmt == "B":
        return f"{buf}[{at}]"
    bits = 8 * struct.calcsize(fmt)
    return f"le.Uint{bits}({buf}[{at}:])"


def _fixed_type(f: Field) -> str:
    kind = f.type.name
    if kind in GO_INT:
        return GO_INT[kind]
    if kind == "bytes":
        return f"[{f.fixed_size}]byte"
    if kind == "chars":
        return "Text"
    return FIXED_TYPE[kind]


def _fixed_read(f: Field, buf: str, at: int) -> str:
    """The Go expression of a fixed field's value at buf[at:]."""
    kind, size = f.type.name, f.fixed_size
    if kind in GO_INT:
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
        read = _uint_read(fmt, buf, at)
        return f"{GO_INT[kind]}({read})" if f.type.signed else read
    if kind == "bytes":
        return f"*(*[{size}]byte)({buf}[{at}:{at + size}])"
    return {"ipv4": "addr4", "ipv6": "addr16", "sockaddr": "sockAddr", "creds": "creds",
            "chars": "chars"}[kind] + f"({buf}[{at}:{at + size}])"


def _json_write(f: Field, value: str) -> str:
    """The statement writing a field's value as to_dict() gives it."""
    kind = f.type.name
    if kind in GO_INT:
        return f"j.{'int' if f.type.signed else 'uint'}({'int64' if f.type.signed else 'uint64'}({value}))"
    if f.type.entries:
        return f"writeEntries(j, {value})"
    return {"ipv4": "j.ipv4({v})", "ipv6": "j.ipv6({v})", "sockaddr": "j.sockAddr({v})", "creds": "j.creds({v})",
            "bytes": "j.hex({v}[:])", "chars": "j.text({v})", "str": "j.textOrNull({v})",
            "ustr": "j.textOrNull({v})", "strlist": "j.list({v})", "blob": "j.blob({v})",
            "ublob": "j.blob({v})"}[kind].format(v=value)


def _go_comment(text: str) -> str:
    return " ".join(text.split())


def _entries_decoder(entry_type: str) -> str:
    """ExecAncestorsEntry -> decodeExecAncestorsEntries."""
    return f"decode{entry_type.removesuffix('Entry')}Entries"


def _entry_type(event: str, f: Field) -> dict:
    at, fields = 0, []
    for entry in f.entries:
        name = naming.go_field(entry.name)
        fields.append({"go": name, "type": _fixed_type(entry), "json": entry.name,
                       "read": _fixed_read(entry, "b", at), "write": _json_write(entry, f"x.{name}")})
        at += entry.fixed_size
    name = naming.go_entry_type(event, f.name)
    return {"name": name, "decode": _entries_decoder(name), "field": f.name, "size": f.entry_size, "fields": _align(fields)}


def _event(e: EventLayout) -> dict:
    name = e.event.name
    first = (e.older + (e,))[0]
    always = len(first.event.fields)  # fields every published version has
    offsets = {m.field.name: m.offset for m in e.members if m.field is not None}
    fields = []
    for index, f in enumerate(e.event.fields):
        go = naming.go_field(f.name)
        kind = f.type.name
        offset = offsets[f.name]
        if f.type.entries:
            entry = naming.go_entry_type(name, f.name)
            go_type = f"[]{entry}"
            read = f'{_entries_decoder(entry)}(d.entries("{f.name}", {offset}, {f.entry_size}))'
        elif f.type.variable:
            go_type = VARIABLE_TYPE[kind]
            read = f'd.{VARIABLE_READ[kind]}("{f.name}", {offset})'
        else:
            go_type = _fixed_type(f)
            read = _fixed_read(f, "d.b", offset)
        fields.append({"go": go, "type": go_type, "json": f.name, "index": index, "optional": index >= always,
                       "doc": _go_comment(f.doc), "read": read, "write": _json_write(f, f"e.{go}"),
                       "spans": f.spans, "list": kind == "strlist"})
    versions = [{"fields": len(v.event.fields), "payload_off": v.payload_off, "max_size": v.max_size,
                 "spans": [{"index": i, "descriptor_off": var.descriptor_offset, "max": var.field.max,
                            "total": var.field.total}
                           for var in v.variables for i, f in enumerate(v.event.fields) if f is var.field and f.spans]}
                for v in e.older + (e,)]
    return {"name": name, "type": naming.go_event_type(name), "spec": naming.go_spec(name), "id": e.event.id,
            "doc": _go_comment(e.event.doc) or f"The {name} event.", "fingerprint": f"0x{e.fingerprint:08x}",
            "fields": _align(fields), "versions": versions,
            "entry_types": [_entry_type(name, v.field) for v in e.variables if v.field.type.entries],
            "spanning": [f for f in fields if f["spans"]]}


def _offsets(members, after=()) -> list[dict]:
    """(name, C type, struct format) members, naturally aligned after those of `after`:
    each one's Go name, type, offset and read from a buffer b."""
    out, fmt = [], "<" + "".join(code for _, _, code in after)
    for name, _, code in members:
        at = struct.calcsize(fmt)
        out.append({"name": name, "go": naming.go_name(name), "type": GO_UNSIGNED[code], "offset": at,
                    "read": _uint_read(code, "b", at)})
        fmt += code
    return out


def _sockaddr() -> dict[str, int]:
    """Where sockaddr's members lie (family little-endian, port in network order, then the address)."""
    offsets, at = {}, 0
    for name, decl in SOCKADDR:  # "__u16 port", "__u8 addr[16]"
        ctype, _, member = decl.partition(" ")
        count = int(member[member.index("[") + 1:-1]) if "[" in member else 1
        offsets[name] = at
        at += C_SIZE[ctype] * count
    return offsets


def _align(rows: list[dict]) -> list[dict]:
    """Pads names as gofmt aligns them: in runs of lines that no comment line breaks."""
    run: list[dict] = []
    for row in rows + [{"doc": "end"}]:
        if row.get("doc") or "go" not in row:
            width = max((len(r["go"]) for r in run), default=0)
            for r in run:
                r["go_padded"], r["go_colon_padded"] = r["go"].ljust(width), (r["go"] + ":").ljust(width + 1)
            run = []
        if "go" in row:
            run.append(row)
    return rows


def go_context(layout: Layout, package: str, schema_path: str) -> dict:
    continuation = _offsets(CONTINUATION, after=HEADER)
    for c in continuation:
        c["local"] = c["go"][0].lower() + c["go"][1:]  # parent_seq -> parentSeq
    return {
        "package": package,
        "schema_path": schema_path,
        "digest": layout.schema.digest,
        "header": _align(_offsets(HEADER)),
        "header_size": HEADER_SIZE,
        "continuation": continuation,
        "continuation_id": CONTINUATION_ID,
        "continuation_last": CONTINUATION_LAST,
        "continuation_payload_off": CONTINUATION_PAYLOAD_OFF,
        "reassembly_max_parts": REASSEMBLY_MAX_PARTS,
        "descriptor": {d["name"]: d for d in _offsets(DESCRIPTOR)},
        "lost_unknown": f"0x{LOST_UNKNOWN:x}",
        "creds": _align([{"go": naming.go_name(name), "json": name, "offset": 4 * i} for i, name in enumerate(CREDS_MEMBERS)]),
        "sockaddr": _sockaddr(),
        "events": [_event(e) for e in layout.events],
        # what a loader of a CO-RE object built on the schema's header needs
        "loader": _align([
            {"go": "EventsMap", "value": f'"{EVENTS_MAP}"', "doc": "The perf event array or ring buffer records come from."},
            {"go": "RestProgramsMap", "value": f'"{REST_PROGRAMS_MAP}"',
             "doc": "The program array whose index 0 a loader sets to RestProgram (where fields span)."},
            {"go": "RestProgram", "value": f'"{REST_PROGRAM}"',
             "doc": "The tail-called program that sends continuation records; attached nowhere."},
            {"go": "ExeForgetProgram", "value": f'"{EXE_FORGET_PROGRAM}"',
             "doc": "The runtime's program that forgets a process's kept exe_path when it is freed."},
            {"go": "RingbufPages", "value": str(RINGBUF_PAGES), "doc": "Pages of the ring buffer, by default."},
            {"go": "SpanningBufferPages", "value": str(SPANNING_BUFFER_PAGES),
             "doc": "Pages of the ring buffer (perf: of each CPU's buffer) where fields span records."},
            {"go": "Spans", "value": "true" if any(f.spans for e in layout.events for f in e.event.fields) else "false",
             "doc": "Some field of the schema spans records."},
        ]),
        "filter_globals": [{"filter_padded": f'"{name}":'.ljust(max(len(n) for n in FILTER_GLOBALS) + 3), "global": symbol}
                           for name, symbol in FILTER_GLOBALS.items()],
    }


GO_KEYWORDS = frozenset("break case chan const continue default defer else fallthrough for func go goto if import"
                        " interface map package range return select struct switch type var".split())


def valid_go_package(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and name not in GO_KEYWORDS


def go_package_name(folder: str, default: str) -> str:
    """A Go package name from a folder's name (lower case letters and digits), else `default`."""
    name = re.sub(r"[^a-z0-9]", "", folder.lower()).lstrip("0123456789")
    return name if valid_go_package(name) else default
