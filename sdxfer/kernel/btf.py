"""Structure member offsets from the running kernel's BTF.

The probe reads task_struct, mm_struct and cred through raw offsets. Installed
kernel headers may belong to another kernel, so the offsets come from the
kernel's own type description, /sys/kernel/btf/vmlinux (format: linux
Documentation/bpf/btf.rst).

vmlinux BTF holds ~100k types, so load() makes a single pass that records where
each type starts and indexes structs/unions by name; members are decoded only
for the structs actually looked up.
"""

import struct

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

BTF_MAGIC = 0xEB9F
HEADER_SIZE = 24  # magic, version, flags, hdr_len, type_off/len, str_off/len
TYPE_SIZE = 12  # struct btf_type: name_off, info, size_or_type

KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19

# Bytes that follow the btf_type record: (fixed part, size per vlen entry).
TRAILING_DATA = {
    KIND_INT: (4, 0),  # encoding, bit offset, bit count
    KIND_PTR: (0, 0),
    KIND_ARRAY: (12, 0),  # element type, index type, nelems
    KIND_STRUCT: (0, 12),  # btf_member: name_off, type, offset
    KIND_UNION: (0, 12),
    KIND_ENUM: (0, 8),  # name_off, value
    KIND_FWD: (0, 0),
    KIND_TYPEDEF: (0, 0),
    KIND_VOLATILE: (0, 0),
    KIND_CONST: (0, 0),
    KIND_RESTRICT: (0, 0),
    KIND_FUNC: (0, 0),
    KIND_FUNC_PROTO: (0, 8),  # btf_param: name_off, type
    KIND_VAR: (4, 0),  # linkage
    KIND_DATASEC: (0, 12),  # btf_var_secinfo: type, offset, size
    KIND_FLOAT: (0, 0),
    KIND_DECL_TAG: (4, 0),  # component_idx
    KIND_TYPE_TAG: (0, 0),
    KIND_ENUM64: (0, 12),  # name_off, value low, value high
}

# Kinds that only qualify or rename another type; members are seen through them.
TRANSPARENT_KINDS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
COMPOSITE_KINDS = (KIND_STRUCT, KIND_UNION)
KIND_NAMES = {KIND_STRUCT: "struct", KIND_UNION: "union"}

# Malformed BTF could make typedef chains or anonymous members loop forever.
MAX_TYPE_CHAIN = 64


class BtfError(Exception):
    """BTF is missing, malformed, or lacks a requested struct or member."""


def load(path: str = VMLINUX_BTF) -> "Btf":
    """Read and index a BTF file; raise BtfError for anything wrong with it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BtfError(
            f"no BTF at {path}: this kernel was built without CONFIG_DEBUG_INFO_BTF; "
            "sdxfer needs it to find task_struct offsets (use a kernel with BTF enabled)"
        ) from None
    except PermissionError:
        raise BtfError(f"cannot read BTF at {path}: permission denied; run as root") from None
    except OSError as e:
        raise BtfError(f"cannot read BTF at {path}: {e.strerror or e}") from None
    return Btf(data, path)


class Btf:
    """Index over one BTF blob; decodes struct members on demand."""

    def __init__(self, data: bytes, path: str = "<bytes>"):
        self.path = path
        self._data = data
        self._parse_header()
        self._index_types()
        self._members_cache: dict[int, list[tuple[str, int, int, int]]] = {}

    # ---- loading -------------------------------------------------------

    def _malformed(self, problem: str) -> BtfError:
        return BtfError(
            f"malformed BTF in {self.path}: {problem}; "
            "the file is truncated or not BTF (expected the kernel's /sys/kernel/btf/vmlinux)"
        )

    def _parse_header(self) -> None:
        data = self._data
        if len(data) < HEADER_SIZE:
            raise self._malformed(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
        # The magic tells the byte order of the file.
        if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
            self._endian = "<"
        elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
            self._endian = ">"
        else:
            raise self._malformed(f"bad magic {data[:2].hex()} (want 9feb)")
        _, version, _, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            self._endian + "HBBIIIII", data
        )
        if version != 1:
            raise self._malformed(f"unsupported version {version}")
        if hdr_len < HEADER_SIZE or hdr_len > len(data):
            raise self._malformed(f"header length {hdr_len} out of range")
        # Section offsets are relative to the end of the header.
        self._type_start = hdr_len + type_off
        self._type_end = self._type_start + type_len
        str_start = hdr_len + str_off
        str_end = str_start + str_len
        if self._type_end > len(data) or str_end > len(data):
            raise self._malformed(
                f"sections end at byte {max(self._type_end, str_end)} but the file has {len(data)}"
            )
        self._strings = data[str_start:str_end]
        self._type_header = struct.Struct(self._endian + "III")
        self._member = struct.Struct(self._endian + "III")

    def _index_types(self) -> None:
        """One pass: where each type id starts, and struct/union ids by name."""
        data, end = self._data, self._type_end
        unpack = self._type_header.unpack_from
        offsets = [0]  # type id 0 is void and has no record
        composites_by_name_off: dict[int, list[int]] = {}
        pos = self._type_start
        while pos < end:
            if pos + TYPE_SIZE > end:
                raise self._malformed(f"type record {len(offsets)} cut off at the end of the type section")
            name_off, info, _ = unpack(data, pos)
            kind = (info >> 24) & 0x1F
            trailing = TRAILING_DATA.get(kind)
            if trailing is None:
                raise self._malformed(f"type {len(offsets)} has unknown kind {kind}")
            if (kind == KIND_STRUCT or kind == KIND_UNION) and name_off:
                composites_by_name_off.setdefault(name_off, []).append(len(offsets))
            offsets.append(pos)
            pos += TYPE_SIZE + trailing[0] + trailing[1] * (info & 0xFFFF)
        if pos > end:
            raise self._malformed(f"type record {len(offsets) - 1} runs past the end of the type section")
        self._offsets = offsets
        # Names are decoded for structs/unions only: far fewer than all types.
        self._composites: dict[str, list[int]] = {}
        for name_off, ids in composites_by_name_off.items():
            self._composites.setdefault(self._string(name_off), []).extend(ids)

    def _string(self, offset: int) -> str:
        end = self._strings.find(b"\0", offset)
        if offset >= len(self._strings) or end < 0:
            raise self._malformed(f"string offset {offset} outside the string section")
        return self._strings[offset:end].decode("utf-8", "replace")

    # ---- type access ---------------------------------------------------

    def _type(self, type_id: int) -> tuple[int, int, bool, int, int]:
        """(name_off, kind, kind_flag, vlen, size_or_type) of a type id."""
        if not 0 < type_id < len(self._offsets):
            raise self._malformed(f"reference to type id {type_id}, which does not exist")
        name_off, info, size_or_type = self._type_header.unpack_from(
            self._data, self._offsets[type_id]
        )
        return name_off, (info >> 24) & 0x1F, bool(info >> 31), info & 0xFFFF, size_or_type

    def _strip(self, type_id: int) -> int:
        """Follow typedef/const/volatile/restrict/type_tag to the underlying type."""
        for _ in range(MAX_TYPE_CHAIN):
            if type_id == 0:
                return 0
            _, kind, _, _, target = self._type(type_id)
            if kind not in TRANSPARENT_KINDS:
                return type_id
            type_id = target
        raise self._malformed(f"typedef/modifier chain longer than {MAX_TYPE_CHAIN} at type {type_id}")

    def _members(self, type_id: int) -> list[tuple[str, int, int, int]]:
        """(name, type id, bit offset, bitfield size or 0) for each member."""
        cached = self._members_cache.get(type_id)
        if cached is not None:
            return cached
        _, _, kind_flag, vlen, _ = self._type(type_id)
        members = []
        pos = self._offsets[type_id] + TYPE_SIZE
        for _ in range(vlen):
            name_off, member_type, offset = self._member.unpack_from(self._data, pos)
            pos += 12
            if kind_flag:  # offset packs bitfield size (top 8 bits) and bit offset
                bit_offset, bitfield_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bitfield_size = offset, 0
            members.append((self._string(name_off), member_type, bit_offset, bitfield_size))
        self._members_cache[type_id] = members
        return members

    def _is_bitfield(self, member_type: int, bitfield_size: int) -> bool:
        if bitfield_size:
            return True
        # Without kind_flag a bitfield is an int whose bit count is narrower than
        # its storage, or that starts at a bit offset inside it.
        type_id = self._strip(member_type)
        if type_id == 0:
            return False
        _, kind, _, _, size = self._type(type_id)
        if kind != KIND_INT:
            return False
        (encoding,) = struct.unpack_from(self._endian + "I", self._data, self._offsets[type_id] + TYPE_SIZE)
        bits, bit_offset = encoding & 0xFF, (encoding >> 16) & 0xFF
        return bit_offset != 0 or bits != size * 8

    def _composite(self, name: str) -> int:
        ids = self._composites.get(name)
        if not ids:
            raise BtfError(
                f"no struct or union named {name!r} in {self.path}: "
                "check the name, or this kernel does not define it"
            )
        # File-local structs may share a name with different layouts (vmlinux
        # has two 'struct console'); picking one would silently give wrong offsets.
        if len(ids) > 1:
            raise BtfError(
                f"{len(ids)} different structs/unions are named {name!r} in {self.path}; "
                "the name is ambiguous, so sdxfer cannot tell which layout is meant"
            )
        return ids[0]

    def _find_member(self, composite_id: int, name: str, depth: int = 0):
        """(type id, bit offset) of a member, searching anonymous struct/union members too."""
        if depth > MAX_TYPE_CHAIN:
            raise self._malformed(f"anonymous members nested deeper than {MAX_TYPE_CHAIN}")
        for member_name, member_type, bit_offset, bitfield_size in self._members(composite_id):
            if member_name == name:
                return member_type, bit_offset, bitfield_size
            if not member_name:
                inner = self._strip(member_type)
                if inner and self._type(inner)[1] in COMPOSITE_KINDS:
                    found = self._find_member(inner, name, depth + 1)
                    if found:
                        return found[0], bit_offset + found[1], found[2]
        return None

    # ---- public API ----------------------------------------------------

    def offsetof(self, struct_name: str, member_path: str) -> int:
        """Byte offset of a member; dots step into embedded structs/unions, never pointers."""
        where = f"{struct_name}.{member_path}"
        current = self._composite(struct_name)
        total_bits = 0
        parts = member_path.split(".")
        if "" in parts:
            raise BtfError(f"{where}: empty member name in the path")
        for i, part in enumerate(parts):
            found = self._find_member(current, part)
            if found is None:
                kind = KIND_NAMES[self._type(current)[1]]
                container = struct_name if i == 0 else ".".join([struct_name] + parts[:i])
                raise BtfError(
                    f"{where}: {kind} {container} has no member {part!r} in {self.path}; "
                    "this kernel's layout differs, check the member name for this version"
                )
            member_type, bit_offset, bitfield_size = found
            total_bits += bit_offset
            if i == len(parts) - 1:
                if self._is_bitfield(member_type, bitfield_size):
                    raise BtfError(f"{where} is a bitfield; it has no byte offset, read the containing word")
                break
            current = self._strip(member_type)
            kind = self._type(current)[1] if current else None
            if kind == KIND_PTR:
                raise BtfError(
                    f"{where}: {part!r} is a pointer; offsetof does not follow pointers, "
                    "read the pointer and look up the pointed-to struct separately"
                )
            if kind not in COMPOSITE_KINDS:
                raise BtfError(f"{where}: {part!r} is not a struct or union, so it has no members")
        if total_bits % 8:
            raise BtfError(f"{where} starts at bit {total_bits}, which is not byte aligned")
        return total_bits // 8

    def has_composite(self, name: str) -> bool:
        return name in self._composites

    def member_paths(self, struct_name: str, flat: str) -> list[str]:
        """Every dotted member path of `struct_name` whose member names, joined
        by '_', spell `flat` (macro names cannot hold dots). Anonymous
        structs and unions are walked as offsetof walks them."""
        return list(self._paths_from(self._composite(struct_name), flat, 0))

    def _paths_from(self, composite_id: int, flat: str, depth: int):
        if depth > MAX_TYPE_CHAIN:
            raise self._malformed(f"members nested deeper than {MAX_TYPE_CHAIN}")
        for end in range(1, len(flat) + 1):
            if end < len(flat) and flat[end] != "_":
                continue
            found = self._find_member(composite_id, flat[:end])
            if found is None:
                continue
            if end == len(flat):
                yield flat
                continue
            inner = self._strip(found[0])
            if inner and self._type(inner)[1] in COMPOSITE_KINDS:
                for rest in self._paths_from(inner, flat[end + 1:], depth + 1):
                    yield f"{flat[:end]}.{rest}"

    def sizeof(self, type_name: str) -> int:
        """Size in bytes of a named struct or union."""
        return self._type(self._composite(type_name))[4]
