"""Kernel headers for BCC, found without the caller knowing where.

BCC compiles probes against a kernel header tree (it reads BCC_KERNEL_SOURCE,
else /lib/modules/$(uname -r)/build). Hosts often have none for the running
kernel; Debian's linux-headers-amd64 serves (structure offsets come from BTF
anyway) once its two trees, ...-common and ...-amd64, are merged into one
directory, which `merge` does with symlinks.

    python -m sdxfer.kheaders [DEST]    merge Debian's newest header trees into DEST
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from pathlib import Path

from ..errors import ProbeError
from ..paths import CHECKOUT_KERNEL_HEADERS

ENV_VAR = "SDXFER_KERNEL_HEADERS"
CACHE_TREE = Path("/var/cache/sdxfer/kernel-headers")  # any install, made on first use
DEBIAN_TREES = Path("/usr/src")
COMPLETE = ".complete"  # written last by merge: a tree without it was interrupted


def _is_tree(path: Path) -> bool:
    return (path / "include" / "linux").is_dir()


def _debian_arch_tree() -> Path | None:
    """The newest Debian arch header tree (linux-headers-VERSION-ARCH) that has its common tree."""
    candidates = []
    for tree in DEBIAN_TREES.glob("linux-headers-*"):
        version, _, flavour = tree.name[len("linux-headers-"):].rpartition("-")
        if flavour != "common" and (DEBIAN_TREES / f"linux-headers-{version}-common").is_dir():
            candidates.append(tree)
    return max(candidates, key=_version_key, default=None)


def _version_key(tree: Path) -> list[tuple[int, int | str]]:
    """Orders linux-headers-6.1.0-9-amd64 before linux-headers-6.1.0-10-amd64."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.-]", tree.name)]


def merge(dest: Path, arch_tree: Path | None = None) -> Path:
    """Merge a Debian arch header tree and its common tree into `dest` (symlinks)."""
    arch_tree = arch_tree or _debian_arch_tree()
    if arch_tree is None:
        raise ProbeError(f"no Debian kernel headers under {DEBIAN_TREES}: apt-get install linux-headers-amd64")
    common_tree = arch_tree.with_name(arch_tree.name.rpartition("-")[0] + "-common")
    if (dest / COMPLETE).is_file():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    for tree in (common_tree, arch_tree):  # arch files win over common ones
        for root, dirs, files in os.walk(tree):
            target = dest / Path(root).relative_to(tree)
            target.mkdir(parents=True, exist_ok=True)
            # a linked folder (Debian links scripts/ into linux-kbuild) stays a link
            linked = [name for name in dirs if (Path(root) / name).is_symlink()]
            for name in linked + files:
                link = target / name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(Path(root) / name)
    (dest / COMPLETE).write_text(f"{common_tree}\n{arch_tree}\n")
    return dest


def find() -> Path:
    """A kernel header tree for BCC, or ProbeError saying how to get one."""
    for variable in (ENV_VAR, "BCC_KERNEL_SOURCE"):
        value = os.environ.get(variable)
        if value:
            if not _is_tree(Path(value)):
                raise ProbeError(f"{variable}={value} holds no kernel headers (no include/linux): run scripts/setup.sh "
                                 f"or point {variable} at a kernel header tree")
            return Path(value)
    running = Path("/lib/modules") / platform.release() / "build"
    if _is_tree(running):
        return running
    for tree in filter(None, (CHECKOUT_KERNEL_HEADERS, CACHE_TREE)):
        if (tree / COMPLETE).is_file() and _is_tree(tree):
            return tree
    if _debian_arch_tree() is not None:
        try:
            return merge(CACHE_TREE)
        except OSError as exc:
            raise ProbeError(f"cannot merge Debian's kernel headers into {CACHE_TREE}: {exc.strerror}; "
                             f"run scripts/setup.sh or set {ENV_VAR}") from None
    raise ProbeError(f"no kernel headers for BCC: run scripts/setup.sh, apt-get install linux-headers-amd64, "
                     f"or set {ENV_VAR} (or BCC_KERNEL_SOURCE) to a kernel header tree")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else CACHE_TREE
    try:
        print(merge(dest.resolve()))
    except (ProbeError, OSError) as exc:
        print(f"sdxfer.kheaders: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
