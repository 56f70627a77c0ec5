"""Schema evolution: which changes keep deployed sensors and decoders working.

Compatible: a new event, a field appended to an event, a larger `max` or
`total`, docs.
Everything else that touches a published event is not: removing, renaming,
retyping or reordering a field, changing an event's id or reusing one, a
smaller `max` or `total`, removing an event. `sdxfer gen` checks the schema against the
latest published version of each event (the lock file); `sdxfer compat`
checks one schema file against another. Both use `incompatibilities`.
"""
from __future__ import annotations

from collections.abc import Sequence

from .layout import type_text as _type_text
from .model import Event, History, Published, Schema
from .schema import Problem, SchemaError

_MAJOR = " (unless sdxfer gen --major starts a new major version)"


def incompatibilities(old: Sequence[Event], new: Schema) -> list[Problem]:
    """Every way `new` breaks what `old` published, one Problem each.

    Problems point into `new`, where the thing is or should be: a removed
    field at its event, a removed event at the `events:` list.
    """
    problems = []
    old_by_name = {e.name: e for e in old}
    old_by_id = {e.id: e for e in old}
    new_by_name = {e.name: e for e in new.events}
    new_by_id = {e.id: e for e in new.events}
    for event in new.events:
        where = f"event {event.name}"
        published = old_by_name.get(event.name)
        if published is not None and published.id != event.id:
            problems.append(Problem(new.path, event.line, where, f"id changed from {published.id} to {event.id};"
                                    " a published event keeps its name and id" + _MAJOR))
        elif published is not None:
            problems += _field_problems(published, event, new.path)
        elif event.id in old_by_id:
            problems.append(Problem(new.path, event.line, where, f"id {event.id} was published for event"
                                    f" {old_by_id[event.id].name}; an id is never reused" + _MAJOR))
    for published in old:
        taker = new_by_id.get(published.id)
        renamed = taker is not None and taker.name not in old_by_name  # reported above, as the id reused
        if published.name not in new_by_name and not renamed:
            problems.append(Problem(new.path, new.events_line, f"event {published.name}",
                                    "removed; a published event is never removed" + _MAJOR))
    return problems


def _field_problems(old: Event, new: Event, path: str) -> list[Problem]:
    problems = []
    old_names = [f.name for f in old.fields]
    new_names = [f.name for f in new.fields]
    shifted = False  # after a removal the fields behind it move; that is no further problem
    for i, f in enumerate(old.fields):
        where = f"event {new.name}, field {f.name}"
        if f.name not in new_names:
            taker = new.fields[i] if i < len(new.fields) else None
            if taker is not None and taker.name not in old_names:
                problems.append(Problem(path, taker.line, where, f"renamed to {taker.name};"
                                        " a published field keeps its name" + _MAJOR))
            else:
                problems.append(Problem(path, new.line, where, "removed; a published field is never removed" + _MAJOR))
                shifted = True
            continue
        j = new_names.index(f.name)
        now = new.fields[j]
        if j != i:
            if not shifted:
                problems.append(Problem(path, now.line, where, f"moved from position {i + 1} to {j + 1};"
                                        " published fields keep their order, new ones go at the end" + _MAJOR))
                shifted = True
        elif _type_text(now) != _type_text(f):
            problems.append(Problem(path, now.line, where, f"type changed from {_type_text(f)} to {_type_text(now)};"
                                    " a published field keeps its type" + _MAJOR))
        elif now.max < f.max:
            problems.append(Problem(path, now.line, where, f"max lowered from {f.max} to {now.max};"
                                    " a published max never shrinks" + _MAJOR))
        elif max(now.total, now.max) < max(f.total, f.max):
            problems.append(Problem(path, now.line, where, f"total lowered from {max(f.total, f.max)} to"
                                    f" {max(now.total, now.max)}; a published total never shrinks" + _MAJOR))
    return problems


def _signature(event: Event) -> tuple:
    """What a version is made of: docs and lines aside."""
    return tuple((f.name, _type_text(f), f.max, f.total) for f in event.fields)


def evolve(schema: Schema, lock: History | None, major: bool = False) -> History:
    """The history after this schema: a new version of every event whose fields changed.

    No lock, or `major`: the schema is version 1 of everything (major + 1).
    Raises SchemaError listing every incompatible change otherwise.
    """
    if lock is None:
        return History.first(schema)
    if major:
        return History.first(schema, lock.major + 1)
    problems = incompatibilities([p.current for p in lock.events], schema)
    if problems:
        raise SchemaError(problems)
    published = {p.current.name: p for p in lock.events}
    events = []
    for event in schema.events:
        known = published.get(event.name)
        if known is None:
            events.append(Published((event,)))
        elif _signature(known.current) == _signature(event):  # docs only: the same version, its docs now
            events.append(Published(known.versions[:-1] + (event,)))
        else:
            events.append(Published(known.versions + (event,)))
    return History(lock.major, tuple(events))
