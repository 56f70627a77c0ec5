"""Generated identifiers come from sdxfer.codegen.naming, and no event may
take a name the C runtime already declares."""
import re
from pathlib import Path

import pytest

from sdxfer.codegen import SchemaError, generate, load_schema, naming
from sdxfer.paths import C_INCLUDE_DIR

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = [ROOT / "schema" / "events.yaml", *sorted((ROOT / "tests" / "schemas").glob("*.yaml"))]


def _schema_names(schema) -> set[str]:
    """The sdxfer-prefixed names naming.py derives from a schema's events, fields and sources."""
    names = set()
    for e in schema.events:
        names |= set(naming.event_c_names(e.name))
        for f in e.fields:
            if f.type.variable:
                names.add(naming.c_max_macro(e.name, f.name))
            if f.type.entries:
                names.add(naming.c_entry_struct(e.name, f.name))
            if f.source:
                names |= {naming.c_source_macro(f.source), naming.c_source_reader(f.source)}
    return names


@pytest.mark.parametrize("path", SCHEMAS, ids=[p.stem for p in SCHEMAS])
def test_every_runtime_name_in_a_generated_header_is_reserved(path):
    """What xfer.h declares beyond the schema's own names is in RESERVED_C_NAMES,
    so a new runtime name cannot slip past the event name check."""
    header = generate(str(path))["xfer.h"]
    unaccounted = naming.runtime_names(header) - _schema_names(load_schema(str(path))) - naming.RESERVED_C_NAMES
    assert not unaccounted


def test_every_name_the_runtime_headers_declare_is_reserved():
    declared = set()
    for header in C_INCLUDE_DIR.glob("*.h"):
        text = header.read_text()
        declared |= set(re.findall(r"^static [^(]*?\b(sdxfer_\w+)\(", text, re.MULTILINE))
        declared |= set(re.findall(r"^struct (sdxfer_\w+) \{", text, re.MULTILINE))
        declared |= set(re.findall(r"^#define ((?:sdxfer|SDXFER)_\w+)", text, re.MULTILINE))
    assert {"sdxfer_claim", "sdxfer_rest", "sdxfer_current", "sdxfer_claim_slot", "SDXFER_LOCAL"} <= declared
    assert declared <= naming.RESERVED_C_NAMES


RUNTIME_STRUCTS = sorted(n[len("sdxfer_"):] for n in naming.RESERVED_C_NAMES if n.startswith("sdxfer_"))


@pytest.mark.parametrize("name", RUNTIME_STRUCTS)
def test_an_event_named_after_a_runtime_name_is_rejected(tmp_path, name):
    path = tmp_path / "s.yaml"
    path.write_text(f"version: 1\nslot_size: 4096\nevents:\n  - {{name: {name}, id: 1, fields: []}}\n")
    with pytest.raises(SchemaError) as caught:
        load_schema(str(path))
    assert str(caught.value.problems[0]) == (f"{path}:4: event {name}: event name {name!r} is reserved"
                                             f" (the C runtime declares sdxfer_{name})")


def test_names_made_for_an_event():
    assert naming.event_c_names("exec") == ("sdxfer_exec", "exec_print", "exec_pack", "SDXFER_EVENT_EXEC",
                                            "SDXFER_INDEX_EXEC")
    assert (naming.py_class("creds_change"), naming.py_entry_class("exec", "ancestors")) == (
        "CredsChangeEvent", "ExecAncestorsEntry")
    assert naming.reserved_clash("exec") is None and naming.reserved_clash("count") == "SDXFER_EVENT_COUNT"
