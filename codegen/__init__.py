"""sdxfer's generator: schema file (+ its lock) -> model -> layout -> C, Python and Markdown.

    load_schema (schema.py)     YAML with line numbers -> validated Schema
    read_lock (lock.py)         the lock file beside the schema -> published History
    evolve (evolution.py)       Schema + History -> History with the schema's versions,
                                or SchemaError naming every incompatible change
    compute_layout (layout.py)  Schema + History -> Layout of every published version
    render_all (render.py)      Layout -> {file name: text}; render_lock (lock.py): History -> the lock
    naming.py                   every identifier generated code derives from schema names,
                                and the C runtime's names no event may take
"""
from __future__ import annotations

from .evolution import evolve, incompatibilities
from .layout import Layout, compute_layout
from .lock import lock_path, read_lock, render_lock
from .model import History, Schema
from .render import render_all, render_python
from .schema import Problem, SchemaError, load_schema, slot_problems

__all__ = ["Problem", "SchemaError", "compat_problems", "generate", "generate_python", "incompatibilities",
           "load_schema", "lock_path", "plan", "render_all", "render_lock"]


def plan(schema_path: str, major: bool = False) -> Layout:
    """The layout of every published version, from the schema and the lock beside it.

    Raises SchemaError for a bad schema or lock, or an incompatible change
    (unless `major`: then the schema starts a new major version).
    """
    schema = load_schema(schema_path)
    layout = compute_layout(schema, evolve(schema, read_lock(lock_path(schema_path)), major))
    problems = _late_slot_problems(schema, layout)
    if problems:
        raise SchemaError(problems)
    return layout


def compat_problems(old: Schema, new: Schema) -> list[Problem]:
    """`sdxfer compat`'s verdict: every way `new` breaks what `old` published
    (as the first version of its events), else the events whose records, laid
    out after `old`'s, would not fit a slot (as `sdxfer gen` with `old`'s
    lock would find)."""
    problems = incompatibilities(old.events, old.common, new)
    if problems:
        return problems
    return _late_slot_problems(new, compute_layout(new, evolve(new, History.first(old))))


def _late_slot_problems(schema: Schema, layout: Layout) -> list[Problem]:
    """A common field added later may sit elsewhere than load_schema assumed
    (after an event's own fields, with other padding): the slot checked again."""
    return slot_problems(schema.path, schema.slot_size, layout.events)


def generate(schema_path: str) -> dict[str, str]:
    """Every generated file for the schema: {file name: text}."""
    return render_all(plan(schema_path))


def generate_python(schema_path: str) -> str:
    return render_python(plan(schema_path))
