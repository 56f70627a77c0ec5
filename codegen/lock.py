"""The lock file: every published version of every event, beside the schema.

`schema/events.yaml` has `schema/events.lock`, so a copied schema folder
carries its history. `sdxfer gen` writes it (sorted, no timestamps) and reads
it back as a `History`; decoders are generated for every version it holds.

Each version's fields are listed in record order, so the lock alone gives
every published layout, and shows where a common field added later went in
each event: after the fields the event had before it. `common:` (left out
when empty) is the published common list, in order; it tells which of an
event's fields are common, so a common field is checked once and may only be
appended.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from .model import TYPES, Event, Field, History, Published
from .schema import Problem, SchemaError

_LINE = "__line__"  # key the loader adds to every mapping: its line in the file


def lock_path(schema_path: str) -> str:
    """`<schema stem>.lock` in the schema's folder."""
    return str(Path(schema_path).with_suffix(".lock"))


def render_lock(history: History, schema_path: str) -> str:
    lines = [f"# Written by sdxfer gen from {os.path.basename(schema_path)}: every published version of every"
             " event. Commit it with the schema; never edit it.",
             f"major: {history.major}"]
    if history.common:
        lines += ["common:"] + [f"  - {_field(f)}" for f in history.common]
    lines.append("events:")
    for published in sorted(history.events, key=lambda p: p.current.name):
        lines += [f"  - name: {_scalar(published.current.name)}", f"    id: {published.current.id}", "    versions:"]
        for number, event in enumerate(published.versions, start=1):
            lines += [f"      - version: {number}", "        fields:" + ("" if event.fields else " []")]
            lines += [f"          - {_field(f)}" for f in event.fields]
    return "\n".join(lines) + "\n"


def _field(f: Field) -> str:
    extra = f", max: {f.max}" if f.type.needs_max else f", len: {f.len}" if f.type.needs_len else ""
    if f.total:
        extra += f", total: {f.total}"
    if f.type.entries:
        extra += f", of: [{', '.join(_field(e) for e in f.entries)}]"
    return f"{{name: {_scalar(f.name)}, type: {f.type.name}{extra}}}"


def _scalar(text: str) -> str:
    # names such as `on` or `yes` would read back as booleans unquoted
    return text if yaml.safe_load(text) == text else json.dumps(text)


class _LockLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping[_LINE] = node.start_mark.line + 1
        return mapping


class _Malformed(Exception):
    def __init__(self, line: int, what: str):
        self.line = line
        self.what = what


def read_lock(path: str) -> History | None:
    """The lock at `path` as a History (events sorted by name, lines from the lock), or None if there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError([Problem(path, 0, "", f"cannot read lock file: {getattr(exc, 'strerror', None) or exc}")]) from None
    try:
        root = yaml.load(text, Loader=_LockLoader)
        return _history(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, what = (mark.line + 1 if mark else 1), f"YAML syntax error: {getattr(exc, 'problem', None) or exc}"
    except _Malformed as exc:
        line, what = exc.line, exc.what
    raise SchemaError([Problem(path, line, "", f"malformed lock file ({what}): it is written by sdxfer gen;"
                               " restore it from version control")])


def _mapping(value, line: int, keys: set[str], what: str, optional: frozenset[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise _Malformed(line, f"{what} must be a mapping")
    unknown = set(value) - keys - {_LINE}
    missing = keys - set(value) - optional
    if unknown or missing:
        raise _Malformed(value[_LINE], f"{what} has keys {sorted(set(value) - {_LINE})}, expected {sorted(keys)}")
    return value


def _integer(value, line: int, what: str, low: int) -> int:
    if type(value) is not int or value < low:
        raise _Malformed(line, f"{what} must be an integer >= {low}")
    return value


def _list(value, line: int, what: str) -> list:
    if not isinstance(value, list):
        raise _Malformed(line, f"{what} must be a list")
    return value


def _history(root) -> History:
    # a lock written before common fields were recorded has no `common`: none published
    top = _mapping(root, 1, {"major", "events", "common"}, "the lock", frozenset({"common"}))
    major = _integer(top["major"], top[_LINE], "major", 1)
    common = _distinct(tuple(_lock_field(f, top[_LINE]) for f in _list(top.get("common", []), top[_LINE], "common")),
                       "common")
    events = []
    for entry in _list(top["events"], top[_LINE], "events"):
        entry = _mapping(entry, top[_LINE], {"name", "id", "versions"}, "an event")
        line = entry[_LINE]
        name, event_id = entry["name"], _integer(entry["id"], line, "id", 1)
        if not isinstance(name, str):
            raise _Malformed(line, "event name must be a string")
        versions = []
        for number, version in enumerate(_list(entry["versions"], line, "versions"), start=1):
            version = _mapping(version, line, {"version", "fields"}, "a version")
            if version["version"] != number:
                raise _Malformed(version[_LINE], f"versions of {name} must be numbered 1, 2, ...")
            fields = _distinct(tuple(_lock_field(f, version[_LINE])
                                     for f in _list(version["fields"], version[_LINE], "fields")),
                               f"version {number} of {name}")
            versions.append(Event(name, event_id, fields, "", line))
        if not versions:
            raise _Malformed(line, f"event {name} has no versions")
        events.append(Published(tuple(versions)))
    return History(major, tuple(events), common)


def _distinct(fields: tuple[Field, ...], owner: str) -> tuple[Field, ...]:
    seen = set()
    for f in fields:
        if f.name in seen:
            raise _Malformed(f.line, f"field {f.name} is in {owner} twice")
        seen.add(f.name)
    return fields


def _lock_field(entry, line: int) -> Field:
    entry = _mapping(entry, line, {"name", "type", "max", "len", "of", "total"}, "a field",
                     frozenset({"max", "len", "of", "total"}))
    field_type = TYPES.get(entry["type"])
    if not isinstance(entry["name"], str) or field_type is None:
        raise _Malformed(entry[_LINE], "a field needs a name and a known type")
    size = {}
    for key, needed in (("max", field_type.needs_max), ("len", field_type.needs_len)):
        if needed:
            size[key] = _integer(entry.get(key), entry[_LINE], key, 1)
        elif key in entry:
            raise _Malformed(entry[_LINE], f"type {field_type.name} takes no '{key}'")
    if field_type.entries != ("of" in entry):
        raise _Malformed(entry[_LINE], "'of' goes with type array only, and always")
    entries = tuple(_lock_field(e, entry[_LINE]) for e in _list(entry["of"], entry[_LINE], "of")) if "of" in entry else ()
    total = _integer(entry["total"], entry[_LINE], "total", size.get("max", 0) + 1) if "total" in entry else 0
    if total and not field_type.may_span:
        raise _Malformed(entry[_LINE], f"type {field_type.name} takes no 'total'")
    return Field(entry["name"], field_type, "", size.get("max", 0), size.get("len", 0), entry[_LINE], entries=entries,
                 total=total)
