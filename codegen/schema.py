"""Load a schema file and validate it into a `Schema`.

Every mistake becomes a `Problem` carrying the file and line; nothing is
printed here. `load_schema` raises `SchemaError` with all problems found.
"""
from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from ..runtime.record import MAX_FIELD_TOTAL, MAX_SLOT_SIZE, STR_READ_SLACK
from .layout import EventLayout, layout_event, type_text
from . import naming
from .model import ENTRY_TYPES, SOURCES, TYPES, Event, Field, Schema

SUPPORTED_VERSION = 1
MIN_SLOT_SIZE = 256
MAX_FIELD_MAX = 32768
MAX_BYTES_LEN = 4096

C_KEYWORDS = frozenset(
    """auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef union
    unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic
    _Noreturn _Static_assert _Thread_local asm typeof typeof_unqual bool true false nullptr
    static_assert thread_local alignas alignof constexpr NULL""".split()
)
# Names the generated code already uses on every event or packer: C
# parameters and members, attributes of every decoded event (a tuple), and
# keys of Event.to_dict().
RESERVED_FIELD_NAMES = frozenset(
    {"ctx", "rec", "cursor", "head", "id", "timestamp_ns", "seq", "cpu", "truncated", "lost", "to_dict",
     "event", "fields", "kinds", "fingerprint", "payload_off", "max_size", "count", "index",
     "version", "versions", "missing", "newer", "entry_types", "value"}
)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TOP_KEYS = {"version", "slot_size", "events", "common"}
EVENT_KEYS = {"name", "id", "doc", "fields"}
FIELD_KEYS = {"name", "type", "doc", "max", "len", "of", "total"}
COMMON_KEYS = FIELD_KEYS | {"source"}
ENTRY_KEYS = FIELD_KEYS - {"max", "of", "total"}
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    where: str  # "event exec, field argv" or ""
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.path}:{self.line}: {where}{self.message}"


class SchemaError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Checker:
    def __init__(self, path: str):
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node, where: str, message: str) -> None:
        self.problems.append(Problem(self.path, node.start_mark.line + 1, where, message))

    def mapping(self, node: yaml.Node, where: str, allowed: set[str], what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"{what} must be a mapping")
            return None
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name not in allowed:
                self.problem(key, where, f"unknown key {name!r} in {what} (allowed: {', '.join(sorted(allowed))})")
            elif name in entries:
                self.problem(key, where, f"key {name!r} given twice")
            else:
                entries[name] = (key, value)
        return entries

    def scalar(self, node: yaml.Node, where: str, what: str, kind: type):
        """The node's value as `kind` (int or str), or None after a problem."""
        if isinstance(node, yaml.ScalarNode):
            try:
                value = yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value
            except yaml.YAMLError as exc:
                self.problem(node, where, f"{what}: {getattr(exc, 'problem', None) or exc}")
                return None
            if type(value) is kind:  # bool is an int subclass: reject it on purpose
                return value
        self.problem(node, where, f"{what} must be {'an integer' if kind is int else 'a string'}")
        return None

    def integer(self, node: yaml.Node, where: str, what: str, low: int, high: int) -> int | None:
        value = self.scalar(node, where, what, int)
        if value is not None and not low <= value <= high:
            self.problem(node, where, f"{what} {value} is out of range {low}..{high}")
            return None
        return value

    def identifier(self, node: yaml.Node, where: str, what: str) -> str | None:
        value = self.scalar(node, where, what, str)
        if value is None:
            return None
        if not IDENTIFIER.match(value):
            self.problem(node, where, f"{what} {value!r} is not an identifier (letters, digits, _; not starting with a digit)")
        elif keyword.iskeyword(value) or keyword.issoftkeyword(value) or value in C_KEYWORDS:
            self.problem(node, where, f"{what} {value!r} is a C or Python keyword")
        elif value.startswith("sdxfer") or value.startswith("_"):
            self.problem(node, where, f"{what} {value!r} may not start with 'sdxfer' or '_' (reserved for generated code)")
        else:
            return value
        return None

    def field(self, node: yaml.Node, owner: str, taken: dict[str, int], kind: str = "event") -> Field | None:
        """One field of an event (kind "event"), of the common list ("common") or of an array entry ("entry")."""
        keys = {"event": FIELD_KEYS, "common": COMMON_KEYS, "entry": ENTRY_KEYS}[kind]
        where = owner
        entries = self.mapping(node, _where(where, "field", node), keys, "a field")
        if entries is None:
            return None
        if "name" not in entries:
            self.problem(node, where, "field has no 'name'")
            return None
        name = self.identifier(entries["name"][1], where, "field name")
        if name is None:
            return None
        where = f"{owner}, field {name}"
        ok = True
        if name in RESERVED_FIELD_NAMES and kind != "entry":
            self.problem(entries["name"][1], where, f"field name {name!r} is reserved (used by every event: {', '.join(sorted(RESERVED_FIELD_NAMES))})")
            ok = False
        if name in taken:
            self.problem(entries["name"][1], where, f"duplicate field {name!r} (first at line {taken[name]})")
            ok = False
        taken.setdefault(name, node.start_mark.line + 1)
        allowed = ENTRY_TYPES if kind == "entry" else tuple(TYPES)
        if "type" not in entries:
            self.problem(node, where, f"field has no 'type' (one of: {', '.join(allowed)})")
            return None
        type_name = self.scalar(entries["type"][1], where, "type", str)
        if type_name is None:
            return None
        field_type = TYPES.get(type_name) if type_name in allowed else None
        if field_type is None:
            what = (f"type {type_name!r} is not fixed-size, so not allowed in an array entry" if type_name in TYPES
                    else f"unknown type {type_name!r}")
            self.problem(entries["type"][1], where, f"{what} (one of: {', '.join(allowed)})")
            return None
        max_value = length = 0
        for key, needed in (("max", field_type.needs_max), ("len", field_type.needs_len), ("of", field_type.entries)):
            if key in entries and not needed:
                self.problem(entries[key][0], where, f"type {type_name} takes no '{key}'")
                ok = False
            elif key not in entries and needed:
                meaning = {"max": "most entries kept" if field_type.entries else "most bytes kept",
                           "len": "length in bytes" if field_type.text else "array length in bytes",
                           "of": "the fields of one entry"}[key]
                self.problem(node, where, f"type {type_name} needs '{key}' ({meaning})")
                ok = False
        if field_type.needs_max and "max" in entries:
            high = MAX_ENTRIES if field_type.entries else MAX_FIELD_MAX
            max_value = self.integer(entries["max"][1], where, "max", 1, high)
        if field_type.needs_len and "len" in entries:
            length = self.integer(entries["len"][1], where, "len", 1, MAX_BYTES_LEN)
        total = self.total(entries, field_type, max_value, where)
        entry_fields = self.entry_fields(entries["of"][1], where) if field_type.entries and "of" in entries else ()
        source = ""
        if kind == "common":
            source = self.source(entries.get("source"), node, where, type_name)
        doc = self.scalar(entries["doc"][1], where, "doc", str) if "doc" in entries else ""
        if not ok or None in (max_value, length, doc, entry_fields, source, total):
            return None
        return Field(name, field_type, doc, max_value, length, node.start_mark.line + 1, source, entry_fields, total)

    def total(self, entries, field_type, max_value: int | None, where: str) -> int | None:
        """`total`: the most bytes a strlist or blob keeps over its record and continuation records."""
        if "total" not in entries:
            return 0
        key, node = entries["total"]
        if not field_type.may_span:
            self.problem(key, where, f"type {field_type.name} takes no 'total' (only strlist, blob and ublob"
                         " continue into continuation records)")
            return None
        if not max_value:
            return None  # max is missing or wrong, said already
        total = self.integer(node, where, "total", 1, MAX_FIELD_TOTAL)
        if total is not None and total <= max_value:
            self.problem(node, where, f"total {total} must exceed max {max_value} (the bytes beyond max are what"
                         " continuation records carry)")
            return None
        return total

    def source(self, entry, node: yaml.Node, where: str, type_name: str) -> str | None:
        """A common field's source, checked against its type."""
        if entry is None:
            self.problem(node, where, f"common field has no 'source' (one of: {', '.join(SOURCES)})")
            return None
        source = self.scalar(entry[1], where, "source", str)
        if source is None:
            return None
        if source not in SOURCES:
            self.problem(entry[1], where, f"unknown source {source!r} (one of: {', '.join(SOURCES)})")
            return None
        if SOURCES[source] != type_name:
            self.problem(entry[1], where, f"source {source} gives a {SOURCES[source]}, not a {type_name}")
            return None
        return source

    def entry_fields(self, node: yaml.Node, where: str) -> tuple[Field, ...] | None:
        """An array's entry: fixed-size fields laid out back to back, so no gap can hide stale bytes."""
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, where, "'of' must be a non-empty list of fields")
            return None
        taken: dict[str, int] = {}
        fields = [self.field(f, f"{where}, entry", taken, "entry") for f in node.value]
        if None in fields:
            return None
        offset = 0
        for f in fields:
            if offset % f.type.align:
                self.problems.append(Problem(self.path, f.line, f"{where}, entry field {f.name}",
                    f"would start at byte {offset} of the entry, not on its {f.type.align}-byte alignment:"
                    " order the entry's fields by alignment, largest first"))
                return None
            offset += f.fixed_size
        align = max(f.type.align for f in fields)
        if offset % align:
            self.problem(node, where, f"an entry of {offset} bytes is not a multiple of its {align}-byte alignment:"
                         " entries would need padding; add or resize fields")
            return None
        return tuple(fields)

    def common(self, node: yaml.Node) -> tuple[Field, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "", "common must be a list of fields")
            return None
        taken: dict[str, int] = {}
        fields = [self.field(f, "common", taken, "common") for f in node.value]
        return None if None in fields else tuple(fields)

    def event(self, node: yaml.Node, names: dict[str, tuple[str, int]], ids: dict[int, int],
              common: tuple[Field, ...] = ()) -> Event | None:
        outer = _where("", "event", node)
        entries = self.mapping(node, outer, EVENT_KEYS, "an event")
        if entries is None:
            return None
        line = node.start_mark.line + 1
        for key in ("name", "id", "fields"):
            if key not in entries:
                self.problem(node, outer, f"event has no '{key}'")
        if "name" not in entries:
            return None
        name = self.identifier(entries["name"][1], "", "event name")
        if name is None:
            return None
        where = f"event {name}"
        clash = naming.reserved_clash(name)
        if clash:
            self.problem(entries["name"][1], where, f"event name {name!r} is reserved (the C runtime declares {clash})")
        for derived in naming.unique_names(name):
            if derived in names:
                first, first_line = names[derived]
                if first == name:
                    message = f"duplicate event name {name!r} (first at line {first_line})"
                else:
                    message = (f"event name{'s' if '.' not in first else ''} {name!r} and {_named(first)} (line {first_line})"
                               f" both become {derived} in generated code: rename one")
                self.problem(entries["name"][1], where, message)
                break
        for derived in naming.unique_names(name):
            names.setdefault(derived, (name, line))
        event_id = None
        if "id" in entries:
            event_id = self.integer(entries["id"][1], where, "id", 1, 65535)
            if event_id is not None and event_id in ids:
                self.problem(entries["id"][1], where, f"duplicate event id {event_id} (first at line {ids[event_id]})")
            elif event_id is not None:
                ids[event_id] = line
        doc = self.scalar(entries["doc"][1], where, "doc", str) if "doc" in entries else ""
        if "fields" not in entries:
            return None
        fields_node = entries["fields"][1]
        if not isinstance(fields_node, yaml.SequenceNode):
            self.problem(fields_node, where, "fields must be a list")
            return None
        taken: dict[str, int] = {}
        own = [self.field(f, where, taken) for f in fields_node.value]
        fields = self.with_common(common, [f for f in own if f is not None], where)
        for f in fields:
            for derived in naming.field_names(name, f):
                if derived in names:
                    first, first_line = names[derived]
                    self.problems.append(Problem(self.path, f.line, f"{where}, field {f.name}",
                        f"field {name}.{f.name} and {_named(first)} (line {first_line}) both become {derived}"
                        " in generated code: rename one"))
                    break
            for derived in naming.field_names(name, f):
                names.setdefault(derived, (f"{name}.{f.name}", f.line))
        by_name = {f.name: f for f in fields}
        for f in fields:
            param = (naming.c_count_param(f.name) if f.type.takes_count
                     else naming.c_length_param(f.name) if f.type.takes_length else None)
            clash = by_name.get(param) if param else None
            if clash is not None:
                what = "entry count" if f.type.takes_count else "length"
                self.problems.append(Problem(self.path, clash.line, f"{where}, field {clash.name}",
                    f"field name {clash.name!r} is taken by the {what} parameter of {f.type.name} field {f.name!r} (line {f.line})"))
        if event_id is None or doc is None or None in own:
            return None
        return Event(name, event_id, tuple(fields), doc, line)

    def with_common(self, common: tuple[Field, ...], own: list[Field], where: str) -> list[Field]:
        """The common fields first, then the event's own. An event that declares
        a common field again (same type) passes its value to the packer itself."""
        redeclared = {f.name: f for f in own if any(c.name == f.name for c in common)}
        fields = []
        for c in common:
            mine = redeclared.get(c.name)
            if mine is None:
                fields.append(c)
            elif (mine.type, mine.max, mine.len) != (c.type, c.max, c.len):
                self.problems.append(Problem(self.path, mine.line, f"{where}, field {mine.name}",
                    f"redeclares common field {c.name} (line {c.line}) as {_type_text(mine)}; it must stay"
                    f" {_type_text(c)} (redeclared, it is a packer parameter instead of {c.source})"))
            else:
                fields.append(mine)
        return fields + [f for f in own if f.name not in redeclared]


def _named(first: str) -> str:
    """What took a generated name first: an event, or an event's field (event.field)."""
    return f"field {first}" if "." in first else repr(first)


def _type_text(f: Field) -> str:
    return type_text(f) + (f" max {f.max}" if f.type.needs_max else "")


def _where(outer: str, what: str, node: yaml.Node) -> str:
    """Location text for a mapping whose own name is not checked yet."""
    name = None
    if isinstance(node, yaml.MappingNode):
        name = next((v.value for k, v in node.value
                     if isinstance(k, yaml.ScalarNode) and k.value == "name" and isinstance(v, yaml.ScalarNode)), None)
    if name is None:
        return outer
    return f"{outer}, {what} {name}" if outer else f"{what} {name}"


def _compose(path: str, text: str, checker: _Checker) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc)
        checker.problems.append(Problem(path, line, "", f"YAML syntax error: {reason}"))
        return None


def slot_problems(path: str, slot_size: int, layouts: Iterable[EventLayout]) -> list[Problem]:
    """Events whose largest record would not fit a scratch slot."""
    return [Problem(path, e.event.line, f"event {e.event.name}",
                    f"largest record is {e.max_size} bytes; packing it needs a {e.slot_needed}-byte slot"
                    f" (string reads overrun max by {STR_READ_SLACK}, the output size is masked to {e.size_mask} for"
                    f" the verifier), slot_size is {slot_size}: lower some max or raise slot_size")
            for e in layouts if e.slot_needed > slot_size]


def load_schema(path: str) -> Schema:
    """Read, check and model the schema at `path`; raise SchemaError listing every problem."""
    checker = _Checker(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise SchemaError([Problem(path, 0, "", f"cannot read schema: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise SchemaError([Problem(path, 1 + raw[: exc.start].count(b"\n"), "", "schema is not UTF-8 text")]) from None

    root = _compose(path, text, checker)
    if root is None:
        if not checker.problems:
            checker.problems.append(Problem(path, 1, "", "schema is empty"))
        raise SchemaError(checker.problems)
    top = checker.mapping(root, "", TOP_KEYS, "the schema")
    if top is None:
        raise SchemaError(checker.problems)
    for key in TOP_KEYS - {"common"}:
        if key not in top:
            checker.problem(root, "", f"schema has no '{key}'")
    version = checker.integer(top["version"][1], "", "version", SUPPORTED_VERSION, SUPPORTED_VERSION) if "version" in top else None
    slot_size = None
    if "slot_size" in top:
        slot_node = top["slot_size"][1]
        slot_size = checker.scalar(slot_node, "", "slot_size", int)
        if slot_size is not None and slot_size > MAX_SLOT_SIZE:
            checker.problem(slot_node, "", f"slot_size {slot_size} exceeds {MAX_SLOT_SIZE}, the kernel's cap on one per-CPU array value (PCPU_MIN_UNIT_SIZE)")
            slot_size = None
        elif slot_size is not None and slot_size < MIN_SLOT_SIZE:
            checker.problem(slot_node, "", f"slot_size {slot_size} is below {MIN_SLOT_SIZE}")
            slot_size = None
    common: tuple[Field, ...] | None = ()
    if "common" in top:
        common = checker.common(top["common"][1])
    events: list[Event | None] = []
    if "events" in top:
        events_node = top["events"][1]
        if not isinstance(events_node, yaml.SequenceNode) or not events_node.value:
            checker.problem(events_node, "", "events must be a non-empty list")
        else:
            names: dict[str, tuple[str, int]] = {}
            ids: dict[int, int] = {}
            events = [checker.event(e, names, ids, common or ()) for e in events_node.value]
    if slot_size is not None:
        checker.problems += slot_problems(path, slot_size, [layout_event(e, i) for i, e in enumerate(events) if e])
    if checker.problems:
        raise SchemaError(checker.problems)
    return Schema(path, hashlib.sha256(raw).hexdigest(), version, slot_size, tuple(events),
                  top["events"][0].start_mark.line + 1, common or (),
                  top["common"][0].start_mark.line + 1 if "common" in top else top["events"][0].start_mark.line + 1)
