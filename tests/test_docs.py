"""The README and docs/ checked against the code, without root or a kernel.

Every relative link resolves (anchors included); every docs page is linked
from the README; the paths the pages name exist; every option they name is
in some tool's --help, and each usage line's options in that tool's --help;
the Python examples run (or, where they need root or NATS, their imports and
call arguments are checked); the host-mode C example compiles, runs, and
`sdxfer decode` prints what commands.md shows; the error lines shown for the
schema and evolution examples are what `sdxfer gen` and `sdxfer compat` print;
the tables of wire-format.md, schema.md and operators.md match the code.

The live steps (the probe tutorial, the BCC example) are in
tests/test_docs_live.py.
"""
from __future__ import annotations

import ast
import inspect
import importlib
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = ROOT / "README.md"
BIN = ROOT / ".venv" / "bin"
SDXFER = [sys.executable, "-m", "sdxfer.tools.cli"]

SHARED_TOOLS = ("execmon", "hidsmon", "sdxfer run")
# options every probe-loading tool has (sdxfer.tools.driver), and hidsmon's own
SHARED_FLAGS = {
    "--children": SHARED_TOOLS, "--cgroup": SHARED_TOOLS, "--mntns": SHARED_TOOLS, "--stats": SHARED_TOOLS,
    "--version": SHARED_TOOLS + ("sdxfer",), "--no-failed": ("hidsmon",), "--ebpf": SHARED_TOOLS,
    "--pid": SHARED_TOOLS, "-p": SHARED_TOOLS, "--uid": SHARED_TOOLS, "-u": SHARED_TOOLS,
    "--name": SHARED_TOOLS, "-n": SHARED_TOOLS,
}

# options named in the docs that belong to other programs (gcc, venv)
OTHER_PROGRAMS_FLAGS = {"-Wall", "-Wextra", "-Werror", "-I", "-o", "-i", "-m", "-s", "-r"}  # and env -i, python -m, ulimit -s, uname -r

TOOLS = {
    "execmon": [str(BIN / "execmon")],
    "hidsmon": [str(BIN / "hidsmon")],
    "sdxfer": SDXFER,
    "sdxfer gen": SDXFER + ["gen"],
    "sdxfer compat": SDXFER + ["compat"],
    "sdxfer decode": SDXFER + ["decode"],
    "sdxfer run": SDXFER + ["run"],
    "sdxfer build": SDXFER + ["build"],
    "sdxfer consume": SDXFER + ["consume"],
    "bench/startup.py": [sys.executable, str(ROOT / "bench" / "startup.py")],
    "bench/kernel_cost.py": [sys.executable, str(ROOT / "bench" / "kernel_cost.py")],
    "bench/hids_cost.py": [sys.executable, str(ROOT / "bench" / "hids_cost.py")],
}
_HELP: dict[str, str] = {}


def help_text(tool: str) -> str:
    if tool not in _HELP:
        out = subprocess.run(TOOLS[tool] + ["--help"], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        _HELP[tool] = out.stdout
    return _HELP[tool]


def flags_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w/-])(--?[A-Za-z][\w-]*)", text))


def has_flag(tool: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text(tool)) is not None


def all_docs() -> list[Path]:
    return [README, *PAGES]


def code_blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), re.DOTALL)


def indented_blocks(path: Path) -> list[list[str]]:
    """Blocks indented by four spaces (commands, consoles, usage lines), outside fenced blocks."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [[line[4:] for line in block.group(0).splitlines()]
            for block in re.finditer(r"(?m)(?:^    .*\n?)+", text)]


def section(path: Path, title: str) -> str:
    text = path.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {slug(h) for h in re.findall(r"(?m)^#+ (.+)$", text)}


def table(text: str) -> list[list[str]]:
    """Rows of the first markdown table in text, header and rule left out."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[2:]]


# ---- README ------------------------------------------------------------------

def test_readme_is_an_entry_point_of_about_150_lines():
    lines = README.read_text().splitlines()
    assert 130 <= len(lines) <= 190, len(lines)  # 170, and the table of kernel cost per event (issue 18)


def test_readme_setup_is_two_commands_and_ci_runs_the_second():
    setup = section(README, "Set-up (Debian 12, as root)")
    commands = [block for block in indented_blocks(README) if block and block[0] in setup]
    assert [block[0] for block in commands][:2] == ["bash scripts/setup.sh && .venv/bin/execmon",
                                                   "bash scripts/test.sh"]
    assert "\nbash scripts/test.sh\n" in (ROOT / ".ci" / "run").read_text()


def test_readme_has_the_data_path_picture_and_three_quick_starts():
    text = README.read_text()
    picture = section(README, "The data path")
    for stage in ("probe", "generated packer", "per-CPU scratch slot", "perf buffer", "ring buffer", "reader",
                  "Decoder", "Reassembler", "execmon", "hidsmon", "NATS"):
        assert stage in picture, stage
    for audience in ("operators", "sensor authors", "agent authors"):
        assert f"\n## Quick start: {audience}\n" in text


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", README.read_text()))
    assert linked == {f"docs/{page.name}" for page in PAGES}


# ---- links, paths ----------------------------------------------------------------

@pytest.mark.parametrize("path", all_docs(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{path.name}: {target}"


@pytest.mark.parametrize("path", all_docs(), ids=lambda p: p.name)
def test_named_paths_exist(path):
    top = "sdxfer|codegen|templates|generated|bpf|schema|bench|tests|scripts|docs"
    text = path.read_text()
    named = set(re.findall(rf"`((?:{top})/[\w./-]*)`", text))
    for block in indented_blocks(path):  # the folder map
        named |= {m for line in block for m in re.findall(rf"^((?:{top})/[\w./-]*)\s", line)}
    for name in named:
        assert (ROOT / name).exists(), f"{path.name}: {name}"


def test_folder_map_names_every_top_level_folder():
    folder_map = "\n".join(line for block in indented_blocks(README) for line in block)
    for folder in ("codegen", "templates", "generated", "bpf", "schema", "bench", "tests", "scripts"):
        assert re.search(rf"(?m)^{folder}/", folder_map), folder
    for layer in ("runtime", "stream", "kernel", "fleet", "tools", "include"):
        assert re.search(rf"(?m)^sdxfer/{layer}/", folder_map), layer
        if layer != "include":
            assert (ROOT / "sdxfer" / layer / "__init__.py").exists()


# ---- options -----------------------------------------------------------------------

def doc_flags() -> set[str]:
    found = set()
    for path in all_docs():
        text = path.read_text()
        for code in re.findall(r"`([^`\n]+)`", text):
            found |= flags_in(code)
        for block in indented_blocks(path):
            for line in block:
                if re.match(r"(\.venv/bin/|# \.venv/bin/|\$ \.venv/bin/)?(sdxfer|execmon|hidsmon)\b", line) \
                        or line.startswith(("sdxfer ", "execmon ", "hidsmon ", " " * 8)):
                    found |= flags_in(line.split("#")[0] if not line.startswith("#") else line)
    # -DNAME: a macro given to the compiler (sdxfer run's -D is checked as -D)
    return {flag for flag in found - OTHER_PROGRAMS_FLAGS if not re.fullmatch(r"-D[A-Z_]+", flag)}


def test_every_option_named_is_in_some_tools_help():
    missing = [flag for flag in sorted(doc_flags()) if not any(has_flag(tool, flag) for tool in TOOLS)]
    assert not missing, missing


TOOL_AT_START = re.compile(r"^(?:[#$] )?(?:\.venv/bin/)?(execmon|hidsmon|sdxfer(?: (?:run|build|consume|decode|gen|compat))?)(?= (?!\w+:(?!//))|$)")


def command_lines() -> list[tuple[str, str, str]]:
    """(page, tool, text) of every command and usage line in indented blocks: a line that starts with
    a tool's name (after `# ` or `$ ` and .venv/bin/), with the lines indented under it; comments
    (` # ...`) and descriptions (after three spaces) left out."""
    found = []
    for path in all_docs():
        for block in indented_blocks(path):
            current = None
            for line in block:
                match = TOOL_AT_START.match(line)
                if match:
                    current = [path.name, match.group(1), re.split(r" {3,}| # ", line[match.end():].rstrip())[0]]
                    found.append(current)
                elif current and line.startswith(" "):
                    current[2] += " " + re.split(r" {3,}", line.strip())[0]
                else:
                    current = None
    return [tuple(item) for item in found]


def test_command_lines_are_found():
    tools = {tool for _, tool, _ in command_lines()}
    assert {"execmon", "hidsmon", "sdxfer", "sdxfer run", "sdxfer consume", "sdxfer decode", "sdxfer gen",
            "sdxfer compat"} <= tools


@pytest.mark.parametrize("page,tool,usage", command_lines(), ids=lambda v: v if isinstance(v, str) and len(v) < 15 else None)
def test_command_line_options_are_in_that_tools_help(page, tool, usage):
    missing = [flag for flag in sorted(flags_in(usage)) if not has_flag(tool, flag)]
    assert not missing, f"{page}: {tool}{usage}"


def shared_option_flags() -> set[str]:
    rows = table(section(DOCS / "operators.md", "Shared options"))
    return {flag for row in rows for flag in flags_in(row[0].replace("\\|", " "))}


def test_shared_options_are_in_every_tools_help():
    flags = shared_option_flags()
    assert {"--transport", "--json", "--ebpf", "--output", "--stats", "--children"} <= flags
    missing = [(tool, flag) for tool in SHARED_TOOLS for flag in sorted(flags)
               if not has_flag(tool, flag)]
    assert not missing


def test_execmon_options_table_is_in_its_help():
    rows = table(section(DOCS / "operators.md", "execmon"))
    flags = {flag for row in rows for flag in flags_in(row[0])}
    assert {"-x", "-T", "-t", "-U", "-l", "-P", "-q", "--max-args"} <= flags
    assert [flag for flag in flags if not has_flag("execmon", flag)] == []


def test_output_url_kinds_are_in_the_help():
    for tool in SHARED_TOOLS:
        for kind in ("nats://", "file:"):
            assert kind in help_text(tool)


# ---- the one driver's options and behaviour ------------------------------------------


def test_shared_flags_in_help():
    missing = [(tool, flag) for flag, tools in SHARED_FLAGS.items() for tool in tools if not has_flag(tool, flag)]
    assert not missing


def test_raw_output_in_help():
    for tool in SHARED_TOOLS:
        assert "raw:" in help_text(tool)


def test_version_prints_version_major_and_digest():
    import sdxfer
    from sdxfer.fleet.output import schema_major
    from sdxfer.paths import SHIPPED_SCHEMA

    for tool in ("sdxfer", "execmon", "hidsmon"):
        out = subprocess.run(TOOLS[tool] + ["--version"], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0
        assert sdxfer.__version__ in out.stdout
        assert str(schema_major(SHIPPED_SCHEMA)) in out.stdout
        assert re.search(r"\b[0-9a-f]{12,}\b", out.stdout)


def test_decoding_a_continuation_names_the_reassembler():
    from sdxfer import DecodeError, default_decoder
    from sdxfer.runtime import record

    buf = bytearray(record.CONTINUATION_PAYLOAD_OFF)
    struct.pack_into(record.HEADER_FORMAT, buf, 0, 1, 1, len(buf), 0, record.CONTINUATION_ID,
                     record.CONTINUATION_PAYLOAD_OFF, 0, 1)
    for decode in (default_decoder().decode, lambda b: default_decoder().decode_many([b])):
        with pytest.raises(DecodeError, match="Reassembler"):
            decode(bytes(buf))


# ---- examples that run ----------------------------------------------------------------

def host_example() -> str:
    return code_blocks(DOCS / "c-runtime.md", "c")[-1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder like the repository's top for the examples: generated/, sdxfer/, schema/ linked,
    and records.bin written by the host-mode example of c-runtime.md."""
    work = tmp_path_factory.mktemp("docs")
    for name in ("generated", "sdxfer", "schema"):
        (work / name).symlink_to(ROOT / name)
    (work / "mine.c").write_text(host_example())
    build = [block[0] for path in [DOCS / "c-runtime.md"] for block in indented_blocks(path)
             if block[0].startswith("gcc ")]
    assert build == ["gcc -Wall -Wextra -Werror -I generated -I sdxfer/include -o mine mine.c"]
    subprocess.run(shlex.split(build[0]), cwd=work, check=True)
    with open(work / "records.bin", "wb") as out:
        subprocess.run([str(work / "mine")], stdout=out, check=True)
    return work


def test_host_example_decodes_as_commands_md_shows(workdir):
    shown = [block for block in indented_blocks(DOCS / "commands.md") if block[0].startswith("$ ./mine")]
    assert len(shown) == 1
    command, output = shown[0][0][2:], shown[0][1:]
    command = command.replace(".venv/bin/sdxfer", shlex.join(SDXFER))
    out = subprocess.run(command, shell=True, cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == output


def test_c_runtime_bcc_example_names_a_real_packer():
    from sdxfer import default_decoder

    example = code_blocks(DOCS / "c-runtime.md", "c")[0]
    header = (ROOT / "generated" / "xfer.h").read_text()
    for packer, args in re.findall(r"(\w+_print)\((.*)\);", example):
        signature = re.search(rf"int {packer}\(([^)]*)\)", header)
        assert signature, packer
        assert len(signature.group(1).split(",")) == len(args.split(","))
        assert packer[:-len("_print")] in default_decoder().events


IMPORT_ONLY = ("Sensor", "ExecProbe", "Consumer")  # need root and bcc, or a NATS server


def python_examples() -> list[tuple[str, int, str]]:
    return [(path.name, i, block) for path in all_docs() for i, block in enumerate(code_blocks(path, "python"))]


def test_python_examples_are_found():
    names = {page for page, _, _ in python_examples()}
    assert {"README.md", "python-api.md"} <= names


def check_calls(tree: ast.AST, namespace: dict) -> None:
    """Each call of an imported name (or its method) binds to the callee's signature."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        target = None
        if isinstance(func, ast.Name) and func.id in namespace:
            target = namespace[func.id]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in namespace:
            target = getattr(namespace[func.value.id], func.attr)
        if target is None:
            continue
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue
        args = [None] * len(node.args)
        kwargs = {kw.arg: None for kw in node.keywords if kw.arg}
        signature.bind(*args, **kwargs)


@pytest.mark.parametrize("page,index,source", python_examples(), ids=lambda v: str(v)[:20])
def test_python_example(page, index, source, workdir, monkeypatch, capsys):
    tree = ast.parse(source)
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), page, "exec"), namespace)
    check_calls(tree, namespace)
    if any(name in namespace for name in IMPORT_ONLY):
        return
    monkeypatch.chdir(workdir)
    exec(compile(tree, page, "exec"), namespace)
    assert capsys.readouterr().out


# ---- shown output of sdxfer gen and sdxfer compat ------------------------------------------

def exec_schema() -> str:
    return code_blocks(DOCS / "schema.md", "yaml")[0]


def shown_line(path: Path, prefix: str) -> str:
    lines = [line for block in indented_blocks(path) for line in block if line.startswith(prefix)]
    assert len(lines) == 1, lines
    return lines[0]


def gen(work: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(SDXFER + ["gen", "--schema", "my/exec.yaml", "--out", "build/gen", *extra],
                          cwd=work, capture_output=True, text=True)


def test_schema_error_example(tmp_path):
    (tmp_path / "my").mkdir()
    without_max = re.sub(r"(name: argv, type: strlist), max: \d+", r"\1", exec_schema())
    assert without_max != exec_schema()
    (tmp_path / "my" / "exec.yaml").write_text(without_max)
    out = gen(tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [shown_line(DOCS / "schema.md", "sdxfer gen: ")]
    assert not (tmp_path / "build").exists() and not (tmp_path / "my" / "exec.lock").exists()


def test_schema_example_generates_and_locks(tmp_path):
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "exec.yaml").write_text(exec_schema())
    assert gen(tmp_path).returncode == 0
    assert {p.name for p in (tmp_path / "build" / "gen").iterdir()} >= {"xfer.h", "events.py", "LAYOUT.md"}
    assert (tmp_path / "my" / "exec.lock").exists()
    assert gen(tmp_path, "--check").returncode == 0


def test_evolution_examples(tmp_path):
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "exec.yaml").write_text(exec_schema())
    assert gen(tmp_path).returncode == 0
    lock = (tmp_path / "my" / "exec.lock").read_text()
    retyped = exec_schema().replace("{name: pid,  type: u32", "{name: pid,  type: u64")
    assert retyped != exec_schema()
    (tmp_path / "new.yaml").write_text(retyped)
    compat = [block for block in indented_blocks(DOCS / "evolution.md") if block[0].startswith("$ ")]
    assert len(compat) == 1
    command = compat[0][0][2:].replace(".venv/bin/sdxfer", shlex.join(SDXFER))
    out = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert (out.returncode, out.stdout.splitlines()) == (1, compat[0][1:])
    same = subprocess.run(SDXFER + ["compat", "my/exec.yaml", "my/exec.yaml"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert (same.returncode, same.stdout) == (0, "compatible\n")

    (tmp_path / "my" / "exec.yaml").write_text(retyped)
    out = gen(tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [shown_line(DOCS / "evolution.md", "sdxfer gen: ")]
    assert (tmp_path / "my" / "exec.lock").read_text() == lock


def test_common_field_added_later_example(tmp_path):
    """evolution.md's history of exec: the schema.md common-fields example, then uid, then cwd."""
    top = "version: 1\nslot_size: 32768\n"
    text = section(DOCS / "evolution.md", "Common fields added later")
    first = top + code_blocks(DOCS / "schema.md", "yaml")[1]
    last = top + re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)[0]
    middle = "".join(line for line in last.splitlines(keepends=True) if "name: cwd" not in line)
    assert "source: uid" not in first and middle != last
    (tmp_path / "my").mkdir()
    for step in (first, middle, last):
        (tmp_path / "my" / "exec.yaml").write_text(step)
        assert gen(tmp_path).returncode == 0
    lock = yaml.safe_load((tmp_path / "my" / "exec.lock").read_text())
    versions = [f"version {v['version']}: {' '.join(f['name'] for f in v['fields'])}" for v in lock["events"][0]["versions"]]
    assert versions == re.findall(r"```text\n(.*?)```", text, re.DOTALL)[0].splitlines()


def test_probe_tutorial_ebpf_needs_no_kernel(tmp_path):
    steps = section(DOCS / "probes.md", "Write your own probe")
    files = dict(re.findall(r"`(my/[\w.]+)`[^`]*?```\w+\n(.*?)```", steps, re.DOTALL))
    (tmp_path / "my").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    command = shown_line(DOCS / "probes.md", ".venv/bin/sdxfer run ")
    assert command.endswith(" --ebpf")
    out = subprocess.run(SDXFER + shlex.split(command)[1:], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "file_open_print(args, pid, args->flags, comm, args->filename)" in out.stdout
    assert '#include "xfer.h"' not in out.stdout


# ---- tables against the code ----------------------------------------------------------------

C_TYPES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "s64": "q"}


def test_wire_format_header_table():
    from sdxfer.runtime import record

    rows = table(section(DOCS / "wire-format.md", "A record").split("The header:")[1])
    assert [(int(r[0]), r[1].strip("`"), C_TYPES[r[2]]) for r in rows] == \
        [(record.HEADER_OFFSETS[name], name, fmt) for name, _, fmt in record.HEADER]
    assert f"header       {record.HEADER_SIZE} bytes" in (DOCS / "wire-format.md").read_text()


def test_wire_format_descriptor_and_continuation_tables():
    from sdxfer.runtime import record

    text = " ".join((DOCS / "wire-format.md").read_text().split())
    descriptor = table(section(DOCS / "wire-format.md", "Variable fields"))
    assert [(r[0].strip("`"), C_TYPES[r[1]]) for r in descriptor] == [(n, f) for n, _, f in record.DESCRIPTOR]
    assert f"`0x{record.LOST_UNKNOWN:x}`" in text
    continuation = table(section(DOCS / "wire-format.md", "Continuation records").split("then:")[1])
    assert [(r[0].strip("`"), C_TYPES[r[1]]) for r in continuation] == [(n, f) for n, _, f in record.CONTINUATION]
    assert f"from offset {record.CONTINUATION_PAYLOAD_OFF}." in text
    assert "id 0 (`CONTINUATION_ID`" in text and record.CONTINUATION_ID == 0
    assert f"{record.CONTINUATION_LAST} (`CONTINUATION_LAST`)" in text
    assert f"at most {record.MAX_FIELD_TOTAL >> 20} MiB (`MAX_FIELD_TOTAL`)" in text
    assert record.continuation_chunk(32768) == 16384


def test_wire_format_envelope_table():
    from sdxfer.fleet import envelope

    rows = table(section(DOCS / "wire-format.md", "The fleet envelope"))
    fixed = {"4 bytes": "4s", "16 bytes": "16s", "u16": "H", "u32": "I", "u64": "Q", "s64": "q"}
    formats = [fixed[r[1]] for r in rows if r[1] in fixed]
    assert "<" + "".join(formats) == envelope._FIXED.format
    assert rows[0][2] == f"`{envelope.MAGIC.decode()}`" and rows[1][2] == str(envelope.VERSION)


def test_schema_types_and_sources():
    from sdxfer.codegen.model import SOURCES, TYPES

    rows = table(section(DOCS / "schema.md", "Field types"))
    named = {name for row in rows for code in re.findall(r"`([\w ]+)`", row[0].split("(")[0]) for name in code.split()}
    assert named == set(TYPES)
    common = section(DOCS / "schema.md", "Common fields")
    sources = re.search(r"The sources are `([^`]+)`", common).group(1).split()
    assert sources == list(SOURCES)


def test_event_catalogue_matches_the_shipped_schema():
    from sdxfer import default_decoder

    decoder = default_decoder()
    common = tuple(decoder.common_fields)
    text = section(DOCS / "operators.md", "The event catalogue")
    assert re.search(r"common fields `([^`]+)`", text.replace("\n", " ")).group(1).split() == list(common)
    seen = set()
    for names, fields, _ in table(text):
        events = re.findall(r"`(\w+)`", names)
        own = set()
        for name in events:
            own |= {f for f in decoder.events[name].fields if f not in common} | (
                {"tid"} if name == "exec" else set())
        assert set(re.findall(r"`(\w+)`", fields)) == own, names
        seen |= set(events)
    assert seen == set(decoder.events)
    json = section(DOCS / "operators.md", "The JSON of an event").replace("\n", " ")
    json_common = re.findall(r"common fields(?: added later)? +\(`([^`]+)`\)", json)  # first published, then later
    assert " ".join(json_common).split() == list(common)


def test_to_dict_keys_as_documented(workdir):
    from sdxfer import default_decoder
    from sdxfer.stream.vocabulary import Clock, event_object

    event = default_decoder().decode((workdir / "records.bin").read_bytes())
    keys = list(event.to_dict())
    assert keys[:5] == ["event", "id", "timestamp_ns", "seq", "cpu"]
    assert keys[-2:] == ["truncated", "lost"]
    assert list(event_object(event, Clock())) == keys + ["time"]


@pytest.mark.parametrize("path", all_docs(), ids=lambda p: p.name)
def test_python_names_in_backquotes_resolve(path):
    """`sdxfer.x.y` (a module, or a name in one) imports, old flat module paths included."""
    for dotted in sorted(set(re.findall(r"`(?:python -m )?(sdxfer(?:\.\w+)+)", path.read_text()))):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break


def test_reassembler_is_exported():
    import sdxfer

    assert "Reassembler" in sdxfer.__all__ and sdxfer.Reassembler.feed


def test_numbers_in_the_c_runtime_and_api_pages():
    from sdxfer.kernel import readers, sensor
    from sdxfer.runtime import record
    from sdxfer.stream import reassembly

    c_runtime = " ".join((DOCS / "c-runtime.md").read_text().split())
    api = " ".join((DOCS / "python-api.md").read_text().split())
    assert f"There are {record.SCRATCH_SLOTS} claimable slots per CPU" in c_runtime
    assert f"`SDXFER_RINGBUF_PAGES` pages (default {record.RINGBUF_PAGES} in the header; `Sensor` passes " \
           f"{record.SPANNING_BUFFER_PAGES} for a schema with spanning fields)" in c_runtime
    assert f"`SDXFER_WAKEUP_EVERY` ({record.WAKEUP_EVERY})" in c_runtime
    assert f"`wakeup_events` ({sensor.PERF_WAKEUP_EVENTS})" in c_runtime
    assert f"at least every {sensor.POLL_TIMEOUT_MS} ms" in c_runtime
    assert "Chunks are `slot_size / 2` bytes" in c_runtime and record.continuation_chunk(1 << 15) == 1 << 14
    assert f"({record.REST_DEPTH} jobs per task)" in c_runtime
    assert f"default to {sensor.PERF_PAGES} per CPU (perf) and {record.RINGBUF_PAGES} (ring buffer), or " \
           f"{record.SPANNING_BUFFER_PAGES} (4 MiB)" in api
    assert record.SPANNING_BUFFER_PAGES * 4096 == 4 << 20
    assert f"perf_wakeup_events={sensor.PERF_WAKEUP_EVENTS}" in api
    assert reassembly.DEFAULT_MAX_PENDING_BYTES == 64 << 20 and reassembly.DEFAULT_MAX_AGE_NS == 2_000_000_000
    assert "`max_pending_bytes` (default 64 MiB) and `max_age_ns` (default 2 s)" in api
    assert f"every {readers.BUSY_POLL_MS} ms" in api or "every millisecond" in api


def test_execmon_example_output():
    from types import SimpleNamespace

    from sdxfer.tools import execmon

    block = next(b for b in indented_blocks(DOCS / "operators.md") if b[0] == "# .venv/bin/execmon")
    banner, header, *lines = block[1:]
    options = execmon.Options()
    assert banner == execmon.HEADER_BANNER
    assert header == execmon.header_line(options)
    for line in lines:
        pid, comm, *argv = line.split()
        event = SimpleNamespace(pid=int(pid), comm=comm, argv=argv, truncated=())
        assert execmon.format_line(event, options, None) == line
    columns = section(DOCS / "operators.md", "Text lines")
    for flags, title in (("wall_time", "TIME"), ("relative_time", "TIME(s)"), ("uid_column", "UID"),
                         ("failed", "RET")):
        assert title in execmon.header_line(execmon.Options(**{flags: True})).split()
        assert f"{title} (`-" in columns
