"""sdxfer: eBPF event records from one YAML schema, packed in C, decoded in Python.

    from sdxfer import Decoder
    decoder = Decoder.from_schema("schema/events.yaml")   # or sdxfer.default_decoder()
    event = decoder.decode(raw_bytes)
    print(event.name, event.pid, event.argv, event.truncated, event.to_dict())

    from sdxfer import Sensor                             # any probe built on the generated header
    with Sensor("my.bpf.c", schema="my/events.yaml") as sensor:
        for event in sensor.events():
            ...

    from sdxfer import ExecProbe                          # execmon's probe, for other agents
    with ExecProbe(transport="ringbuf") as probe:
        for event in probe.events():
            ...

The package in layers, each importing only those before it:
  errors, paths        exceptions; where the project's own files are
  runtime              what generated decoders import (public, versioned): Event, value types, the record format
  codegen              schema -> model -> layout -> C header, Python decoders, LAYOUT.md
  stream               decoding and reassembly of records, their counts, the JSON vocabulary
  kernel               BTF, program assembly, host checks, BCC loading, readers, Sensor, the shipped probes
  fleet                records shipped to NATS JetStream or files, and consumed centrally
  tools                the driver and the commands: sdxfer, execmon, hidsmon
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from .errors import DecodeError, ProbeError
from .paths import C_INCLUDE_DIR
from .runtime import Creds, Event, SockAddr
from .stream.decoder import Decoder

__version__ = "0.1.0"
__all__ = ["C_INCLUDE_DIR", "Creds", "DecodeError", "Decoder", "Event", "ExecProbe", "ProbeError", "Reassembler",
           "Sensor", "SockAddr", "default_decoder", "__version__"]

# Module paths of the flat layout before the layers, kept as aliases of the
# modules that now hold their contents (the same module objects).
MOVED_MODULES = {
    "sdxfer._runtime": "sdxfer.runtime",
    "sdxfer.record": "sdxfer.runtime.record",
    "sdxfer.decoder": "sdxfer.stream.decoder",
    "sdxfer.reassembly": "sdxfer.stream.reassembly",
    "sdxfer.btf": "sdxfer.kernel.btf",
    "sdxfer.offsets": "sdxfer.kernel.offsets",
    "sdxfer.kheaders": "sdxfer.kernel.kheaders",
    "sdxfer.program": "sdxfer.kernel.program",
    "sdxfer.readers": "sdxfer.kernel.readers",
    "sdxfer.sensor": "sdxfer.kernel.sensor",
    "sdxfer.hids": "sdxfer.kernel.probes",
    "sdxfer.loader": "sdxfer.kernel.probes",
    "sdxfer.cli": "sdxfer.tools.cli",
    "sdxfer.run": "sdxfer.tools.run",
    "sdxfer.execmon": "sdxfer.tools.execmon",
    "sdxfer.hidsmon": "sdxfer.tools.hidsmon",
    "sdxfer.console": "sdxfer.tools.text",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec):
        module = importlib.import_module(MOVED_MODULES[spec.name])
        self._own_specs = getattr(self, "_own_specs", {})
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # already executed under its own name; importlib gave it the alias's spec: give its own back
        module.__spec__ = self._own_specs.pop(module.__spec__.name)

    def get_code(self, fullname):
        """python -m OLD.PATH runs the module under its new path."""
        return compile(f"import runpy\nrunpy.run_module({MOVED_MODULES[fullname]!r}, run_name='__main__', alter_sys=True)",
                       fullname, "exec")


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name):
    # The kernel side pulls in bcc; import it only when an agent asks for it.
    if name == "Sensor":
        from .kernel.sensor import Sensor

        return Sensor
    if name == "ExecProbe":
        from .kernel.probes import ExecProbe

        return ExecProbe
    if name == "Reassembler":
        from .stream.reassembly import Reassembler

        return Reassembler
    raise AttributeError(f"module 'sdxfer' has no attribute {name!r}")


_default = None


def default_decoder() -> Decoder:
    """The decoder for the shipped schema (schema/events.yaml)."""
    global _default
    if _default is None:
        from .generated import events

        _default = Decoder.from_module(events)
    return _default
