"""Host-C harness: packs records with a generated xfer.h compiled by gcc.

The harness is generated from the layout: it reads calls from stdin (event
index, then each field in record order) and writes every record the packers
emit as (u32 size, bytes). Timestamp and CPU are fixed so records compare
byte for byte.
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from sdxfer import C_INCLUDE_DIR
from sdxfer.codegen.layout import Layout

HOST_NOW_NS = 0x0102030405060708
UNKNOWN = object()  # a variable field passed as SDXFER_UNKNOWN
HOST_CPU = 3

_PRELUDE = f"""\
#define SDXFER_HOST
#define SDXFER_HOST_NOW_NS() 0x{HOST_NOW_NS:x}ULL
#define SDXFER_HOST_CPU() {HOST_CPU}
#include "xfer.h"
#include <stdio.h>
#include <stdlib.h>

int sdxfer_host_emit(void *ctx, const void *rec, __u32 size)
{{
    (void)ctx;
    fwrite(&size, 4, 1, stdout);
    fwrite(rec, 1, size, stdout);
    return 0;
}}

static void must_read(void *p, size_t n)
{{
    if (n && fread(p, 1, n, stdin) != n)
        exit(3);
}}

static __attribute__((unused)) __u64 read_int(void)
{{
    __u64 v;
    must_read(&v, 8);
    return v;
}}

/* unused: a schema need not have every kind of field */
/* present flag, then u32 length and bytes; NUL-terminated for C strings */
static __attribute__((unused)) char *read_var(__u32 *len)
{{
    __u8 present;
    char *p;
    must_read(&present, 1);
    *len = 0;
    if (!present)
        return NULL;
    if (present == 2)
        return (char *)SDXFER_UNKNOWN;
    must_read(len, 4);
    p = malloc(*len + 1);
    must_read(p, *len);
    p[*len] = 0;
    return p;
}}

static __attribute__((unused)) __u32 read_claimed(__u32 len)
{{
    __u8 given;
    must_read(&given, 1);
    if (given)
        must_read(&len, 4);
    return len;
}}

static __attribute__((unused)) void *read_fixed(size_t n)
{{
    __u8 present;
    void *p;
    must_read(&present, 1);
    if (!present)
        return NULL;
    p = malloc(n);
    must_read(p, n);
    return p;
}}
"""


def harness_source(layout: Layout) -> str:
    cases = []
    for e in layout.events:
        reads, args, frees = [], ["NULL"], []
        for i, f in enumerate(e.event.fields):
            if f.source and f.type.variable:  # the packer reads it from sdxfer_host_sources
                reads.append(f"__u32 l{i}; char *a{i} = read_var(&l{i}); sdxfer_host_sources.{f.source} = a{i};")
                frees.append(f"if (a{i} != (char *)SDXFER_UNKNOWN) free(a{i});")
            elif f.source:
                reads.append(f"sdxfer_host_sources.{f.source} = read_int();")
            elif f.type.takes_count:
                # the entry count the packer is told may differ from the entries there
                reads.append(f"__u32 l{i}; char *a{i} = read_var(&l{i});"
                             f" if (a{i} && a{i} != (char *)SDXFER_UNKNOWN) l{i} = read_claimed(l{i} / {f.entry_size});")
                args += [f"a{i}", f"l{i}"]
                frees.append(f"if (a{i} != (char *)SDXFER_UNKNOWN) free(a{i});")
            elif f.type.takes_length:
                # the length the packer is told may differ from the bytes there (SDXFER_LEN_UNKNOWN)
                reads.append(f"__u32 l{i}; char *a{i} = read_var(&l{i});"
                             f" if (a{i} && a{i} != (char *)SDXFER_UNKNOWN) l{i} = read_claimed(l{i});")
                args += [f"a{i}", f"l{i}"]
                frees.append(f"if (a{i} != (char *)SDXFER_UNKNOWN) free(a{i});")
            elif f.type.variable:
                reads.append(f"__u32 l{i}; char *a{i} = read_var(&l{i});")
                args.append(f"a{i}")
                frees.append(f"if (a{i} != (char *)SDXFER_UNKNOWN) free(a{i});")
            elif f.type.by_pointer:
                reads.append(f"void *a{i} = read_fixed({f.fixed_size});")
                args.append(f"a{i}")
                frees.append(f"free(a{i});")
            else:
                reads.append(f"__u64 a{i} = read_int();")
                args.append(f"a{i}")
        body = "\n            ".join(reads + [f"{e.event.name}_print({', '.join(args)});"] + frees)
        cases.append(f"        case {e.index}: {{\n            {body}\n            break;\n        }}")
    return _PRELUDE + (
        "\nint main(void)\n{\n    __u32 index;\n    while (fread(&index, 4, 1, stdin) == 1) {\n"
        "        switch (index) {\n" + "\n".join(cases) + "\n        default:\n            return 4;\n        }\n    }\n    return 0;\n}\n"
    )


def build(layout: Layout, header_dir: Path, workdir: Path) -> Path:
    source = workdir / "harness.c"
    binary = workdir / "harness"
    source.write_text(harness_source(layout))
    compiled = subprocess.run(
        ["gcc", "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror", "-I", str(header_dir), "-I", str(C_INCLUDE_DIR), "-o", str(binary), str(source)],
        capture_output=True, text=True,
    )
    assert compiled.returncode == 0, compiled.stderr
    return binary


def encode_call(layout: Layout, index: int, values: dict) -> bytes:
    """One call for the harness: `values` maps field name to an int, bytes, or None (absent/NULL);
    a blob or strlist may be (bytes, length the packer is told), an array (entry bytes, count told).
    Common fields (from a source) are set in sdxfer_host_sources before the call."""
    out = bytearray(struct.pack("<I", index))
    for f in layout.events[index].event.fields:
        value = values[f.name]
        if f.type.variable or f.type.by_pointer:
            claimed = None
            counted = f.type.takes_length or f.type.takes_count
            if counted and isinstance(value, tuple):
                value, claimed = value
            if value is None:
                out += b"\0"
            elif value is UNKNOWN:
                out += b"\2"
            elif f.type.variable:
                out += b"\1" + struct.pack("<I", len(value)) + value
            else:
                assert len(value) == f.fixed_size
                out += b"\1" + value
            if counted and value is not None and value is not UNKNOWN:
                out += b"\0" if claimed is None else b"\1" + struct.pack("<I", claimed)
        else:
            out += struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)
    return bytes(out)


def run(binary: Path, calls: bytes) -> list[bytes]:
    proc = subprocess.run([str(binary)], input=calls, capture_output=True, check=True)
    records, data, offset = [], proc.stdout, 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        records.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return records
