"""In-kernel event filters (sdxfer_filter.h): which processes a probe reports.

    EventFilter(pid=1234, children=True)      # 1234 and every descendant, followed as they fork
    EventFilter(uid=1000, cgroup="/sys/fs/cgroup/system.slice/nginx.service", mntns=4026531840)
    EventFilter(not_tgid=os.getpid())         # everything but this process

Every generated packer asks the filter before it claims a scratch slot, so a
record that is not wanted is never built, sent or decoded. A filter is -D
flags for the program (defines()) plus the maps it needs filled before the
probe attaches (map_entries(), filled by prepare() under BCC); a built
object takes the pid, uid and mount namespace as read-only globals instead
(sdxfer.kernel.core).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ..errors import ProbeError
from ..runtime import record

# The filters that add maps and programs to a build (the fork/free programs,
# the followed map, the cgroup array); a built object takes the others as
# read-only globals at load.
CHILDREN_DEFINE = "SDXFER_FILTER_CHILDREN"
CGROUP_DEFINE = "SDXFER_FILTER_CGROUP"
STRUCTURAL_DEFINES = (CHILDREN_DEFINE, CGROUP_DEFINE)
MOUNTS = Path("/proc/self/mounts")
PROC = Path("/proc")
# A --cgroup ID is looked up by walking the cgroup tree; bound the walk.
MAX_CGROUPS_WALKED = 100_000


class EventFilter(NamedTuple):
    pid: int | None = None
    children: bool = False  # with pid: its descendants too
    uid: int | None = None
    cgroup: Path | None = None  # a cgroup v2 directory
    mntns: int | None = None
    not_tgid: int | None = None  # a process never reported (the sensor's own)

    def defines(self) -> dict:
        flags: dict = {}
        if self.pid is not None:
            flags["SDXFER_FILTER_PID"] = self.pid
            if self.children:
                flags[CHILDREN_DEFINE] = 1
        if self.uid is not None:
            flags["SDXFER_FILTER_UID"] = self.uid
        if self.cgroup is not None:
            flags[CGROUP_DEFINE] = 1
        if self.mntns is not None:
            flags["SDXFER_FILTER_MNTNS"] = self.mntns
        if self.not_tgid is not None:
            flags["SDXFER_FILTER_NOT_TGID"] = self.not_tgid
        return flags

    def map_entries(self) -> list[tuple[str, int, object]]:
        """(map, key, value) the filter's maps need before the probe attaches:
        each followed thread group (value 1), the kept cgroup's directory."""
        entries: list[tuple[str, int, object]] = []
        if self.pid is not None and self.children:
            entries += [(record.FOLLOWED_MAP, tgid, 1) for tgid in sorted(descendants(self.pid) | {self.pid})]
        if self.cgroup is not None:
            entries.append((record.CGROUP_MAP, 0, self.cgroup))
        return entries

    def prepare(self, bpf) -> None:
        """Fills the filter's maps of a loaded, not yet attached probe (a BCC module)."""
        import ctypes

        for name, key, value in self.map_entries():
            if name == record.CGROUP_MAP:
                try:
                    bpf[name.encode()][key] = str(value)
                except Exception as exc:  # bcc raises bare Exception
                    raise ProbeError(f"cannot use cgroup {value}: {exc}") from None
            else:
                bpf[name.encode()][ctypes.c_uint32(key)] = ctypes.c_uint8(value)

    def __bool__(self) -> bool:
        return bool(self.defines())


def descendants(pid: int) -> set[int]:
    """The thread groups below pid now, from /proc (each process's parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cgroup2_root() -> Path:
    """Where cgroup v2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified
    on hosts with the hybrid layout."""
    for line in MOUNTS.read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1].replace("\\040", " "))
    raise ValueError("cgroup v2 is not mounted here")


def cgroup_dir(text: str) -> Path:
    """A --cgroup argument (a cgroup v2 path, absolute or below the cgroup v2
    mount, or its id) as its directory; ValueError saying what is wrong."""
    root = cgroup2_root()
    if text.isdigit():
        wanted = int(text)
        walked = 0
        for folder, dirs, _ in os.walk(root):
            if os.stat(folder).st_ino == wanted:
                return Path(folder)
            walked += 1
            if walked >= MAX_CGROUPS_WALKED:
                break
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        raise ValueError(f"no cgroup with id {wanted} under {root}")
    path = Path(text) if text.startswith("/") else root / text
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{text}: not below the cgroup v2 mount {root}")
    if not (path / "cgroup.procs").is_file():
        raise ValueError(f"{text}: not a cgroup v2 directory (no cgroup.procs)")
    return path
