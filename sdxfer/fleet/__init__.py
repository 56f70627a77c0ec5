"""Fleet: events of many hosts in one place.

Sensors publish raw records in versioned envelopes (envelope.py) to NATS
JetStream, through a bounded memory and disk backlog (backlog.py, nats_io.py),
or write rotated NDJSON files (files.py); output.py is the tools' --output.
A central consumer (consume.py) decodes every host's records with the schema.
nats-py is imported only when NATS is used.
"""
from .envelope import Batch, Host, Sender, pack, this_host, unpack

__all__ = ["Batch", "Consumer", "FleetEvent", "Host", "Sender", "pack", "this_host", "unpack"]


def __getattr__(name):
    if name in ("Consumer", "FleetEvent"):
        from . import consume

        return getattr(consume, name)
    raise AttributeError(f"module 'sdxfer.fleet' has no attribute {name!r}")
