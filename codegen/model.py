"""The schema model: what `schema/events.yaml` says, checked and typed.

A `Schema` is built only by `codegen.schema.load_schema`, which has already
validated it; everything downstream (layout, renderers) trusts it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..runtime.record import CREDS_MEMBERS, DESCRIPTOR_SIZE, SOCKADDR_SIZE
from . import naming


@dataclass(frozen=True)
class FieldType:
    """One schema type: how it is stored in the fixed part of a record.

    Variable types (`variable=True`) store an `sdxfer_var` descriptor there and
    their bytes in the payload; `reader` names how the packer copies them.
    """

    name: str
    size: int  # bytes in the fixed part (per element for `bytes`)
    align: int
    variable: bool = False
    signed: bool = False
    reader: str = ""  # variable types: kernel_str, user_str, kernel_blob or user_blob
    needs_max: bool = False
    needs_len: bool = False
    by_pointer: bool = False  # fixed-size value the C packer takes as `const void *`
    text: bool = False  # fixed-size bytes decoded as text up to the first NUL
    entries: bool = False  # a variable-length array of fixed-size entries (`of`)

    @property
    def takes_length(self) -> bool:
        """The C packer takes a pointer and a `<name>_len` byte count."""
        return self.reader.endswith("_blob") and not self.entries

    @property
    def may_span(self) -> bool:
        """May take a `total` beyond `max` (continuation records)."""
        return self.takes_length

    @property
    def takes_count(self) -> bool:
        """The C packer takes a pointer to entries and a `<name>_count` entry count."""
        return self.entries

    @property
    def from_user(self) -> bool:
        return self.reader.startswith("user_")


DESCRIPTOR_ALIGN = 4

TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("u8", 1, 1),
        FieldType("u16", 2, 2),
        FieldType("u32", 4, 4),
        FieldType("u64", 8, 8),
        FieldType("s8", 1, 1, signed=True),
        FieldType("s16", 2, 2, signed=True),
        FieldType("s32", 4, 4, signed=True),
        FieldType("s64", 8, 8, signed=True),
        FieldType("ipv4", 4, 4),
        FieldType("ipv6", 16, 4, by_pointer=True),
        FieldType("sockaddr", SOCKADDR_SIZE, 4, by_pointer=True),
        FieldType("creds", 4 * len(CREDS_MEMBERS), 4, by_pointer=True),
        FieldType("bytes", 1, 1, needs_len=True, by_pointer=True),
        FieldType("chars", 1, 1, needs_len=True, by_pointer=True, text=True),
        FieldType("str", DESCRIPTOR_SIZE, DESCRIPTOR_ALIGN, variable=True, reader="kernel_str", needs_max=True),
        FieldType("ustr", DESCRIPTOR_SIZE, DESCRIPTOR_ALIGN, variable=True, reader="user_str", needs_max=True),
        FieldType("strlist", DESCRIPTOR_SIZE, DESCRIPTOR_ALIGN, variable=True, reader="user_blob", needs_max=True),
        FieldType("blob", DESCRIPTOR_SIZE, DESCRIPTOR_ALIGN, variable=True, reader="kernel_blob", needs_max=True),
        FieldType("ublob", DESCRIPTOR_SIZE, DESCRIPTOR_ALIGN, variable=True, reader="user_blob", needs_max=True),
        FieldType("array", DESCRIPTOR_SIZE, DESCRIPTOR_ALIGN, variable=True, reader="kernel_blob", needs_max=True,
                  entries=True),
    )
}
# What an array's entries may hold: fixed-size types, laid out as in a record's fixed part.
ENTRY_TYPES = tuple(name for name, t in TYPES.items() if not t.variable)

# Where a common field's value comes from when the packer fills it itself:
# source -> the type its field must have. sdxfer_sources.h implements each.
SOURCES: dict[str, str] = {
    "pid": "u32",  # thread group id
    "tid": "u32",
    "ppid": "u32",  # thread group id of the real parent
    "pgid": "u32",
    "sid": "u32",  # session id
    "uid": "u32",
    "gid": "u32",
    "euid": "u32",
    "egid": "u32",
    "cgroup_id": "u64",  # cgroup v2 id, as bpf_get_current_cgroup_id()
    "mntns": "u32",  # mount namespace inode number
    "comm": "str",
    "start_ns": "u64",  # the thread group leader's start, ns since boot (/proc/PID/stat field 22, in ticks)
    "loginuid": "u32",  # audit login uid (4294967295: unset)
    "sessionid": "u32",  # audit session id
    "pidns": "u32",  # pid namespace inode number
    "nodename": "str",  # UTS nodename of the task's namespace
    "exe_path": "str",  # the executable file's absolute path, kept per task (sdxfer_path.h walks it)
}



@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    doc: str = ""
    max: int = 0  # variable types: most payload bytes kept (array: most entries)
    len: int = 0  # bytes, chars: length in bytes
    line: int = 0
    source: str = ""  # a common field the packer fills itself (a SOURCES key), not a parameter
    entries: tuple[Field, ...] = ()  # array: the fields of one entry
    total: int = 0  # strlist, blob, ublob: most bytes kept over the record and its continuations (0: max)

    @property
    def spans(self) -> bool:
        """Bytes beyond `max` travel in continuation records."""
        return self.total > self.max

    @property
    def fixed_size(self) -> int:
        return self.type.size * self.len if self.type.needs_len else self.type.size

    @property
    def entry_size(self) -> int:
        """array: bytes per entry (its fields back to back, which validation keeps gap-free)."""
        return sum(f.fixed_size for f in self.entries)

    @property
    def max_bytes(self) -> int:
        """Most payload bytes a variable field keeps."""
        return self.max * self.entry_size if self.type.entries else self.max


@dataclass(frozen=True)
class Event:
    name: str
    id: int
    fields: tuple[Field, ...]
    doc: str = ""
    line: int = 0

    @property
    def class_name(self) -> str:
        return naming.py_class(self.name)


@dataclass(frozen=True)
class Schema:
    path: str  # as given by the user, for messages and generated banners
    digest: str  # sha256 of the schema file's bytes
    version: int
    slot_size: int
    events: tuple[Event, ...]
    events_line: int = 0  # of the `events:` key: where a removed event is missing
    common: tuple[Field, ...] = ()  # fields every event carries, in front of its own unless added later
    common_line: int = 0  # of the `common:` key (of `events:` without one): where a removed common field is missing


@dataclass(frozen=True)
class Published:
    """An event's published versions, oldest first; the last is the schema's own event.

    Each version's fields are in record order: the previous version's fields,
    then the new ones (a common field added after the event's first version
    comes after the event's own fields, as an appended field does).
    """

    versions: tuple[Event, ...]

    @property
    def current(self) -> Event:
        return self.versions[-1]


@dataclass(frozen=True)
class History:
    """What has been published (the lock file beside the schema), brought up to the schema.

    Events are in schema order; `major` changes only by `sdxfer gen --major`.
    `common` is the published common list, which only grows at its end.
    """

    major: int
    events: tuple[Published, ...]
    common: tuple[Field, ...] = ()

    @classmethod
    def first(cls, schema: Schema, major: int = 1) -> History:
        """The schema as the first version of every event."""
        return cls(major, tuple(Published((e,)) for e in schema.events), schema.common)
