"""The header in host mode is ordinary C: strict ISO C11 or GNU C, pedantic,
with or without the kernel's <linux/types.h> included first."""
import subprocess

import pytest

from sdxfer import C_INCLUDE_DIR

PROGRAM = """{first}
#define SDXFER_HOST
#include "xfer.h"

int sdxfer_host_emit(void *ctx, const void *rec, __u32 size)
{{
    (void)ctx;
    (void)rec;
    (void)size;
    return 0;
}}

int main(void)
{{
    return {call} == {size} ? 0 : 1;
}}
"""


def _call(generated):
    """A call of the first event with every pointer NULL: it sends its fixed part only."""
    e = generated.layout.events[0]
    args = ["NULL"]
    for f in e.event.fields:
        if f.source:
            continue  # filled by the packer: sdxfer_host_sources is all zeros and NULL
        if f.type.takes_length or f.type.takes_count:
            args += ["NULL", "0"]
        else:
            args.append("NULL" if f.type.by_pointer or f.type.variable else "0")
    return f"{e.event.name}_print({', '.join(args)})", e.payload_off


@pytest.mark.parametrize("std", ["c11", "gnu11", "gnu17"])
@pytest.mark.parametrize("first", ["", "#include <linux/types.h>"], ids=["alone", "after-linux-types"])
def test_host_header_compiles_and_packs(generated, tmp_path, std, first):
    call, size = _call(generated)
    source = tmp_path / "host.c"
    source.write_text(PROGRAM.format(first=first, call=call, size=size))
    binary = tmp_path / "host"
    compiled = subprocess.run(["gcc", f"-std={std}", "-pedantic", "-Wall", "-Wextra", "-Werror",
                               "-I", str(generated.out), "-I", str(C_INCLUDE_DIR), "-o", str(binary), str(source)], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    assert subprocess.run([str(binary)]).returncode == 0
