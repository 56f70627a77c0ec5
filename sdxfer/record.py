"""The record format every schema shares, in one place.

The generator (codegen) lays events out around these definitions and prints
them into the C header; the runtime builds its header parser and value
parsers from them. Changing any of them changes LAYOUT_VERSION.
"""
import struct

LAYOUT_VERSION = 2

# The header of every record: (name, C type, struct format), naturally aligned in order.
HEADER = (
    ("timestamp_ns", "__u64", "Q"),  # bpf_ktime_get_ns(): CLOCK_MONOTONIC
    ("seq", "__u64", "Q"),  # per-CPU record number; a gap is a lost record
    ("size", "__u32", "I"),  # bytes used, header included
    # of the event's lineage (its first published version): the same across
    # compatible versions, differs => an unrelated schema
    ("fingerprint", "__u32", "I"),
    ("id", "__u16", "H"),  # event id from the schema
    ("payload_off", "__u16", "H"),  # where the variable bytes start
    ("cpu", "__u16", "H"),
    ("version", "__u16", "H"),  # the event's published version, from 1
)
HEADER_FORMAT = "<" + "".join(fmt for _, _, fmt in HEADER)
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)
HEADER_OFFSETS = {
    name: struct.calcsize("<" + "".join(fmt for _, _, fmt in HEADER[:i])) for i, (name, _, _) in enumerate(HEADER)
}

# A variable field's descriptor in the fixed part: payload offset (0: absent),
# bytes kept, bytes lost (LOST_UNKNOWN: truncated by an unknown amount).
DESCRIPTOR = (("off", "__u16", "H"), ("len", "__u16", "H"), ("lost", "__u32", "I"))
DESCRIPTOR_FORMAT = "".join(fmt for _, _, fmt in DESCRIPTOR)
DESCRIPTOR_SIZE = struct.calcsize("<" + DESCRIPTOR_FORMAT)
LOST_UNKNOWN = 0xFFFFFFFF

CREDS_MEMBERS = ("uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid")
SOCKADDR_SIZE = 20  # u16 family, u16 port (network order), 16 address bytes

# How the bytes of each variable type are turned into a value.
VARIABLE_DECODING = {"str": "text", "ustr": "text", "strlist": "list", "blob": "bytes", "ublob": "bytes"}
