"""Files and folders of this user's alone: what the outputs, the spool and the
build caches write, never through a link someone else could have made."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def _not_private(info: os.stat_result, mode: str) -> str | None:
    """Why a file or directory is not this user's alone (None: it is)."""
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not this user ({os.geteuid()})"
    if info.st_mode & 0o077:
        return f"mode {stat.S_IMODE(info.st_mode):o} lets others in (chmod {mode})"
    return None


def open_private(path: str | Path, flags: int) -> int:
    """A descriptor on a regular file of this user's that nobody else may
    read: never through a symbolic link, made 0600 (with O_CREAT in flags);
    PermissionError saying which rule it breaks otherwise."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PermissionError(f"{path}: a symbolic link (refused: it may point anywhere)") from None
        raise
    info = os.fstat(fd)
    problem = "not a regular file" if not stat.S_ISREG(info.st_mode) else _not_private(info, "600")
    if problem:
        os.close(fd)
        raise PermissionError(f"{path}: {problem}")
    return fd


def private_dir(path: str | Path) -> Path:
    """A directory of this user's that nobody else may enter, made 0700 if
    absent; PermissionError saying which rule it breaks otherwise."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass  # checked below, whatever it is
    info = os.lstat(path)
    problem = ("a symbolic link (refused: it may point anywhere)" if stat.S_ISLNK(info.st_mode)
               else "not a directory" if not stat.S_ISDIR(info.st_mode) else _not_private(info, "700"))
    if problem:
        raise PermissionError(f"{path}: {problem}")
    return path
