"""Every schema mistake gives one clear line naming file, line and field.

Each file in bad_schemas/ holds one mistake; its first line is
`# expect: <message>`, with {file} standing for the file's path.
"""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdxfer.cli import main as sdxfer_main
from sdxfer.codegen import SchemaError, load_schema

SHIPPED = Path(__file__).resolve().parent.parent / "schema" / "events.yaml"
BAD = sorted((Path(__file__).parent / "bad_schemas").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first[len("# expect: "):].replace("{file}", str(path))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_problem_is_reported(path):
    with pytest.raises(SchemaError) as caught:
        load_schema(str(path))
    assert str(caught.value.problems[0]) == _expected(path)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_cli_exits_2_and_writes_nothing(path, tmp_path, capsys):
    out = tmp_path / "out"
    assert sdxfer_main(["gen", "--schema", str(path), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"sdxfer gen: {_expected(path)}"
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


def test_missing_file(tmp_path, capsys):
    assert sdxfer_main(["gen", "--schema", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read schema: No such file or directory" in capsys.readouterr().err


def test_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9\n")
    assert sdxfer_main(["gen", "--schema", str(path)]) == 2
    assert f"{path}:2: schema is not UTF-8 text" in capsys.readouterr().err


def test_all_problems_are_listed(tmp_path):
    source = Path(__file__).parent / "bad_schemas" / "duplicate_field.yaml"
    target = tmp_path / "multi.yaml"
    target.write_text(source.read_text() + "  - {name: b, id: 1, fields: [{name: x, type: nope}]}\n")
    with pytest.raises(SchemaError) as caught:
        load_schema(str(target))
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 3, messages  # duplicate field, duplicate id, unknown type


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mangled_schemas_give_problems_never_crashes(tmp_path, data):
    """Lines of the shipped schema dropped, duplicated or cut: a Schema or a SchemaError, nothing else."""
    lines = SHIPPED.read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "dup", "cut", "junk"]))
        if action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] += data.draw(st.sampled_from([" 7", ": x", "]", " !!binary", " &a", " *a", "\t", "\ufeff"]))
        if not lines:
            break
    path = tmp_path / "mangled.yaml"
    path.write_text("\n".join(lines))
    try:
        load_schema(str(path))
    except SchemaError as exc:
        assert exc.problems and all(str(p).startswith(f"{path}:") for p in exc.problems)
