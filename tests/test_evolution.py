"""Schema evolution: compatible changes keep every sensor and decoder working
together; incompatible ones are refused by gen and by compat.

Each folder in incompatible/ holds one incompatible change: old.yaml, and
new.yaml whose first line is `# expect: <message>` ({file}: the new schema).
"""
import json
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHIPPED_SCHEMA, Generated
from sdxfer import DecodeError, Decoder
from sdxfer.cli import main as sdxfer_main
from sdxfer.codegen.model import SOURCES, TYPES
from test_roundtrip import _expected, _field_value, _wire

INCOMPATIBLE = sorted(p for p in (Path(__file__).parent / "incompatible").iterdir() if p.is_dir())
PLAIN = Path(__file__).parent / "incompatible" / "insert_field"  # its old.yaml: one event, no common fields


def _expectation(new: Path, schema: Path) -> str:
    first = new.read_text().splitlines()[0]
    assert first.startswith("# expect: "), new
    return first[len("# expect: "):].replace("{file}", str(schema))


def _tree(folder: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", INCOMPATIBLE, ids=[p.name for p in INCOMPATIBLE])
def test_gen_refuses_and_writes_nothing(case, tmp_path, capsys):
    schema = tmp_path / "events.yaml"
    shutil.copy(case / "old.yaml", schema)
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "events.lock").is_file()
    shutil.copy(case / "new.yaml", schema)
    before = {p: v for p, v in _tree(tmp_path).items() if p != schema}
    capsys.readouterr()
    for extra in ([], ["--check"]):
        assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "out"), *extra]) == 2
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [f"sdxfer gen: {_expectation(case / 'new.yaml', schema)}"]
        assert captured.out == ""
    assert {p: v for p, v in _tree(tmp_path).items() if p != schema} == before
    # a new major version is the way through
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "out"), "--major"]) == 0
    lock = yaml.safe_load((tmp_path / "events.lock").read_text())
    assert lock["major"] == 2 and all(len(e["versions"]) == 1 for e in lock["events"])


@pytest.mark.parametrize("case", INCOMPATIBLE, ids=[p.name for p in INCOMPATIBLE])
def test_compat_reports_one_line(case, capsys):
    new = case / "new.yaml"
    assert sdxfer_main(["compat", str(case / "old.yaml"), str(new)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [_expectation(new, new)]
    assert captured.err == ""


def test_compat_accepts_compatible_changes(tmp_path, capsys):
    old = PLAIN / "old.yaml"
    new = tmp_path / "new.yaml"
    new.write_text(old.read_text().replace("{name: pid, type: u32}", "{name: pid, type: u32, doc: Process.}")
                   + "      - {name: extra, type: ustr, max: 9}\n  - {name: added, id: 77, fields: []}\n")
    assert sdxfer_main(["compat", str(old), str(new)]) == 0
    assert capsys.readouterr().out == "compatible\n"


def test_compat_schema_errors_exit_2(tmp_path, capsys):
    bad = Path(__file__).parent / "bad_schemas" / "duplicate_id.yaml"
    assert sdxfer_main(["compat", str(PLAIN / "old.yaml"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sdxfer compat: {bad}:7: ") and "Traceback" not in err


def test_several_problems_one_line_each(tmp_path, capsys):
    old = PLAIN / "old.yaml"
    new = tmp_path / "new.yaml"
    new.write_text(old.read_text().replace("type: u32", "type: u16").replace("max: 16", "max: 8"))
    assert sdxfer_main(["compat", str(old), str(new)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "field pid: type changed" in lines[0] and "field comm: max lowered" in lines[1]


def _schema_text(events, common=()) -> str:
    schema = {"version": 1, "slot_size": 4096, **({"common": list(common)} if common else {}), "events": events}
    return yaml.safe_dump(schema, sort_keys=False)


def test_versions_in_the_lock(tmp_path, capsys):
    schema = tmp_path / "s.yaml"
    lock = tmp_path / "s.lock"
    events = [{"name": "a", "id": 1, "fields": [{"name": "x", "type": "u8"}, {"name": "s", "type": "str", "max": 4}]}]
    out = ["--schema", str(schema), "--out", str(tmp_path / "out")]

    def gen(*extra):
        schema.write_text(_schema_text(events))
        return sdxfer_main(["gen", *out, *extra])

    assert gen("--check") == 1  # no lock yet
    assert "s.lock is stale or missing" in capsys.readouterr().err
    assert gen() == 0 and lock.read_text().startswith("# Written by sdxfer gen")
    first = lock.read_bytes()
    assert gen("--check") == 0
    events[0]["doc"] = "Docs change no version."
    events[0]["fields"][0]["doc"] = "Nor here."
    assert gen() == 0 and lock.read_bytes() == first
    events[0]["fields"][1]["max"] = 5  # record bounds change: a version
    assert gen() == 0
    events[0]["fields"].append({"name": "y", "type": "u64"})
    assert gen() == 0
    published = yaml.safe_load(lock.read_text())["events"][0]["versions"]
    assert [v["version"] for v in published] == [1, 2, 3]
    assert [f["max"] for f in published[1]["fields"] if f["name"] == "s"] == [5]
    assert [f["name"] for f in published[2]["fields"]] == ["x", "s", "y"]
    # the lock is current and gen --check agrees; a hand-edited lock is stale
    assert gen("--check") == 0
    lock.write_text(lock.read_text() + "# edited\n")
    assert gen("--check") == 1
    # decoders built from the schema use the lock beside it
    decoder = Decoder.from_schema(str(schema))
    assert [v.field_count for v in decoder.events["a"].versions] == [2, 2, 3]


def test_malformed_lock_is_a_problem(tmp_path, capsys):
    schema = tmp_path / "s.yaml"
    schema.write_text(_schema_text([{"name": "a", "id": 1, "fields": []}]))
    (tmp_path / "s.lock").write_text("major: 1\nevents:\n  - {name: a, id: 1, versions: [{version: 2, fields: []}]}\n")
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sdxfer gen: {tmp_path / 's.lock'}:3: malformed lock file") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_shipped_lock_is_beside_the_schema():
    first = SHIPPED_SCHEMA.with_suffix(".lock").read_text().splitlines()[0]
    assert first.startswith("# Written by sdxfer gen") and "Commit it" in first


# --- sensors and decoders of different steps of a schema's history ---------

def _field(draw, kind: str, name: str) -> dict:
    field = {"name": name, "type": kind}
    if TYPES[kind].needs_max:
        field["max"] = draw(st.integers(1, 24))
    if TYPES[kind].needs_len:
        field["len"] = draw(st.integers(1, 9))
    if TYPES[kind].entries:
        field["of"] = draw(st.sampled_from([[{"name": "n", "type": "u32"}],
                                            [{"name": "n", "type": "u16"}, {"name": "tag", "type": "chars", "len": 2}]]))
    return field


def _common_field(source: str) -> dict:
    field = {"name": source, "type": SOURCES[source], "source": source}
    return {**field, "max": 16} if TYPES[SOURCES[source]].needs_max else field


@st.composite
def histories(draw):
    """A small schema and a sequence of compatible changes to it: (common fields, events) per step."""
    common = [_common_field("pid")]
    events = [{"name": "e1", "id": 1, "fields": [{"name": "f1", "type": "u8"}, {"name": "f2", "type": "str", "max": 6}]}]
    steps = [json.loads(json.dumps((common, events)))]
    counter = iter(range(3, 1000))  # f1, f2 and e1 are taken
    sources = iter(draw(st.permutations([s for s in SOURCES if s != "pid"])))
    for _ in range(draw(st.integers(1, 4))):
        change = draw(st.sampled_from(["event", "append", "append", "common", "common", "max", "doc"]))
        if change == "event":
            n = next(counter)
            fields = [_field(draw, draw(st.sampled_from(sorted(TYPES))), f"f{next(counter)}")
                      for _ in range(draw(st.integers(0, 2)))]
            events.append({"name": f"e{n}", "id": n, "fields": fields})
        elif change == "append":
            event = draw(st.sampled_from(events))
            event["fields"].append(_field(draw, draw(st.sampled_from(sorted(TYPES))), f"f{next(counter)}"))
        elif change == "common":  # laid out after each event's fields, as an appended field is
            common.append(_common_field(next(sources)))
        elif change == "max":
            variable = [f for f in common + [f for e in events for f in e["fields"]] if "max" in f]
            if variable:
                draw(st.sampled_from(variable))["max"] += draw(st.integers(1, 9))
        else:
            event = draw(st.sampled_from(events))
            target = draw(st.sampled_from([event, *event["fields"]]))
            target["doc"] = draw(st.sampled_from(["A note.", "Another note.", "x */ y"]))
        steps.append(json.loads(json.dumps((common, events))))
    return steps


def _step(schema: Path, step, out: Path):
    """One step: the real sdxfer gen (lock carried along), its host-C packer, its decoder."""
    common, events = step
    schema.write_text(_schema_text(events, common))
    return Generated(schema, out)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=histories(), data=st.data())
def test_every_step_decodes_every_other_steps_records(steps, data):
    with tempfile.TemporaryDirectory() as tmp:
        schema = Path(tmp) / "events.yaml"
        built = [_step(schema, step, Path(tmp) / f"step{i}") for i, step in enumerate(steps)]
        texts = [Path(tmp) / f"step{i}.yaml" for i in range(len(steps))]
        for text, step in zip(texts, steps):
            text.write_text(_schema_text(step[1], step[0]))
        # compat agrees with gen: every later step is compatible with every earlier one
        assert all(sdxfer_main(["compat", str(old), str(new)]) == 0 for i, old in enumerate(texts) for new in texts[i:])
        for sensor in built:
            calls = [(e.index, {f.name: data.draw(_field_value(f)) for f in e.event.fields}) for e in sensor.layout.events]
            _check_all(built, sensor, calls)


def _check_all(built, sensor, calls) -> None:
    """Every agent decodes the sensor's records of `calls` to the values packed."""
    records = sensor.pack([(i, {f.name: _wire(f, values[f.name]) for f in sensor.layout.events[i].event.fields})
                           for i, values in calls])
    for (index, values), record in zip(calls, records):
        packed = sensor.layout.events[index]
        for agent in built:
            _check(agent, packed, values, record)


def _check(agent, packed, values: dict, record: bytes) -> None:
    known = next((e for e in agent.layout.events if e.event.name == packed.event.name), None)
    if known is None:  # an event this agent has never heard of
        with pytest.raises(DecodeError, match="unknown event id"):
            agent.decoder.decode(record)
        return
    event = agent.decoder.decode(record)
    assert event == agent.decoder.decode_with_construct(record)
    assert (event.name, event.version) == (packed.event.name, packed.version)
    assert event.newer == (packed.version > known.version)
    sent = {f.name: f for f in packed.event.fields}
    lost = {}
    for f in known.event.fields:
        if f.name in sent:
            want, amount = _expected(sent[f.name], values[f.name])
            assert event.value(f.name) == want, f.name
            if amount != 0:
                lost[f.name] = amount
        else:
            assert event.value(f.name) is None
    assert event.missing == tuple(f.name for f in known.event.fields if f.name not in sent)
    assert dict(event.lost) == lost
    as_dict = event.to_dict()
    assert as_dict.get("missing", []) == list(event.missing) and as_dict.get("newer", False) == event.newer


# --- records of another lineage --------------------------------------------

def test_record_of_an_unrelated_schema_is_refused(tmp_path):
    def make(name: str, fields: list) -> Generated:
        folder = tmp_path / name
        folder.mkdir()
        schema = folder / "events.yaml"
        schema.write_text(_schema_text([{"name": "a", "id": 1, "fields": fields}]))
        return Generated(schema, folder / "out")

    ours = make("ours", [{"name": "x", "type": "u32"}])
    theirs = make("theirs", [{"name": "y", "type": "u32"}])  # same id and size, another lineage
    record = theirs.pack([(0, {"y": 5})])[0]
    with pytest.raises(DecodeError, match="different schemas"):
        ours.decoder.decode(record)
    with pytest.raises(DecodeError, match="different schemas"):
        ours.decoder.decode_with_construct(record)
    # a newer version number does not make it a relative either
    newer = bytearray(record)
    struct.pack_into("<H", newer, 30, 9)
    with pytest.raises(DecodeError, match="different schemas"):
        ours.decoder.decode(bytes(newer))


def test_new_major_version_refuses_older_records(tmp_path):
    schema = tmp_path / "events.yaml"
    schema.write_text(_schema_text([{"name": "a", "id": 1, "fields": [{"name": "x", "type": "u32"}]}]))
    before = Generated(schema, tmp_path / "v1")
    schema.write_text(_schema_text([{"name": "a", "id": 1, "fields": [{"name": "x", "type": "u64"}]}]))
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "major2"), "--major"]) == 0
    after = Decoder.from_schema(str(schema))
    with pytest.raises(DecodeError, match="different schemas"):
        after.decode(before.pack([(0, {"x": 1})])[0])


def test_version_zero_and_bad_newer_records_are_refused(generated):
    e = generated.layout.events[0]
    values = {f.name: None if f.type.variable or f.type.by_pointer else 1 for f in e.event.fields}
    record = bytearray(generated.pack([(e.index, values)])[0])
    struct.pack_into("<H", record, 30, 0)
    with pytest.raises(DecodeError, match="version 0"):
        generated.decoder.decode(bytes(record))
    with pytest.raises(DecodeError, match="version 0"):
        generated.decoder.decode_with_construct(bytes(record))
    struct.pack_into("<H", record, 30, e.version + 1)
    assert generated.decoder.decode(bytes(record)).newer
    struct.pack_into("<H", record, 26, e.payload_off - 1)  # a newer version never shrinks the fixed part
    with pytest.raises(DecodeError, match="payload offset"):
        generated.decoder.decode(bytes(record))


# --- the layout rule -------------------------------------------------------

def test_appending_never_moves_a_field_and_padding_is_zeroed(tmp_path):
    fields = [{"name": "a", "type": "u8"}, {"name": "b", "type": "u32"}, {"name": "c", "type": "s8"}]
    schema = tmp_path / "events.yaml"
    big = {"name": "big", "id": 2, "fields": [{"name": f"w{i}", "type": "u64"} for i in range(4)]}
    offsets = None
    for more in ([], [{"name": "d", "type": "u64"}], [{"name": "e", "type": "u16"}, {"name": "s", "type": "str", "max": 3}]):
        fields = fields + more
        schema.write_text(_schema_text([{"name": "padded", "id": 1, "fields": fields}, big]))
        step = Generated(schema, tmp_path / f"out{len(fields)}")
        padded = step.layout.events[0]
        now = {m.name: m.offset for m in padded.members if m.field}
        assert offsets is None or {k: now[k] for k in offsets} == offsets
        offsets = now
        # slot 0 first holds a record of all-ones bytes; none of them may leak through the padding
        ones = {f"w{i}": 2**64 - 1 for i in range(4)}
        record = step.pack([(1, ones), (0, {f["name"]: 2**64 - 1 if f["type"] != "str" else b"xy" for f in fields})])[1]
        pads = [m for m in padded.members if m.field is None]
        assert pads and all(record[m.offset:m.offset + m.size] == bytes(m.size) for m in pads)
        event = step.decoder.decode(record)
        assert (event.version, event.missing, event.newer) == (padded.version, (), False)
        assert "missing" not in event.to_dict() and "newer" not in event.to_dict()


# --- common fields added later ---------------------------------------------

_PROC = {"name": "proc", "id": 1, "fields": [{"name": "flag", "type": "u8"}, {"name": "ret", "type": "s32"}]}
_NOTE = {"name": "note", "type": "ustr", "max": 8}  # a field appended to proc


def _values(layout_event, seed: int) -> dict:
    """Values for every field of one event, different per field and per seed."""
    values = {}
    for i, f in enumerate(layout_event.event.fields, start=seed):
        values[f.name] = (b"v%d" % i if f.type.variable else
                          bytes([i % 256]) * f.fixed_size if f.type.by_pointer else i * 0x01010101 % 2 ** (8 * f.type.size - 1))
    return values


@pytest.mark.parametrize("order", ["common first", "event field first", "both at once"])
def test_common_field_added_later_goes_after_the_events_fields(order, tmp_path):
    """v1, then a common field (uid) and a field of proc's own (note), in either order or together."""
    common = [_common_field("pid"), _common_field("comm")]
    proc = json.loads(json.dumps(_PROC))
    changes = {"common first": [["uid"], ["note"]], "event field first": [["note"], ["uid"]],
               "both at once": [["uid", "note"]]}[order]
    schema = tmp_path / "events.yaml"
    steps = [_step(schema, (common, [proc]), tmp_path / "v1")]
    for n, change in enumerate(changes, start=2):
        common = common + [_common_field("uid")] * ("uid" in change)
        proc = {**proc, "fields": proc["fields"] + [_NOTE] * ("note" in change)}
        steps.append(_step(schema, (common, [proc]), tmp_path / f"v{n}"))
    # the common fields of v1 stay in front; what came later follows in the order it came (together: common first)
    appended = [name for change in changes for name in sorted(change, key=["uid", "note"].index)]
    last = steps[-1].layout.events[0]
    assert [f.name for f in last.event.fields] == ["pid", "comm", "flag", "ret", *appended]
    assert last.version == len(steps)
    # no published field ever moves
    for older, newer in zip(steps, steps[1:]):
        before = {m.name: m.offset for m in older.layout.events[0].members}
        after = {m.name: m.offset for m in newer.layout.events[0].members}
        assert {k: after[k] for k in before} == before
    # the lock: the published common list, each version in record order; gen --check agrees
    lock = yaml.safe_load(schema.with_suffix(".lock").read_text())
    assert [f["name"] for f in lock["common"]] == ["pid", "comm", "uid"]
    assert [[f["name"] for f in v["fields"]] for v in lock["events"][0]["versions"]] == [
        [f.name for f in s.layout.events[0].event.fields] for s in steps]
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(steps[-1].out), "--check"]) == 0
    # every version's packer, every version's decoder; fixed members are byte for byte where the layout says
    for seed, sensor in enumerate(steps):
        packed = sensor.layout.events[0]
        values = _values(packed, 7 * seed + 1)
        _check_all(steps, sensor, [(0, values)])
        record = sensor.pack([(0, values)])[0]
        for m in packed.members:
            if m.field is not None and not m.field.type.variable and not m.field.type.by_pointer:
                assert int.from_bytes(record[m.offset:m.offset + m.size], "little", signed=m.field.type.signed) == (
                    values[m.name]), m.name
    # an older decoder ignores the tail of a newer record; a newer one names what an older record lacks
    newest, oldest = steps[-1], steps[0]
    record = newest.pack([(0, _values(newest.layout.events[0], 1))])[0]
    assert oldest.decoder.decode(record).newer and "uid" not in oldest.decoder.decode(record).to_dict()
    event = newest.decoder.decode(oldest.pack([(0, _values(oldest.layout.events[0], 1))])[0])
    assert event.missing == tuple(appended) and event.value("uid") is None
    # to_dict() keeps every field's key, in record order: a common field added later after proc's own
    keys = list(event.to_dict())
    assert keys[keys.index("pid"):keys.index("truncated")] == ["pid", "comm", "flag", "ret", *appended]


def test_a_new_event_has_every_common_field_in_front(tmp_path):
    schema = tmp_path / "events.yaml"
    _step(schema, ([_common_field("pid")], [_PROC]), tmp_path / "v1")
    later = {"name": "later", "id": 2, "fields": [{"name": "x", "type": "u64"}]}
    step = _step(schema, ([_common_field("pid"), _common_field("uid")], [_PROC, later]), tmp_path / "v2")
    proc, new = step.layout.events
    assert [f.name for f in proc.event.fields] == ["pid", "flag", "ret", "uid"]
    assert [f.name for f in new.event.fields] == ["pid", "uid", "x"] and new.version == 1


def test_compat_accepts_appended_common_fields(tmp_path, capsys):
    """compat agrees with gen: a common field appended (a first common list too), or a field an event
    published becoming common, keep every decoder and sensor working."""
    events = [{**_PROC, "fields": _PROC["fields"] + [{"name": "uid", "type": "u32"}]},
              {"name": "other", "id": 2, "fields": [{"name": "x", "type": "u64"}]}]
    steps = [([], events), ([_common_field("pid")], events), ([_common_field("pid"), _common_field("uid")], events),
             ([_common_field("pid"), _common_field("uid"), _common_field("comm")], events)]
    schema = tmp_path / "events.yaml"
    for n, step in enumerate(steps):
        (tmp_path / f"s{n}.yaml").write_text(_schema_text(step[1], step[0]))
        if n:
            assert sdxfer_main(["compat", str(tmp_path / f"s{n - 1}.yaml"), str(tmp_path / f"s{n}.yaml")]) == 0
            assert capsys.readouterr().out == "compatible\n"
        built = _step(schema, step, tmp_path / f"out{n}")
        capsys.readouterr()
    proc, other = built.layout.events
    assert [f.name for f in proc.event.fields] == ["flag", "ret", "uid", "pid", "comm"]  # uid stays proc's own
    assert [f.name for f in other.event.fields] == ["x", "pid", "uid", "comm"]
    # going back is not compatible
    assert sdxfer_main(["compat", str(tmp_path / "s3.yaml"), str(tmp_path / "s2.yaml")]) == 1
    assert "common, field comm: removed" in capsys.readouterr().out
    # without a common list at all, the removed fields are missing at the events: line
    assert sdxfer_main(["compat", str(tmp_path / "s1.yaml"), str(tmp_path / "s0.yaml")]) == 1
    events_line = (tmp_path / "s0.yaml").read_text().splitlines().index("events:") + 1
    assert capsys.readouterr().out.startswith(f"{tmp_path / 's0.yaml'}:{events_line}: common, field pid: removed")


def test_a_lock_without_a_common_list_reads_as_none_published(tmp_path):
    """Locks written before common fields were recorded still work; gen then records the list."""
    schema = tmp_path / "events.yaml"
    _step(schema, ([_common_field("pid")], [_PROC]), tmp_path / "v1")
    lock = schema.with_suffix(".lock")
    lock.write_text("".join(line for line in lock.read_text().splitlines(keepends=True)
                            if not line.startswith(("common:", "  - {name: pid"))))
    step = _step(schema, ([_common_field("pid"), _common_field("uid")], [_PROC]), tmp_path / "v2")
    assert [f.name for f in step.layout.events[0].event.fields] == ["pid", "flag", "ret", "uid"]
    assert [f["name"] for f in yaml.safe_load(lock.read_text())["common"]] == ["pid", "uid"]


def test_the_slot_is_checked_in_record_order(tmp_path, capsys):
    """uid laid out after x takes 3 bytes of padding more than in front of s: the record no longer fits."""
    schema = tmp_path / "events.yaml"
    proc = {"name": "proc", "id": 1, "fields": [{"name": "s", "type": "str", "max": 205}, {"name": "x", "type": "u8"}]}
    out = ["gen", "--schema", str(schema), "--out", str(tmp_path / "out")]
    schema.write_text(_schema_text([proc], [_common_field("pid")]).replace("4096", "300"))
    assert sdxfer_main(out) == 0
    old = tmp_path / "old.yaml"
    shutil.copy(schema, old)
    schema.write_text(_schema_text([proc], [_common_field("pid"), _common_field("uid")]).replace("4096", "300"))
    capsys.readouterr()
    assert sdxfer_main(out) == 2
    refusal = "event proc: largest record is 257 bytes; packing it needs a 511-byte slot"
    assert refusal in capsys.readouterr().err
    # compat agrees with gen: in front of s, where load_schema checks it alone, uid would fit
    assert sdxfer_main(["compat", str(old), str(schema)]) == 1
    assert refusal in capsys.readouterr().out


def test_a_malformed_common_list_in_the_lock_is_a_problem(tmp_path, capsys):
    schema = tmp_path / "s.yaml"
    schema.write_text(_schema_text([{"name": "a", "id": 1, "fields": []}], [_common_field("pid")]))
    (tmp_path / "s.lock").write_text("major: 1\ncommon: {name: pid}\nevents: []\n")
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sdxfer gen: {tmp_path / 's.lock'}:1: malformed lock file (common must be a list)")


@pytest.mark.parametrize("lock, where", [
    ("major: 1\ncommon:\n  - {name: pid, type: u32}\n  - {name: pid, type: u32}\nevents: []\n", "4: malformed lock file (field pid is in common twice)"),
    ("major: 1\nevents:\n  - name: a\n    id: 1\n    versions:\n      - version: 1\n        fields:\n"
     "          - {name: x, type: u8}\n          - {name: x, type: u8}\n", "9: malformed lock file (field x is in version 1 of a twice)"),
])
def test_a_field_twice_in_the_lock_is_malformed(tmp_path, capsys, lock, where):
    schema = tmp_path / "s.yaml"
    schema.write_text(_schema_text([{"name": "a", "id": 1, "fields": [{"name": "x", "type": "u8"}]}],
                                   [_common_field("pid")]))
    (tmp_path / "s.lock").write_text(lock)
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"sdxfer gen: {tmp_path / 's.lock'}:{where}")


def test_a_common_field_redeclared_later_is_the_last_packer_parameter(tmp_path):
    schema = tmp_path / "events.yaml"
    _step(schema, ([_common_field("pid")], [_PROC]), tmp_path / "v1")
    proc = {**_PROC, "fields": [{"name": "uid", "type": "u32"}, *_PROC["fields"]]}  # passed by the probe, not read
    step = _step(schema, ([_common_field("pid"), _common_field("uid")], [proc]), tmp_path / "v2")
    header = (step.out / "xfer.h").read_text()
    assert "int proc_print(void *ctx, __u8 flag, __s32 ret, __u32 uid)" in header
    record = step.pack([(0, {"pid": 7, "flag": 1, "ret": -2, "uid": 1234})])[0]
    assert step.decoder.decode(record).to_dict()["uid"] == 1234
