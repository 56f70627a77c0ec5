"""sdxfer: eBPF event records from one YAML schema, packed in C, decoded in Python.

    from sdxfer import Decoder
    decoder = Decoder.from_schema("schema/events.yaml")   # or sdxfer.default_decoder()
    event = decoder.decode(raw_bytes)
    print(event.name, event.pid, event.argv, event.truncated, event.to_dict())
"""
from ._runtime import Creds, Event, SockAddr
from .decoder import Decoder
from .errors import DecodeError

__version__ = "0.1.0"
__all__ = ["Creds", "DecodeError", "Decoder", "Event", "SockAddr", "default_decoder", "__version__"]

_default = None


def default_decoder() -> Decoder:
    """The decoder for the shipped schema (schema/events.yaml)."""
    global _default
    if _default is None:
        from .generated import events

        _default = Decoder.from_module(events)
    return _default
