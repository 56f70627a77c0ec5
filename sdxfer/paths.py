"""Where sdxfer's own files are: the one module that knows.

In a source checkout (an editable install) schema/, generated/, bpf/ and
templates/ sit beside the sdxfer/ package; once installed they are packaged
inside it (pyproject.toml maps them), so both places are tried here and
nowhere else.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
# A source checkout has schema/events.yaml beside the package; an installed package holds it.
_DATA_ROOT = _CHECKOUT if (_CHECKOUT / "schema" / "events.yaml").is_file() else PACKAGE_DIR

SCHEMA_DIR = _DATA_ROOT / "schema"
SHIPPED_SCHEMA = SCHEMA_DIR / "events.yaml"
GENERATED_DIR = _DATA_ROOT / "generated"
BPF_DIR = _DATA_ROOT / "bpf"
TEMPLATES_DIR = _DATA_ROOT / "templates"
# sdxfer_runtime.h and its parts, which every generated xfer.h includes
C_INCLUDE_DIR = PACKAGE_DIR / "include"
# kernel headers merged by scripts/setup.sh, for a source checkout (None once installed)
CHECKOUT_KERNEL_HEADERS = _CHECKOUT / "build" / "kernel-headers" if _DATA_ROOT == _CHECKOUT else None
