import os
import random
import struct

import pytest

from sdxfer import btf
from sdxfer.btf import BtfError

VMLINUX = "/sys/kernel/btf/vmlinux"


class BtfBuilder:
    """Writes small BTF blobs: each add_* returns the new type's id."""

    def __init__(self, endian="<"):
        self.endian = endian
        self.strings = bytearray(b"\0")
        self.records = []

    def _str(self, name):
        if not name:
            return 0
        offset = len(self.strings)
        self.strings += name.encode() + b"\0"
        return offset

    def _u32s(self, *values):
        return struct.pack(f"{self.endian}{len(values)}I", *values)

    def add(self, kind, name="", size_or_type=0, vlen=0, trailing=b"", kind_flag=False):
        info = (kind_flag << 31) | (kind << 24) | vlen
        self.records.append(self._u32s(self._str(name), info, size_or_type) + trailing)
        return len(self.records)

    def int(self, name, size, bits=None, bit_offset=0):
        encoding = (bit_offset << 16) | (size * 8 if bits is None else bits)
        return self.add(btf.KIND_INT, name, size, trailing=self._u32s(encoding))

    def ref(self, kind, target, name=""):  # PTR, TYPEDEF, CONST, VOLATILE, ...
        return self.add(kind, name, target)

    def composite(self, name, size, members, union=False, kind_flag=False):
        """members: (name, type id, bit offset[, bitfield size])."""
        trailing = b""
        for member in members:
            member_name, type_id, bit_offset = member[:3]
            bitfield_size = member[3] if len(member) > 3 else 0
            offset = (bitfield_size << 24) | bit_offset if kind_flag else bit_offset
            trailing += self._u32s(self._str(member_name), type_id, offset)
        kind = btf.KIND_UNION if union else btf.KIND_STRUCT
        return self.add(kind, name, size, len(members), trailing, kind_flag)

    def every_other_kind(self, int_id):
        """One type of each kind that offsetof never uses, with trailing data, so a
        scanner that skips any of them wrongly misplaces everything after."""
        u32 = self._u32s
        self.ref(btf.KIND_PTR, int_id)
        self.add(btf.KIND_ARRAY, trailing=u32(int_id, int_id, 7))
        self.add(btf.KIND_ENUM, "colour", 4, 2, u32(self._str("RED"), 0, self._str("BLUE"), 1))
        self.add(btf.KIND_FWD, "opaque")
        self.ref(btf.KIND_RESTRICT, int_id)
        proto = self.add(btf.KIND_FUNC_PROTO, "", int_id, 2, u32(self._str("a"), int_id, 0, int_id))
        self.add(btf.KIND_FUNC, "f", proto)
        var = self.add(btf.KIND_VAR, "v", int_id, trailing=u32(1))
        self.add(btf.KIND_DATASEC, ".data", 8, 1, u32(var, 0, 4))
        self.add(btf.KIND_FLOAT, "double", 8)
        self.add(btf.KIND_DECL_TAG, "tag", var, trailing=u32(0xFFFFFFFF))
        self.ref(btf.KIND_TYPE_TAG, int_id, "user")
        self.add(btf.KIND_ENUM64, "big", 8, 1, u32(self._str("HUGE"), 1, 2))

    def build(self):
        types = b"".join(self.records)
        header = struct.pack(
            f"{self.endian}HBBIIIII", btf.BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(self.strings)
        )
        return header + types + bytes(self.strings)


def sample_blob(endian="<"):
    """Structs exercising nesting, typedefs, pointers and bitfields."""
    b = BtfBuilder(endian)
    u32 = b.int("u32", 4)
    u64 = b.int("u64", 8)
    b.every_other_kind(u32)
    # struct point { u32 x; u32 y; u64 z; }
    point = b.composite("point", 16, [("x", u32, 0), ("y", u32, 32), ("z", u64, 64)])
    # struct outer { u32 a; struct { u64 pad; union { u64 u; struct { u32 pad2; u32 deep; }; }; }; }
    inner = b.composite("", 8, [("pad2", u32, 0), ("deep", u32, 32)])
    anon_union = b.composite("", 8, [("u", u64, 0), ("", inner, 0)], union=True)
    anon_struct = b.composite("", 16, [("pad", u64, 0), ("", anon_union, 64)])
    b.composite("outer", 24, [("a", u32, 0), ("", anon_struct, 64)])
    # typedef struct { u32 val; } kuid_t;  struct cred { u64 usage; const kuid_t uid; struct point where; }
    kuid = b.ref(btf.KIND_TYPEDEF, b.composite("", 4, [("val", u32, 0)]), "kuid_t")
    const_kuid = b.ref(btf.KIND_CONST, b.ref(btf.KIND_VOLATILE, kuid))
    b.composite("cred", 32, [("usage", u64, 0), ("uid", const_kuid, 64), ("where", point, 128)])
    # struct task { struct point *p; u32 flags: 3; u32 after; }, in both member encodings
    point_ptr = b.ref(btf.KIND_PTR, point)
    b.composite("task_kf", 16, [("p", point_ptr, 0), ("flags", u32, 64, 3), ("after", u32, 96)], kind_flag=True)
    three_bits = b.int("u32", 4, bits=3)
    b.composite("task", 16, [("p", point_ptr, 0), ("flags", three_bits, 64), ("after", u32, 96)])
    u8 = b.int("u8", 1)
    b.composite("odd", 4, [("c", u8, 12)])
    b.composite("either", 8, [("i", u32, 0), ("l", u64, 0)], union=True)
    b.composite("twice", 4, [("x", u32, 0)])
    b.composite("twice", 8, [("x", u32, 32)])
    return b.build()


@pytest.fixture(scope="module")
def sample():
    return btf.Btf(sample_blob(), "sample")


# ---- synthetic BTF ----------------------------------------------------------


def test_exact_offsets_after_every_kind(sample):
    assert [sample.offsetof("point", m) for m in ("x", "y", "z")] == [0, 4, 8]
    assert sample.sizeof("point") == 16


def test_anonymous_struct_and_union_at_depth_two(sample):
    assert sample.offsetof("outer", "a") == 0
    assert sample.offsetof("outer", "pad") == 8
    assert sample.offsetof("outer", "u") == 16
    assert sample.offsetof("outer", "deep") == 20


def test_dotted_path_through_typedef_const_volatile(sample):
    assert sample.offsetof("cred", "uid.val") == 8
    assert sample.offsetof("cred", "where.z") == 24
    assert sample.offsetof("cred", "uid") == 8


def test_union_lookup_and_size(sample):
    assert sample.offsetof("either", "l") == 0
    assert sample.sizeof("either") == 8


def test_big_endian_blob_gives_same_offsets():
    big = btf.Btf(sample_blob(">"))
    assert big.offsetof("outer", "deep") == 20
    assert big.offsetof("cred", "uid.val") == 8


@pytest.mark.parametrize("struct_name", ["task", "task_kf"])
def test_bitfield_is_refused_but_neighbours_work(sample, struct_name):
    with pytest.raises(BtfError, match=rf"{struct_name}\.flags is a bitfield"):
        sample.offsetof(struct_name, "flags")
    assert sample.offsetof(struct_name, "after") == 12


def test_unaligned_member_is_refused(sample):
    with pytest.raises(BtfError, match="odd.c.*not byte aligned"):
        sample.offsetof("odd", "c")


def test_pointers_are_not_followed(sample):
    with pytest.raises(BtfError, match="task.p.x.*pointer"):
        sample.offsetof("task", "p.x")


def test_unknown_struct_and_member(sample):
    with pytest.raises(BtfError, match="no struct or union named 'nosuch'"):
        sample.offsetof("nosuch", "x")
    with pytest.raises(BtfError, match=r"point\.w: struct point has no member 'w'"):
        sample.offsetof("point", "w")
    with pytest.raises(BtfError, match=r"cred\.uid\.nope: struct cred\.uid has no member 'nope'"):
        sample.offsetof("cred", "uid.nope")
    with pytest.raises(BtfError, match="not a struct or union"):
        sample.offsetof("point", "x.y")
    with pytest.raises(BtfError, match="empty member name"):
        sample.offsetof("point", "x.")
    with pytest.raises(BtfError, match="no struct or union named 'u32'"):
        sample.sizeof("u32")


def test_ambiguous_struct_name(sample):
    with pytest.raises(BtfError, match="2 different structs/unions are named 'twice'"):
        sample.offsetof("twice", "x")


# ---- malformed input --------------------------------------------------------


def patched(blob, offset, fmt, value):
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(
    "blob, problem",
    [
        (b"", "shorter than the 24-byte header"),
        (b"\x7fELF" + bytes(40), "bad magic"),
        (patched(sample_blob(), 2, "<B", 2), "unsupported version 2"),
        (patched(sample_blob(), 4, "<I", 10**6), "header length"),
        (patched(sample_blob(), 20, "<I", 10**6), "sections end"),
        (patched(sample_blob(), 24 + 4, "<I", 31 << 24), "unknown kind 31"),
    ],
)
def test_malformed_header_or_types(blob, problem):
    with pytest.raises(BtfError, match=problem):
        btf.Btf(blob)


def test_every_truncation_is_refused():
    blob = sample_blob()
    for length in range(len(blob)):
        with pytest.raises(BtfError):
            btf.Btf(blob[:length])


def test_type_section_cut_mid_record():
    blob = sample_blob()
    (type_len,) = struct.unpack_from("<I", blob, 12)
    with pytest.raises(BtfError, match="cut off|runs past"):
        btf.Btf(patched(blob, 12, "<I", type_len - 4))


def test_corrupted_blobs_raise_only_btf_error():
    blob = sample_blob()
    rng = random.Random(1234)
    lookups = [("point", "z"), ("outer", "deep"), ("cred", "uid.val"), ("task", "flags"), ("either", "l")]
    outcomes = set()
    for _ in range(3000):
        corrupt = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        try:
            parsed = btf.Btf(bytes(corrupt))
            for name, path in lookups:
                try:
                    parsed.offsetof(name, path)
                    parsed.sizeof(name)
                    outcomes.add("ok")
                except BtfError:
                    outcomes.add("lookup error")
        except BtfError:
            outcomes.add("load error")
    assert outcomes == {"ok", "lookup error", "load error"}


def test_load_missing_file_explains_config(tmp_path):
    with pytest.raises(BtfError, match="CONFIG_DEBUG_INFO_BTF"):
        btf.load(str(tmp_path / "vmlinux"))
    with pytest.raises(BtfError, match="cannot read BTF"):
        btf.load(str(tmp_path))
    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(BtfError):
        btf.load(str(garbage))


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "vmlinux"
    path.write_bytes(sample_blob())
    assert btf.load(str(path)).offsetof("outer", "deep") == 20


# ---- the running kernel -----------------------------------------------------

needs_vmlinux = pytest.mark.skipif(
    not os.access(VMLINUX, os.R_OK), reason=f"{VMLINUX} absent or unreadable (kernel without BTF?)"
)


@pytest.fixture(scope="module")
def kernel():
    return btf.load()


@needs_vmlinux
def test_kernel_offsets_are_consistent(kernel):
    task_size = kernel.sizeof("task_struct")
    assert kernel.offsetof("task_struct", "tgid") == kernel.offsetof("task_struct", "pid") + 4
    for member in ("real_parent", "cred", "real_cred", "mm"):
        offset = kernel.offsetof("task_struct", member)
        assert 0 < offset < task_size and offset % 8 == 0, member
    arg_start = kernel.offsetof("mm_struct", "arg_start")
    assert kernel.offsetof("mm_struct", "arg_end") == arg_start + 8
    assert kernel.offsetof("mm_struct", "env_start") == arg_start + 16
    assert kernel.offsetof("mm_struct", "env_end") == arg_start + 24
    assert kernel.offsetof("mm_struct", "env_end") + 8 <= kernel.sizeof("mm_struct")
    uid = kernel.offsetof("cred", "uid.val")
    assert kernel.offsetof("cred", "gid.val") == uid + 4
    assert kernel.sizeof("cred") > uid


@needs_vmlinux
def test_kernel_refuses_pointers_and_unknown_members(kernel):
    with pytest.raises(BtfError, match="pointer"):
        kernel.offsetof("task_struct", "mm.arg_start")
    with pytest.raises(BtfError, match="no member 'no_such_member'"):
        kernel.offsetof("task_struct", "no_such_member")
