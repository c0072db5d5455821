"""Exceptions a caller catches as their own type: `rpcapi` allows this module."""

from __future__ import annotations


class NoteNotFound(Exception):
    """No note has that key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"note {key!r} could not be found")
