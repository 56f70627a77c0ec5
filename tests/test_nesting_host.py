"""The nesting-safe scratch in host mode: a packer re-entered from the emit
hook (as an interrupt-context program re-enters on a CPU) packs into another
slot and leaves the outer record intact; with every slot taken a record is
dropped and counted; SDXFER_LOCAL gives its slot back on leaving scope."""
import subprocess

from sdxfer import C_INCLUDE_DIR, Decoder, record
from sdxfer.cli import main as sdxfer_main

SCHEMA = """\
version: 1
slot_size: 512
events:
  - name: note
    id: 3
    fields:
      - {name: n, type: u32}
      - {name: tag, type: str, max: 40}
      - {name: body, type: blob, max: 300}
"""

PROGRAM = r"""
#define SDXFER_HOST
#define SDXFER_HOST_NOW_NS() 42ULL
#include "xfer.h"
#include <stdio.h>

static int nest_left;
static int inner_results[64];
static int inner_count;
static char body[300];

static int pack(__u32 n)
{
    char tag[40];
    snprintf(tag, sizeof(tag), "note-%u", (unsigned)n);
    memset(body, 'a' + (int)(n % 26), sizeof(body));
    return note_print(NULL, n, tag, body, sizeof(body));
}

int sdxfer_host_emit(void *ctx, const void *rec, __u32 size)
{
    (void)ctx;
    /* the outer record is complete but not yet written out: an interrupt here
     * re-enters the packer */
    if (nest_left > 0) {
        int inner = inner_count++;
        nest_left--;
        inner_results[inner] = pack(1000 + (unsigned)inner);
    }
    fwrite(&size, 4, 1, stdout);
    fwrite(rec, 1, size, stdout);
    return 0;
}

struct area {
    char bytes[400];
};

int main(int argc, char **argv)
{
    (void)argv;
    nest_left = argc > 1 ? NESTS : 0;
    int outer = pack(7);
    nest_left = 0;
    fprintf(stderr, "outer=%d busy=%llu nesting_drops=%llu drops=%llu inner=",
            outer, (unsigned long long)sdxfer_this_cpu()->busy,
            (unsigned long long)sdxfer_this_cpu()->nesting_drops, (unsigned long long)sdxfer_host_drops[0]);
    for (int i = 0; i < inner_count; i++)
        fprintf(stderr, "%d,", inner_results[i]);
    {
        SDXFER_LOCAL(struct area, locals);
        fprintf(stderr, " local_busy=%llu", (unsigned long long)sdxfer_this_cpu()->busy);
        memset(locals->bytes, 'z', sizeof(locals->bytes));
        pack(8);  /* the record takes another slot: the locals stay as they were */
        fprintf(stderr, " locals_intact=%d", locals->bytes[0] == 'z' && locals->bytes[399] == 'z');
    }
    fprintf(stderr, " after_scope=%llu\n", (unsigned long long)sdxfer_this_cpu()->busy);
    return 0;
}
"""


def _build(tmp_path, nests: int):
    schema = tmp_path / "note.yaml"
    schema.write_text(SCHEMA)
    assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(tmp_path)]) == 0
    source = tmp_path / "nest.c"
    source.write_text(PROGRAM)
    binary = tmp_path / "nest"
    subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", f"-DNESTS={nests}", "-I", str(tmp_path),
                    "-I", str(C_INCLUDE_DIR), "-o", str(binary), str(source)], check=True)
    return Decoder.from_schema(str(schema)), binary


def _run(binary, *args):
    proc = subprocess.run([str(binary), *args], capture_output=True, check=True)
    records, data, offset = [], proc.stdout, 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "little")
        records.append(data[offset + 4:offset + 4 + size])
        offset += 4 + size
    fields = dict(part.split("=", 1) for part in proc.stderr.decode().split())
    return records, fields


def _check(event, n):
    assert (event.n, event.tag, event.body) == (n, f"note-{n}", bytes([ord("a") + n % 26]) * 300)


def test_a_packer_reentered_from_the_emit_hook_keeps_both_records_intact(tmp_path):
    decoder, binary = _build(tmp_path, nests=2)
    plain, _ = _run(binary)
    nested, state = _run(binary, "nest")
    events = [decoder.decode(r) for r in nested]
    # innermost first: each inner record is written out before the one it interrupted
    assert [e.n for e in events] == [1001, 1000, 7, 8]
    for e in events:
        _check(e, e.n)
    outer = next(r for r, e in zip(nested, events) if e.n == 7)
    head = record.HEADER_OFFSETS["seq"]
    # the same bytes as without nesting, but for the sequence number the inner records took first
    assert outer[:head] + outer[head + 8:] == plain[0][:head] + plain[0][head + 8:]
    assert state == {"outer": str(len(plain[0])), "busy": "0", "nesting_drops": "0", "drops": "0",
                     "inner": f"{len(nested[0])},{len(nested[1])},", "local_busy": "1", "locals_intact": "1",
                     "after_scope": "0"}


def test_past_the_last_slot_a_record_is_dropped_and_counted(tmp_path):
    decoder, binary = _build(tmp_path, nests=record.SCRATCH_SLOTS + 3)
    records, state = _run(binary, "nest")
    events = [decoder.decode(r) for r in records]
    results = [int(x) for x in state["inner"].rstrip(",").split(",")]
    # the outer record holds slot 0; inner ones take the others until none is left
    kept = record.SCRATCH_SLOTS - 1
    assert [r > 0 for r in results] == [True] * kept + [False] * (len(results) - kept)
    assert set(results[kept:]) == {-record.ENESTED}
    assert (state["nesting_drops"], state["drops"]) == ("1", "1")  # the deepest re-entry is refused once
    assert state["busy"] == "0" and state["after_scope"] == "0"
    for e in events:
        _check(e, e.n)
    assert sorted(e.n for e in events) == sorted([7, 8] + [1000 + i for i in range(kept)])
