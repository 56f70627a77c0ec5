"""Schema evolution: which changes keep deployed sensors and decoders working.

Compatible: a new event, a field appended to an event, a field appended to
the common list, a larger `max` or `total`, docs.
Everything else that touches a published event or common field is not:
removing, renaming, retyping or reordering a field, changing an event's id
or reusing one, a smaller `max` or `total`, removing an event. `sdxfer gen`
checks the schema against the latest published version of each event (the
lock file); `sdxfer compat` checks one schema file against another. Both use
`incompatibilities`.

A record keeps every published field where it was: a new version of an event
lays out the previous version's fields in place, then its new fields in
schema order. So a common field added after an event's first version comes
after that event's own fields, as a field appended to the event does
(`laid_out`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .layout import type_text as _type_text
from .model import Event, Field, History, Published, Schema
from .schema import Problem, SchemaError

_MAJOR = " (unless sdxfer gen --major starts a new major version)"


def incompatibilities(old: Sequence[Event], old_common: Sequence[Field], new: Schema) -> list[Problem]:
    """Every way `new` breaks what `old` (events and common list) published, one Problem each.

    Problems point into `new`, where the thing is or should be: a removed
    field at its event (a removed common field at `common:`), a removed event
    at the `events:` list. A common field's problem is said once, at `common`.
    """
    problems = _field_problems(old_common, new.common, "common", new.common_line, new.path)
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
            problems += _event_problems(published, old_common, event, new)
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


def _event_problems(old: Event, old_common: Sequence[Field], new: Event, schema: Schema) -> list[Problem]:
    """What breaks in one event's own fields; common fields are checked once, at `common`.

    In the schema a common field sits where `common` puts it; in a record,
    where the event published it, or at the end. So the order checked here is
    that of the event's own fields. A field the event published itself that
    has since joined `common` keeps its type.
    """
    common = {f.name for f in old_common} | {f.name for f in schema.common}
    problems = _field_problems([f for f in old.fields if f.name not in common],
                               [f for f in new.fields if f.name not in common], f"event {new.name}", new.line, schema.path)
    now = {f.name: f for f in new.fields}
    was_common = {f.name for f in old_common}
    for f in old.fields:
        if f.name in common and f.name not in was_common:
            problems += _kept_problems(f, now[f.name], f"event {new.name}, field {f.name}", schema.path)
    return problems


def _field_problems(old: Sequence[Field], new: Sequence[Field], owner: str, owner_line: int, path: str) -> list[Problem]:
    """`new` must keep every field of `old` in its place and type; it may only add fields at its end."""
    problems = []
    old_names = [f.name for f in old]
    new_names = [f.name for f in new]
    shifted = False  # after a removal the fields behind it move; that is no further problem
    for i, f in enumerate(old):
        where = f"{owner}, field {f.name}"
        if f.name not in new_names:
            taker = new[i] if i < len(new) else None
            if taker is not None and taker.name not in old_names:
                problems.append(Problem(path, taker.line, where, f"renamed to {taker.name};"
                                        " a published field keeps its name" + _MAJOR))
            else:
                problems.append(Problem(path, owner_line, where, "removed; a published field is never removed" + _MAJOR))
                shifted = True
            continue
        j = new_names.index(f.name)
        now = new[j]
        if j != i:
            if not shifted:
                # new fields alone between this one's old place and its new one: they were inserted
                inserted = new[i] if i < j and all(name not in old_names for name in new_names[i:j]) else None
                if inserted is not None:
                    problems.append(Problem(path, inserted.line, f"{owner}, field {inserted.name}",
                                            f"inserted before {f.name}; published fields keep their place, new ones"
                                            " go at the end" + _MAJOR))
                else:
                    problems.append(Problem(path, now.line, where, f"moved from position {i + 1} to {j + 1};"
                                            " published fields keep their order, new ones go at the end" + _MAJOR))
                shifted = True
        else:
            problems += _kept_problems(f, now, where, path)
    return problems


def _kept_problems(f: Field, now: Field, where: str, path: str) -> list[Problem]:
    """A published field `f`, now `now`: its type stays, its max and total never shrink."""
    if _type_text(now) != _type_text(f):
        return [Problem(path, now.line, where, f"type changed from {_type_text(f)} to {_type_text(now)};"
                        " a published field keeps its type" + _MAJOR)]
    if now.max < f.max:
        return [Problem(path, now.line, where, f"max lowered from {f.max} to {now.max};"
                        " a published max never shrinks" + _MAJOR)]
    if max(now.total, now.max) < max(f.total, f.max):
        return [Problem(path, now.line, where, f"total lowered from {max(f.total, f.max)} to"
                        f" {max(now.total, now.max)}; a published total never shrinks" + _MAJOR)]
    return []


def laid_out(published: Event, event: Event) -> Event:
    """`event` with its fields in record order: `published`'s fields in place, then the new ones in schema order."""
    by_name = {f.name: f for f in event.fields}
    kept = tuple(by_name[f.name] for f in published.fields)
    added = tuple(f for f in event.fields if f.name not in {k.name for k in kept})
    return replace(event, fields=kept + added)


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
    problems = incompatibilities([p.current for p in lock.events], lock.common, schema)
    if problems:
        raise SchemaError(problems)
    published = {p.current.name: p for p in lock.events}
    events = []
    for event in schema.events:
        known = published.get(event.name)
        if known is None:
            events.append(Published((event,)))
            continue
        event = laid_out(known.current, event)
        if _signature(known.current) == _signature(event):  # docs only: the same version, its docs now
            events.append(Published(known.versions[:-1] + (event,)))
        else:
            events.append(Published(known.versions + (event,)))
    return History(lock.major, tuple(events), schema.common)
