"""Exceptions every part of sdxfer shares."""


class DecodeError(ValueError):
    """A record is malformed, of an unknown event, or from another layout."""
