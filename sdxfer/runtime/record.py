"""The record format and the C runtime's shared facts, in one place.

The generator (codegen) lays events out around these definitions and prints
them into the generated C header as structs and macros; the static C runtime
(sdxfer/include/sdxfer_runtime.h) uses only those macros, and the Python
runtime builds its header parser, value parsers and map readers from the same
names. Changing the record format changes LAYOUT_VERSION.
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
HEADER_STRUCT = struct.Struct(HEADER_FORMAT)
# Each header field alone, read without unpacking the rest.
HEADER_FIELD = {name: struct.Struct(f"<{HEADER_OFFSETS[name]}x{fmt}") for name, _, fmt in HEADER}


def parse_header(buf) -> dict[str, int]:
    """A record's header as {field: value}; struct.error when buf is shorter."""
    return dict(zip((name for name, _, _ in HEADER), HEADER_STRUCT.unpack_from(buf)))

# A variable field's descriptor in the fixed part: payload offset (0: absent),
# bytes kept, bytes lost (LOST_UNKNOWN: truncated by an unknown amount).
DESCRIPTOR = (("off", "__u16", "H"), ("len", "__u16", "H"), ("lost", "__u32", "I"))
DESCRIPTOR_FORMAT = "".join(fmt for _, _, fmt in DESCRIPTOR)
DESCRIPTOR_SIZE = struct.calcsize("<" + DESCRIPTOR_FORMAT)
LOST_UNKNOWN = 0xFFFFFFFF

# ---- continuation records ---------------------------------------------------

# A field whose `total` exceeds its `max` keeps its first `max` bytes in the
# event's record, as any field; the rest travels in continuation records sent
# right after it from the same CPU: a header with this id (no schema event has
# it), the fingerprint and version of the event continued, then CONTINUATION
# and the chunk's bytes. The record's descriptor says how many bytes it lacks
# (`lost`), so a decoder that does not reassemble sees the field truncated.
CONTINUATION_ID = 0
# (name, C type, struct format), after the header.
CONTINUATION = (
    ("parent_seq", "__u64", "Q"),  # seq of the record continued; with the CPU, its key
    ("offset", "__u32", "I"),  # of the chunk's first byte in the whole field
    ("lost", "__u32", "I"),  # last chunk: bytes cut beyond `total` (LOST_UNKNOWN: unknown), else 0
    ("event_id", "__u16", "H"),
    ("field", "__u8", "B"),  # the field's index among the event's fields
    ("flags", "__u8", "B"),  # CONTINUATION_LAST
)
CONTINUATION_FORMAT = HEADER_FORMAT + "".join(fmt for _, _, fmt in CONTINUATION)
CONTINUATION_PAYLOAD_OFF = struct.calcsize(CONTINUATION_FORMAT)
CONTINUATION_LAST = 1  # the field's last chunk: nothing follows it (it may carry no bytes)
# Pending events and chunks a reassembler holds at most, beside its bytes
# limit: a chunk of no bytes (or an orphan) costs memory too. A 6 MiB argv
# comes in under 400 chunks.
REASSEMBLY_MAX_PARTS = 65536
# Most bytes one field may span (`total`): the kernel's largest argv is 6 MiB.
MAX_FIELD_TOTAL = 8 << 20

# In the kernel a packer does not loop over a field's chunks (the verifier
# walks every iteration of a loop, in every program that inlines it): a
# probe declared with SDXFER_RAW_TRACEPOINT_PROBE leaves the rest of a field
# as a job on a stack of the task's own (task storage), and when the probe's body returns, a tail
# call runs REST_PROGRAM, which sends a few chunks per call and tail-calls
# itself. Other probes keep what fits the record and one last continuation
# says how much was left out.
REST_MAP = "sdxfer_rest"  # task storage: the jobs waiting, and the tail-call chain's state
REST_PROGRAMS_MAP = "sdxfer_rest_programs"  # program array: REST_PROGRAM at index 0
REST_PROGRAM = "sdxfer_rest_raw_tracepoint"
# The exe_path source keeps each process's executable path (LRU hashes by
# tgid, preallocated: an allocation per new task would cost more than the
# walk): walked when the process is first seen and after each exec, not once
# per event; forgotten when the process's leader is freed. A process evicted
# by newer ones is walked again. Paths shorter than EXE_SHORT_TEXT bytes (nearly
# all) are kept in EXE_PATHS_MAP, longer ones in EXE_LONG_PATHS_MAP.
EXE_PATHS_MAP = "sdxfer_exe_paths"
EXE_PATHS_MAX = 1024
EXE_SHORT_TEXT = 256
EXE_LONG_PATHS_MAP = "sdxfer_exe_long_paths"
EXE_LONG_PATHS_MAX = 128
# The runtime's program that forgets a process's path when its last thread
# exits: attached to this raw tracepoint with every probe whose schema has
# exe_path, after the probe's own programs (a tracepoint runs them in that
# order, so an exit event there still finds the path), and not counted among
# the programs a probe attaches for its events. Its name is its own, not
# BCC's raw_tracepoint__<name>: a probe's RAW_TRACEPOINT_PROBE of the same
# tracepoint (hidsmon's exit event) sits beside it.
EXE_FORGET_RAW_TRACEPOINT = "sched_process_exit"
EXE_FORGET_PROGRAM = "sdxfer_exe_forget"
EXE_WALKS_MAP = "sdxfer_exe_walks"  # per CPU: where the source walks
REST_DEPTH = 4  # jobs a task holds at once (a power of two): beyond, the rest is left out
REST_STEPS = 32  # calls of REST_PROGRAM in one chain: the kernel allows 33 tail calls


def continuation_chunk(slot_size: int) -> int:
    """Payload bytes per continuation record: the largest power of two whose
    record, its output size masked to 2**k - 1 for the verifier, fits a slot."""
    chunk = 1
    while (1 << (CONTINUATION_PAYLOAD_OFF + 2 * chunk).bit_length()) - 1 <= slot_size:
        chunk *= 2
    return chunk


CREDS_MEMBERS = ("uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid")
# (name, C declaration): family, port in network order, IPv4 or IPv6 address bytes
SOCKADDR = (("family", "__u16 family"), ("port", "__u16 port"), ("addr", "__u8 addr[16]"))
SOCKADDR_SIZE = 20

# How the bytes of each variable type are turned into a value.
VARIABLE_DECODING = {"str": "text", "ustr": "text", "strlist": "list", "blob": "bytes", "ublob": "bytes",
                     "array": "entries"}

# ---- what a probe may pass to a packer -------------------------------------

# Or'ed into a blob or strlist length: these bytes, and more were cut before
# they reached the probe, by an unknown amount.
LEN_TRUNCATED = 0x80000000
# A blob or strlist length meaning "more than max, exactly how much unknown".
LEN_UNKNOWN = 0xFFFFFFFF
# A pointer value meaning "the probe could not tell": absent, truncated by an unknown amount.
UNKNOWN_POINTER = 1
# Strings are read with room for this many bytes beyond max (one more byte,
# and the NUL), so a string of exactly max bytes is told apart from a longer one.
STR_READ_SLACK = 2

# ---- the kernel side's maps -------------------------------------------------

SCRATCH_MAP = "sdxfer_scratch"  # per-CPU array of scratch slots
# One per-CPU array value may not exceed PCPU_MIN_UNIT_SIZE (32 KiB); a record
# is packed in one slot, so no record (continuations included) is larger.
MAX_SLOT_SIZE = 32768
CPU_MAP = "sdxfer_cpu"  # per-CPU state: CPU_STATE
DROPS_MAP = "sdxfer_drops"  # per-CPU array: records of each event (schema index) that were not sent
EVENTS_MAP = "sdxfer_events"  # the perf event array or the ring buffer
# In-kernel event filters (sdxfer.kernel.filters), present only when asked for:
FOLLOWED_MAP = "sdxfer_followed"  # hash: thread group ids a --children filter follows
CGROUP_MAP = "sdxfer_cgroup"  # cgroup array: the cgroup a --cgroup filter keeps (and those below it)
FOLLOWED_MAX = 65536  # processes a --children filter follows at once (LRU beyond)
# A CO-RE object's filters (sdxfer_filter.h) are read-only globals the loader
# sets; --children and --cgroup have maps only where built with them, and are
# on only when their global says so. The fork/free programs keep the followed
# map current: loaded only when --children is on.
FILTER_GLOBALS = {"pid": "sdxfer_filter_pid", "uid": "sdxfer_filter_uid", "mntns": "sdxfer_filter_mntns",
                  "not_tgid": "sdxfer_filter_not_tgid", "children": "sdxfer_filter_children",
                  "cgroup": "sdxfer_filter_cgroup"}
# The fork/free programs and their raw tracepoints. Their names are their own,
# not BCC's raw_tracepoint__<name>, as the keeper's is: a probe's own
# RAW_TRACEPOINT_PROBE(sched_process_fork) sits beside them.
FOLLOW_FORK_PROGRAM = "sdxfer_follow_fork"
FOLLOW_FREE_PROGRAM = "sdxfer_follow_free"
FOLLOW_RAW_TRACEPOINTS = {FOLLOW_FORK_PROGRAM: "sched_process_fork", FOLLOW_FREE_PROGRAM: "sched_process_free"}
FOLLOW_PROGRAMS = tuple(FOLLOW_RAW_TRACEPOINTS)

# Per-CPU state: (name, C type). `seq` numbers the records a CPU sends (or
# tries to); bit i of `busy` is set while scratch slot i is in use (a program
# interrupted or preempted mid-record keeps its slots, the other takes free
# ones); `nesting_drops` counts records dropped because every slot was taken.
# Claims are atomic, so this holds where programs preempt each other too.
CPU_STATE = (("seq", "__u64"), ("busy", "__u64"), ("nesting_drops", "__u64"))

# Claimable scratch slots per CPU. A program holds at most two (its locals
# and the record it packs), or three in task context (an exec probe's second
# area of locals); task, softirq and hardirq context can each hold theirs at
# once, as the kernel's own perf output allows for three nesting levels.
NESTING_LEVELS = 3
SCRATCH_SLOTS = 2 * NESTING_LEVELS + 1

# Negative errno values a packer returns besides the transport's own.
ENOSLOT = 12  # ENOMEM: the scratch map could not be read
ENESTED = 16  # EBUSY: every scratch slot of this CPU is taken

RINGBUF_PAGES = 256  # default ring buffer size, shared by all CPUs
# The default buffer size (perf: per CPU) of a schema with spanning fields:
# 4 MiB, twice the largest argv the kernel takes under the default 8 MiB
# stack limit, as one exec sends it all at once.
SPANNING_BUFFER_PAGES = 1024
# A reader wake-up costs ~10 us of kernel time: the ring buffer wakes its
# reader once per this many records of a CPU, perf readers set wakeup_events.
WAKEUP_EVERY = 64

# Every fact above that C needs as a number, as the generated header's
# macros (structs and map names are printed from the tuples and names above).
C_MACROS = (
    ("SDXFER_LOST_UNKNOWN", f"0x{LOST_UNKNOWN:x}U"),
    ("SDXFER_LEN_TRUNCATED", f"0x{LEN_TRUNCATED:x}U"),
    ("SDXFER_LEN_UNKNOWN", f"0x{LEN_UNKNOWN:x}U"),
    ("SDXFER_UNKNOWN", f"((const void *){UNKNOWN_POINTER})"),
    ("SDXFER_EXE_PATHS_MAX", str(EXE_PATHS_MAX)),
    ("SDXFER_EXE_SHORT_TEXT", str(EXE_SHORT_TEXT)),
    ("SDXFER_EXE_LONG_PATHS_MAX", str(EXE_LONG_PATHS_MAX)),
    ("SDXFER_STR_READ_SLACK", str(STR_READ_SLACK)),
    ("SDXFER_SCRATCH_SLOTS", str(SCRATCH_SLOTS)),
    ("SDXFER_ENOSLOT", str(ENOSLOT)),
    ("SDXFER_CONTINUATION_ID", str(CONTINUATION_ID)),
    ("SDXFER_CONTINUATION_LAST", str(CONTINUATION_LAST)),
    ("SDXFER_CONTINUATION_PAYLOAD_OFF", str(CONTINUATION_PAYLOAD_OFF)),
    ("SDXFER_REST_DEPTH", str(REST_DEPTH)),
    ("SDXFER_REST_STEPS", str(REST_STEPS)),
    ("SDXFER_ENESTED", str(ENESTED)),
    ("SDXFER_DEFAULT_RINGBUF_PAGES", str(RINGBUF_PAGES)),
    ("SDXFER_DEFAULT_WAKEUP_EVERY", str(WAKEUP_EVERY)),
    ("SDXFER_FOLLOWED_MAX", str(FOLLOWED_MAX)),
)
