"""Readable text for numbers that mean something, for text lines only (JSON
keeps the numbers): modes in octal, flags and requests by name, wait
statuses as `exit=3` or `signal=KILL`.

READABLE maps (event, field) of the shipped schema to a function of the
value that returns the (key, text) pairs to print in its place.
"""
from __future__ import annotations

import signal
from typing import Callable

# open(2) flags as the kernel numbers them (asm-generic/fcntl.h; Python's os
# module gives the C library's, where O_LARGEFILE is 0 on 64-bit hosts). The
# access mode is a 2-bit value; O_SYNC and O_TMPFILE include another flag's
# bit and are named whole first.
_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
_OPEN_FLAGS = ((0o4010000, "O_SYNC"), (0o20200000, "O_TMPFILE"), (0o100, "O_CREAT"), (0o200, "O_EXCL"),
               (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"),
               (0o10000, "O_DSYNC"), (0o20000, "FASYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
               (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
               (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"))

# <linux/ptrace.h>
PTRACE_REQUESTS = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR", 4: "PTRACE_POKETEXT",
    5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT", 8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP",
    12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS", 14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH",
    17: "PTRACE_DETACH", 18: "PTRACE_GETFPXREGS", 19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL",
    0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG", 0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE",
    0x4207: "PTRACE_INTERRUPT", 0x4208: "PTRACE_LISTEN", 0x4209: "PTRACE_PEEKSIGINFO",
}
# <linux/prctl.h>
PRCTL_OPTIONS = {
    1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE", 7: "PR_GET_KEEPCAPS",
    8: "PR_SET_KEEPCAPS", 15: "PR_SET_NAME", 16: "PR_GET_NAME", 21: "PR_GET_SECCOMP", 22: "PR_SET_SECCOMP",
    23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 27: "PR_GET_SECUREBITS", 28: "PR_SET_SECUREBITS",
    35: "PR_SET_MM", 36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS",
    39: "PR_GET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT", 0x59616d61: "PR_SET_PTRACER",
}
# <uapi/linux/memfd.h>, <uapi/linux/fs.h> (renameat2), <uapi/linux/mount.h>
MEMFD_FLAGS = ((1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"), (8, "MFD_NOEXEC_SEAL"),
               (16, "MFD_EXEC"))
RENAME_FLAGS = ((1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT"))
MOUNT_FLAGS = ((1, "MS_RDONLY"), (2, "MS_NOSUID"), (4, "MS_NODEV"), (8, "MS_NOEXEC"), (16, "MS_SYNCHRONOUS"),
               (32, "MS_REMOUNT"), (64, "MS_MANDLOCK"), (128, "MS_DIRSYNC"), (256, "MS_NOSYMFOLLOW"),
               (1024, "MS_NOATIME"), (2048, "MS_NODIRATIME"), (4096, "MS_BIND"), (8192, "MS_MOVE"),
               (16384, "MS_REC"), (32768, "MS_SILENT"), (1 << 16, "MS_POSIXACL"), (1 << 17, "MS_UNBINDABLE"),
               (1 << 18, "MS_PRIVATE"), (1 << 19, "MS_SLAVE"), (1 << 20, "MS_SHARED"), (1 << 21, "MS_RELATIME"),
               (1 << 22, "MS_KERNMOUNT"), (1 << 23, "MS_I_VERSION"), (1 << 24, "MS_STRICTATIME"),
               (1 << 25, "MS_LAZYTIME"))
SOCK_FLAGS = ((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC"))


def mode(value: int) -> str:
    return f"0o{value:o}"


def bits(value: int, names) -> str:
    """Named bits joined by |, what no name covers as hex; 0 stays 0."""
    parts = []
    for bit, name in names:
        if value & bit == bit:
            parts.append(name)
            value &= ~bit
    if value:
        parts.append(hex(value))
    return "|".join(parts) or "0"


def open_flags(value: int) -> str:
    value &= 0xFFFFFFFF
    rest = bits(value & ~3, _OPEN_FLAGS)
    return _ACCESS.get(value & 3, "0x3") + ("" if rest == "0" else "|" + rest)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def wait_status(status: int) -> list[tuple[str, str]]:
    """A wait(2) status: exit=N, or signal=NAME (and core=1 when it dumped core)."""
    if status & 0x7F == 0:
        return [("exit", str((status >> 8) & 0xFF))]
    pairs = [("signal", signal_name(status & 0x7F))]
    if status & 0x80:
        pairs.append(("core", "1"))
    return pairs


def named(table: dict) -> Callable[[int], str]:
    return lambda value: table.get(value, str(value))


def _as(key: str, text: Callable[[int], str]) -> Callable[[int], list[tuple[str, str]]]:
    return lambda value: [(key, text(value))]


READABLE: dict[tuple[str, str], Callable[[int], list[tuple[str, str]]]] = {
    ("chmod", "mode"): _as("mode", mode),
    ("file_create", "mode"): _as("mode", mode),
    ("file_create", "flags"): _as("flags", open_flags),
    ("exit", "code"): wait_status,
    ("ptrace", "request"): _as("request", named(PTRACE_REQUESTS)),
    ("prctl", "option"): _as("option", named(PRCTL_OPTIONS)),
    ("memfd_create", "flags"): _as("flags", lambda value: bits(value, MEMFD_FLAGS)),
    ("rename", "flags"): _as("flags", lambda value: bits(value, RENAME_FLAGS)),
    ("mount", "flags"): _as("flags", lambda value: bits(value, MOUNT_FLAGS)),
    ("accept", "flags"): _as("flags", lambda value: bits(value, SOCK_FLAGS)),
}
