"""Where notes are kept: one driver per implementation, chosen by `[manager:NAME] notes_driver`
(the seed's "one manager with multiple drivers")."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class NotesDriver:
    """The driver contract: keys to texts."""

    def get(self, key: str) -> str | None:
        raise NotImplementedError

    def put(self, key: str, text: str) -> None:
        raise NotImplementedError

    def keys(self) -> list[str]:
        raise NotImplementedError


class MemoryDriver(NotesDriver):
    """In the worker's memory: gone at its stop, and each worker has its own."""

    def __init__(self, path: str = "") -> None:
        self._notes: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._notes.get(key)

    def put(self, key: str, text: str) -> None:
        self._notes[key] = text

    def keys(self) -> list[str]:
        return sorted(self._notes)


class FileDriver(NotesDriver):
    """A JSON file, written whole and replaced atomically: shared by the workers of a host
    (the last write wins), kept across restarts."""

    def __init__(self, path: str) -> None:
        if not path:
            raise ValueError("the file driver needs [manager:NAME] notes_file")
        self._path = Path(path)

    def _read(self) -> dict[str, str]:
        try:
            return json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}

    def get(self, key: str) -> str | None:
        return self._read().get(key)

    def put(self, key: str, text: str) -> None:
        notes = self._read()
        notes[key] = text
        fd, staged = tempfile.mkstemp(dir=self._path.parent, prefix=".notes-")
        with os.fdopen(fd, "w") as staged_file:
            json.dump(notes, staged_file)
        os.replace(staged, self._path)

    def keys(self) -> list[str]:
        return sorted(self._read())


DRIVERS: dict[str, type[NotesDriver]] = {"memory": MemoryDriver, "file": FileDriver}
