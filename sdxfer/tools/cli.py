"""The `sdxfer` command: gen (schema -> C header, Python decoders, layout doc,
lock), compat (are two schemas compatible?), decode (raw records -> NDJSON),
run (load any probe, print or publish its events), build (compile a probe
into a CO-RE object for libbpf) and consume (decode every host's records
from NATS JetStream)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
from pathlib import Path

from ..fleet.consume import MAX_MESSAGE_BYTES
from ..fleet.output import add_connection_arguments, add_stream_arguments, count, size
from .text import silence_stdout
from .driver import add_probe_arguments, add_version_argument, check_arguments
from ..paths import GENERATED_DIR as SHIPPED_OUT, SHIPPED_SCHEMA


EXAMPLES = """examples:
  sdxfer gen                                   regenerate generated/ from schema/events.yaml
  sdxfer gen --check                           exit 1 if generated/ is stale (CI)
  sdxfer gen --schema my.yaml --out build/gen  generate for another schema (its lock: my.lock)
  sdxfer gen --major                           accept an incompatible change: a new major version
  sdxfer gen --go agent/events                 also a Go package (generated/go/events holds the shipped one)
  sdxfer compat old/events.yaml events.yaml    exit 1, one line per incompatible change
  sdxfer decode records.bin                    raw records -> NDJSON
  sudo sdxfer run my.bpf.c --schema my.yaml    load a probe, print its decoded events
  sudo sdxfer run my.bpf.c -D TARGET_PID=42 --json --events openat
  sudo sdxfer run my.bpf.c --output nats://127.0.0.1:4222/sdxfer.events
  sdxfer build my.bpf.c --schema my.yaml -o my.bpf.o   compile once with clang (CO-RE)
  sdxfer consume nats://127.0.0.1:4222/sdxfer.events --durable central --json
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdxfer", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("gen", help="generate the C header, Python decoders and layout document",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("--schema", default=None, help=f"schema file (default: the shipped {SHIPPED_SCHEMA.name})")
    gen.add_argument("--out", default=None, help="output folder (default, for the shipped schema only: generated/)")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 naming the files that are stale")
    gen.add_argument("--go", metavar="DIR", default=None,
                     help="also write a Go package for the schema into DIR (one file; standard library only)")
    gen.add_argument("--go-package", metavar="NAME", default=None,
                     help="the Go package's name (default: DIR's name, letters and digits)")
    gen.add_argument("--major", action="store_true",
                     help="start a new major version: the lock restarts from this schema, older records are refused")
    compat = commands.add_parser("compat", help="exit 0 if NEW keeps decoders and sensors of OLD working, else 1",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    compat.add_argument("old", help="the schema file deployed so far")
    compat.add_argument("new", help="the schema file to deploy")
    decode = commands.add_parser("decode", help="decode a file of back-to-back raw records into NDJSON")
    decode.add_argument("file", help="regular file of raw records, or - for standard input (a pipe or a device);"
                        " bytes that are no record are skipped, named, and make the exit status 1")
    decode.add_argument("--schema", default=None, help="schema the records were packed with (default: the shipped one)")
    decode.add_argument("--max-pending-bytes", type=count, default=64 << 20,
                        help="bytes of events awaiting continuation records held at most (default 64 MiB)")
    decode.add_argument("--max-age-ms", type=count, default=2000,
                        help="an event whose continuations are missing this long (record time) is given as it is")
    run = commands.add_parser("run", help="load a BPF program built on the generated header and print its events",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("program", help="BPF C program that includes \"xfer.h\" (BCC compiles it), or the object"
                     " sdxfer build made of one (.bpf.o, loaded through libbpf)")
    run.add_argument("--schema", default=None, help="schema of the program's events (default: the shipped one)")
    run.add_argument("--events", type=_names, default=None, metavar="NAME,...", help="print only these events")
    run.add_argument("-D", dest="defines", action="append", type=_define, default=[], metavar="NAME=VALUE",
                     help="define a macro for the program (repeatable)")
    add_probe_arguments(run)
    build = commands.add_parser("build", help="compile a probe with clang into a CO-RE object (ELF with BTF) for libbpf",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("program", help="BPF C program file that includes \"xfer.h\"")
    build.add_argument("--schema", default=None, help="schema of the program's events (default: the shipped one)")
    build.add_argument("-D", dest="defines", action="append", type=_define, default=[], metavar="NAME=VALUE",
                       help="define a macro for the program (repeatable)")
    build.add_argument("--transport", choices=("ringbuf", "perf"), default="ringbuf",
                       help="what the object sends records through: BPF ring buffer (default; kernel 5.8+) or"
                       " perf buffer (-D SDXFER_RINGBUF is the same as --transport ringbuf)")
    build.add_argument("--vmlinux", default=None, metavar="FILE",
                       help="kernel types header to build against (default: dumped from /sys/kernel/btf/vmlinux by bpftool)")
    build.add_argument("-o", dest="out", required=True, metavar="OUT.bpf.o", help="object file to write")
    consume = commands.add_parser("consume", help="decode every host's records from NATS JetStream, one event a line",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    consume.add_argument("url", metavar="nats://HOST:PORT/SUBJECT", help="server and subject the sensors publish to")
    consume.add_argument("--schema", default=None,
                         help="schema (with its lock) the sensors' records follow (default: the shipped one)")
    consume.add_argument("--durable", metavar="NAME", help="durable consumer: a restart goes on where it stopped"
                         " (default: an ephemeral one, from the stream's start)")
    consume.add_argument("--json", action="store_true", help="one JSON object per event: to_dict(), time, host")
    consume.add_argument("--max-message-bytes", type=size, default=MAX_MESSAGE_BYTES, metavar="SIZE",
                         help=f"refuse bigger messages unread (default {MAX_MESSAGE_BYTES >> 20}M)")
    connection = consume.add_argument_group("connection")
    add_connection_arguments(connection)
    connection.add_argument("--inbox-prefix", default="_INBOX", metavar="PREFIX",
                            help="subjects the server delivers events on (default _INBOX): one the sensors' users"
                            " may not subscribe to (docs/fleet.md, Security)")
    stream = consume.add_argument_group("stream")
    stream.add_argument("--create-stream", action="store_true",
                        help="create the stream if none holds SUBJECT.> (default: wait for a sensor to)")
    add_stream_arguments(stream)
    for command in (gen, compat, decode, build, consume):
        add_version_argument(command)
    return parser


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no event names given")
    return names


def _define(text: str) -> tuple[str, str | None]:
    name, equals, value = text.partition("=")
    return name, value if equals else None


def _gen(args, stdout, stderr) -> int:
    from ..codegen import SchemaError, lock_path, plan, render_all, render_lock
    from ..codegen.golang import go_package_name, valid_go_package
    from ..codegen.render import GO_PACKAGE, GO_PACKAGE_DIR, go_file_name, render_go

    schema = args.schema or str(SHIPPED_SCHEMA)
    try:
        layout = plan(schema, major=args.major)
    except SchemaError as exc:
        for problem in exc.problems:
            print(f"sdxfer gen: {problem}", file=stderr)
        return 2
    files = {Path(name): text for name, text in render_all(layout).items()}
    files[Path(GO_PACKAGE_DIR) / go_file_name(layout)] = render_go(layout, GO_PACKAGE)
    if args.go:
        package = args.go_package or go_package_name(Path(args.go).resolve().name, "events")
        if not valid_go_package(package):
            print(f"sdxfer gen: --go-package {package!r} is not a Go package name", file=stderr)
            return 2
        go_file = Path(args.go).resolve() / go_file_name(layout)
        files[go_file] = render_go(layout, package)
    lock = Path(lock_path(schema))
    lock_text = render_lock(layout.history, schema).encode("utf-8")
    lock_current = lock.is_file() and lock.read_bytes() == lock_text
    if args.out:
        out_dir = Path(args.out)
    elif Path(schema).resolve() == SHIPPED_SCHEMA:
        out_dir = SHIPPED_OUT
    else:
        print("sdxfer gen: --schema needs --out (generated/ holds the shipped schema's files)", file=stderr)
        return 2
    if args.check:
        stale = [name for name, text in files.items()
                 if not (out_dir / name).is_file() or (out_dir / name).read_bytes() != text.encode("utf-8")]
        if stale:
            print(f"sdxfer gen --check: stale in {out_dir}: {', '.join(str(name) for name in stale)}; run sdxfer gen",
                  file=stderr)
        if not lock_current:
            print(f"sdxfer gen --check: {lock} is stale or missing; run sdxfer gen and commit it", file=stderr)
        return 1 if stale or not lock_current else 0
    try:
        for name, text in files.items():
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / name).write_text(text, encoding="utf-8")
        if not lock_current:
            lock.write_bytes(lock_text)
    except OSError as exc:
        print(f"sdxfer gen: cannot write {exc.filename}: {exc.strerror}", file=stderr)
        return 1
    print(f"sdxfer gen: wrote {', '.join(str(name) for name in files if not name.is_absolute())} to {out_dir}",
          file=stdout)
    if args.go:
        print(f"sdxfer gen: wrote the Go package {package} to {go_file}", file=stdout)
    if not lock_current:
        print(f"sdxfer gen: wrote {lock}, the published versions; commit it with the schema", file=stdout)
    return 0


def _compat(args, stdout, stderr) -> int:
    from ..codegen import SchemaError, compat_problems, load_schema

    schemas, errors = [], []
    for path in (args.old, args.new):
        try:
            schemas.append(load_schema(path))
        except SchemaError as exc:
            errors += exc.problems
    for problem in errors:
        print(f"sdxfer compat: {problem}", file=stderr)
    if errors:
        return 2
    old, new = schemas
    problems = compat_problems(old, new)
    for problem in problems:
        print(problem, file=stdout)
    if problems:
        return 1
    print("compatible", file=stdout)
    return 0


def _decode(args, stdout, stderr) -> int:
    from .. import Decoder, default_decoder

    try:
        decoder = Decoder.from_schema(args.schema) if args.schema else default_decoder()
    except Exception as exc:  # SchemaError, with every problem listed
        print(f"sdxfer decode: {exc}", file=stderr)
        return 2
    if args.file == "-":
        source = contextlib.nullcontext(sys.stdin.buffer)  # left open: not ours to close
    else:
        try:
            # a device or a pipe may never end (/dev/zero): only standard input is read as a stream
            if not stat.S_ISREG(os.stat(args.file).st_mode):
                print(f"sdxfer decode: {args.file} is not a regular file; to read it as a stream,"
                      f" give it on standard input: sdxfer decode - < {args.file}", file=stderr)
                return 2
            source = open(args.file, "rb")
        except OSError as exc:
            print(f"sdxfer decode: cannot read {args.file}: {exc.strerror}", file=stderr)
            return 1
    from ..stream.records import iter_reassembled

    skips = 0

    def skipped(offset: int, length: int, reason: str) -> None:
        nonlocal skips
        skips += 1
        print(f"sdxfer decode: {args.file}: skipped {length} bytes at offset {offset}: {reason}", file=stderr)

    with source as stream:
        events = iter_reassembled(decoder, stream.read1, skipped, max_pending_bytes=args.max_pending_bytes,
                                  max_age_ns=args.max_age_ms * 1_000_000)
        while True:
            try:  # reading only: an error writing the output is not the input's
                event = next(events, None)
            except OSError as exc:
                print(f"sdxfer decode: cannot read {args.file}: {exc.strerror}", file=stderr)
                return 1
            if event is None:
                break
            stdout.write(json.dumps(event.to_dict()) + "\n")
    return 1 if skips else 0


def _run(args, stdout, stderr) -> int:
    from .run import run_probe

    return run_probe(args, stdout, stderr)


def _build(args, stdout, stderr) -> int:
    from ..errors import ProbeError
    from ..kernel.build import build

    try:
        warnings = build(args.program, args.out, schema=args.schema, defines=dict(args.defines), vmlinux=args.vmlinux,
                         transport=args.transport)
    except ProbeError as exc:
        message = str(exc)
        print(message if "\n" in message else f"sdxfer build: {message}", file=stderr)  # clang's messages as they are
        return 1
    if warnings:
        print(warnings.rstrip(), file=stderr)
    print(f"sdxfer build: wrote {args.out}", file=stdout)
    return 0


def _consume(args, stdout, stderr) -> int:
    from .consume import run_consume

    return run_consume(args, stdout, stderr)


def main(argv: list[str] | None = None, stdout=None, stderr=None) -> int:
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        check_arguments(parser, args)
    commands = {"gen": _gen, "compat": _compat, "decode": _decode, "run": _run, "build": _build, "consume": _consume}
    try:
        return commands[args.command](args, stdout, stderr)
    except BrokenPipeError:
        silence_stdout(sys.stdout)
        return 1


if __name__ == "__main__":
    sys.exit(main())
