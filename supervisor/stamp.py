"""How a reload reaches the workers: the stamp of the config files the parent validated.

Every process applies a reload through oslo.config's own mutation (`mutate_config_files`),
which reads the files again (docs/architecture.md, "Reload"). So that no process applies a
file the parent did not validate (one edited again mid-reload), the parent publishes, in
memory shared with every worker, a generation number and the SHA-256 of the files' bytes it
validated. A worker that gets SIGHUP mutates only when the generation moved and the files on
disk still have that digest; otherwise it keeps the config in force and says so.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from collections.abc import Iterable

_LAYOUT = struct.Struct("<Q32s")  # generation, sha256 of the validated files


def files_digest(paths: Iterable[str]) -> bytes:
    """SHA-256 over each file's name and bytes, in oslo.config's reading order.

    Raises OSError when a file cannot be read (the caller's validation says which).
    """
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as stream:
            content = stream.read()
        digest.update(f"{path}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.digest()


class ConfigStamp:
    """The validated config's generation and digest, in an anonymous MAP_SHARED page."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, _LAYOUT.size)

    def read(self) -> tuple[int, bytes]:
        generation, digest = _LAYOUT.unpack_from(self._memory, 0)
        return generation, digest

    @property
    def generation(self) -> int:
        return self.read()[0]

    def publish(self, digest: bytes) -> None:
        """In the parent, once the files with `digest` are validated and in force there;
        it signals the workers after this returns."""
        _LAYOUT.pack_into(self._memory, 0, self.generation + 1, digest)
