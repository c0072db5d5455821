"""The client side of the notes API, as nova's `ComputeAPI`: what other services import.

`NotesAPI` sends the newest version it may (`[upgrade_levels] notes` caps it during a
rolling upgrade) and falls back where an older server cannot take a newer call.
"""

from __future__ import annotations

from typing import Any

from supervisor import rpc
from workers.notes import exception

# Before the transport is made: a remote NoteNotFound is raised here as itself.
rpc.add_extra_exmods(exception.__name__)


class NotesAPI:
    """Client of `NotesManager`. Versions: 2.0 put_note, get_note, list_notes; 2.1
    list_notes(prefix)."""

    def __init__(self, topic: str = "notes", version_cap: str | None = None) -> None:
        self.client = rpc.get_client(topic, version="2.0", version_cap=version_cap)

    def put_note(self, context: Any, key: str, text: str, host: str | None = None) -> None:
        self.client.prepare(server=host).call(context, "put_note", key=key, text=text)

    def get_note(self, context: Any, key: str, host: str | None = None) -> str:
        return self.client.prepare(server=host).call(context, "get_note", key=key)

    def list_notes(
        self, context: Any, prefix: str | None = None, host: str | None = None
    ) -> list[str]:
        if prefix and self.client.can_send_version("2.1"):
            cctxt = self.client.prepare(server=host, version="2.1")
            return cctxt.call(context, "list_notes", prefix=prefix)
        keys = self.client.prepare(server=host).call(context, "list_notes")
        return [key for key in keys if key.startswith(prefix or "")]
