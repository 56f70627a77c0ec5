"""sdxfer: eBPF event records from one YAML schema, packed in C, decoded in Python.

    from sdxfer import Decoder
    decoder = Decoder.from_schema("schema/events.yaml")   # or sdxfer.default_decoder()
    event = decoder.decode(raw_bytes)
    print(event.name, event.pid, event.argv, event.truncated, event.to_dict())

    from sdxfer import ExecProbe                          # execmon's probe, for other agents
    with ExecProbe(transport="ringbuf") as probe:
        for event in probe.events():
            ...
"""
from ._runtime import Creds, Event, SockAddr
from .decoder import Decoder
from .errors import DecodeError

__version__ = "0.1.0"
__all__ = ["Creds", "DecodeError", "Decoder", "Event", "ExecProbe", "ProbeError", "SockAddr", "default_decoder",
           "__version__"]


def __getattr__(name):
    # The loader pulls in bcc; import it only when an agent asks for it.
    if name in ("ExecProbe", "ProbeError"):
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'sdxfer' has no attribute {name!r}")

_default = None


def default_decoder() -> Decoder:
    """The decoder for the shipped schema (schema/events.yaml)."""
    global _default
    if _default is None:
        from .generated import events

        _default = Decoder.from_module(events)
    return _default
