"""Load a schema file and validate it into a `Schema`.

Every mistake becomes a `Problem` carrying the file and line; nothing is
printed here. `load_schema` raises `SchemaError` with all problems found.
"""
from __future__ import annotations

import hashlib
import keyword
import re
from dataclasses import dataclass

import yaml

from ..record import STR_READ_SLACK
from .layout import layout_event
from .model import TYPES, Event, Field, Schema, generated_names

SUPPORTED_VERSION = 1
# One per-CPU array value may not exceed PCPU_MIN_UNIT_SIZE (32 KiB).
MAX_SLOT_SIZE = 32768
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
    {"ctx", "rec", "cursor", "head", "name", "id", "timestamp_ns", "seq", "cpu", "truncated", "lost", "to_dict",
     "event", "fields", "kinds", "fingerprint", "payload_off", "max_size", "count", "index",
     "version", "versions", "missing", "newer"}
)
# struct sdxfer_<name> already names these in the C header.
RESERVED_EVENT_NAMES = frozenset({"head", "var", "sockaddr", "creds", "slot_data"})
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TOP_KEYS = {"version", "slot_size", "events"}
EVENT_KEYS = {"name", "id", "doc", "fields"}
FIELD_KEYS = {"name", "type", "doc", "max", "len"}


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

    def field(self, node: yaml.Node, event_name: str, taken: dict[str, int]) -> Field | None:
        where = f"event {event_name}"
        entries = self.mapping(node, _where(where, "field", node), FIELD_KEYS, "a field")
        if entries is None:
            return None
        if "name" not in entries:
            self.problem(node, where, "field has no 'name'")
            return None
        name = self.identifier(entries["name"][1], where, "field name")
        if name is None:
            return None
        where = f"event {event_name}, field {name}"
        ok = True
        if name in RESERVED_FIELD_NAMES:
            self.problem(entries["name"][1], where, f"field name {name!r} is reserved (used by every event: {', '.join(sorted(RESERVED_FIELD_NAMES))})")
            ok = False
        if name in taken:
            self.problem(entries["name"][1], where, f"duplicate field {name!r} (first at line {taken[name]})")
            ok = False
        taken.setdefault(name, node.start_mark.line + 1)
        if "type" not in entries:
            self.problem(node, where, f"field has no 'type' (one of: {', '.join(TYPES)})")
            return None
        type_name = self.scalar(entries["type"][1], where, "type", str)
        if type_name is None:
            return None
        field_type = TYPES.get(type_name)
        if field_type is None:
            self.problem(entries["type"][1], where, f"unknown type {type_name!r} (one of: {', '.join(TYPES)})")
            return None
        max_value = length = 0
        for key, needed in (("max", field_type.needs_max), ("len", field_type.needs_len)):
            if key in entries and not needed:
                self.problem(entries[key][0], where, f"type {type_name} takes no '{key}'")
                ok = False
            elif key not in entries and needed:
                self.problem(node, where, f"type {type_name} needs '{key}' ({'most bytes kept' if key == 'max' else 'array length in bytes'})")
                ok = False
        if field_type.needs_max and "max" in entries:
            max_value = self.integer(entries["max"][1], where, "max", 1, MAX_FIELD_MAX)
        if field_type.needs_len and "len" in entries:
            length = self.integer(entries["len"][1], where, "len", 1, MAX_BYTES_LEN)
        doc = self.scalar(entries["doc"][1], where, "doc", str) if "doc" in entries else ""
        if not ok or max_value is None or length is None or doc is None:
            return None
        return Field(name, field_type, doc, max_value, length, node.start_mark.line + 1)

    def event(self, node: yaml.Node, names: dict[str, tuple[str, int]], ids: dict[int, int]) -> Event | None:
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
        if name in RESERVED_EVENT_NAMES:
            self.problem(entries["name"][1], where, f"event name {name!r} is reserved (the C header has struct sdxfer_{name})")
        for derived in generated_names(name):
            if derived in names:
                first, first_line = names[derived]
                if first == name:
                    message = f"duplicate event name {name!r} (first at line {first_line})"
                else:
                    message = f"event names {name!r} and {first!r} (line {first_line}) both become {derived} in generated code: rename one"
                self.problem(entries["name"][1], where, message)
                break
        for derived in generated_names(name):
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
        fields = [self.field(f, name, taken) for f in fields_node.value]
        by_name = {f.name: f for f in fields if f is not None}
        for f in by_name.values():
            clash = by_name.get(f"{f.name}_len")
            if f.type.takes_length and clash is not None:
                self.problems.append(Problem(self.path, clash.line, f"{where}, field {clash.name}",
                    f"field name {clash.name!r} is taken by the length parameter of {f.type.name} field {f.name!r} (line {f.line})"))
        if event_id is None or doc is None or None in fields:
            return None
        return Event(name, event_id, tuple(fields), doc, line)


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
    for key in TOP_KEYS:
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
    events: list[Event | None] = []
    if "events" in top:
        events_node = top["events"][1]
        if not isinstance(events_node, yaml.SequenceNode) or not events_node.value:
            checker.problem(events_node, "", "events must be a non-empty list")
        else:
            names: dict[str, tuple[str, int]] = {}
            ids: dict[int, int] = {}
            events = [checker.event(e, names, ids) for e in events_node.value]
    if slot_size is not None:
        for index, event in enumerate(events):
            if event is None:
                continue
            layout = layout_event(event, index)
            if layout.slot_needed > slot_size:
                checker.problems.append(Problem(path, event.line, f"event {event.name}",
                    f"largest record is {layout.max_size} bytes; packing it needs a {layout.slot_needed}-byte slot"
                    f" (string reads overrun max by {STR_READ_SLACK}, the output size is masked to {layout.size_mask} for the verifier),"
                    f" slot_size is {slot_size}: lower some max or raise slot_size"))
    if checker.problems:
        raise SchemaError(checker.problems)
    return Schema(path, hashlib.sha256(raw).hexdigest(), version, slot_size, tuple(events),
                  top["events"][0].start_mark.line + 1)
