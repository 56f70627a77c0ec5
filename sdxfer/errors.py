"""Exceptions every part of sdxfer shares."""


class DecodeError(ValueError):
    """A record is malformed, of an unknown event, or from another layout."""


class ProbeError(Exception):
    """A probe cannot run here; the message is one line saying why and what to do."""
