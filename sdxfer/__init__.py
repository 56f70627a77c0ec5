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
"""
from pathlib import Path

from ._runtime import Creds, Event, SockAddr
from .decoder import Decoder
from .errors import DecodeError, ProbeError

__version__ = "0.1.0"
# sdxfer_runtime.h, which every generated xfer.h includes: put it on the
# include path of host builds (gcc -I "$C_INCLUDE_DIR" -I generated ...).
C_INCLUDE_DIR = Path(__file__).resolve().parent / "include"
__all__ = ["C_INCLUDE_DIR", "Creds", "DecodeError", "Decoder", "Event", "ExecProbe", "ProbeError", "Sensor", "SockAddr",
           "default_decoder", "__version__"]


def __getattr__(name):
    # The kernel side pulls in bcc; import it only when an agent asks for it.
    if name == "Sensor":
        from .sensor import Sensor

        return Sensor
    if name == "ExecProbe":
        from .loader import ExecProbe

        return ExecProbe
    raise AttributeError(f"module 'sdxfer' has no attribute {name!r}")

_default = None


def default_decoder() -> Decoder:
    """The decoder for the shipped schema (schema/events.yaml)."""
    global _default
    if _default is None:
        from .generated import events

        _default = Decoder.from_module(events)
    return _default
