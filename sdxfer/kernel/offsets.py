"""Kernel structure offsets and sizes a probe asks for by naming them.

A probe uses macros; every one found in its text (comments aside) is
resolved from the running kernel's BTF and passed to the compiler as -D:

    BTF_OFF_<STRUCT>_<MEMBER>           offsetof(struct, member)
    BTF_OFF_<STRUCT>_<MEMBER>_<MEMBER>  a member of an embedded struct or union,
                                        e.g. BTF_OFF_SOCK___SK_COMMON_SKC_DADDR
                                        is sock.__sk_common.skc_daddr
    BTF_SIZE_<STRUCT>                   sizeof(struct)

Names are matched case-insensitively against the kernel's (lower-case)
names; members of anonymous structs and unions are found without naming
them (BTF_OFF_MM_STRUCT_ARG_START). A spelling that fits two different
places is refused, and so is a struct or member this kernel lacks.

SDXFER_MEMBER(struct, member) and SDXFER_SIZE(struct) (sdxfer_members.h) are
BTF_OFF_<struct>_<member> and BTF_SIZE_<struct> under BCC, found here too; in
a CO-RE build they are relocations instead.
"""
from __future__ import annotations

import re

from .btf import BtfError
from ..errors import ProbeError

_MACRO = re.compile(r"\bBTF_(OFF|SIZE)_([A-Za-z0-9_]+)\b")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_MEMBER = re.compile(r"\bSDXFER_MEMBER\(\s*([A-Za-z_]\w*)\s*,\s*([A-Za-z_]\w*)\s*\)")
_SIZE = re.compile(r"\bSDXFER_SIZE\(\s*([A-Za-z_]\w*)\s*\)")
_MEMBER_DEFINITION = re.compile(r"#[ \t]*define[ \t]+SDXFER_(MEMBER|SIZE)\b")


def macros_used(text: str) -> list[str]:
    """The BTF_OFF_ and BTF_SIZE_ names in C text (SDXFER_MEMBER's and SDXFER_SIZE's among them),
    comments left out, sorted."""
    code = _MEMBER_DEFINITION.sub(" ", _COMMENT.sub(" ", text))
    names = {m.group(0) for m in _MACRO.finditer(code)}
    names |= {f"BTF_OFF_{struct}_{member}" for struct, member in _MEMBER.findall(code)}
    return sorted(names | {f"BTF_SIZE_{struct}" for struct in _SIZE.findall(code)})


def _underscores(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if c == "_"]


def _resolve_offset(btf, name: str, spelled: str) -> int:
    candidates = {}
    structs_seen = []
    for split in _underscores(spelled):
        struct, flat = spelled[:split], spelled[split + 1:]
        if not struct or not flat or not btf.has_composite(struct):
            continue
        structs_seen.append(struct)
        for path in btf.member_paths(struct, flat):
            try:
                candidates[f"{struct}.{path}"] = btf.offsetof(struct, path)
            except BtfError as exc:
                raise ProbeError(f"{name}: {exc}") from None
    if len(set(candidates.values())) > 1:
        raise ProbeError(f"{name} is ambiguous in this kernel: it spells {', '.join(sorted(candidates))}, "
                         "at different offsets")
    if candidates:
        return next(iter(candidates.values()))
    if structs_seen:
        longest = max(structs_seen, key=len)
        member = spelled[len(longest) + 1:]
        raise ProbeError(f"{name}: struct {longest} has no member (or member path) {member!r} in this kernel ({btf.path})")
    raise ProbeError(f"{name}: this kernel ({btf.path}) has no struct or union named by any prefix of {spelled!r}")


def resolve(btf, names: list[str]) -> dict[str, int]:
    """Macro name -> value for every name; ProbeError (one line) for the first that fails."""
    values = {}
    for name in names:
        kind, spelled = _MACRO.fullmatch(name).groups()
        spelled = spelled.lower()
        if kind == "SIZE":
            if not btf.has_composite(spelled):
                raise ProbeError(f"{name}: this kernel ({btf.path}) has no struct or union {spelled!r}")
            try:
                values[name] = btf.sizeof(spelled)
            except BtfError as exc:
                raise ProbeError(f"{name}: {exc}") from None
        else:
            values[name] = _resolve_offset(btf, name, spelled)
    return values
