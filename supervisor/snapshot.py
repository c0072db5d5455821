"""How a reload reaches the workers: a snapshot of the values the parent validated.

Workers never re-read the config files. The parent publishes the values of each valid
config it applies (a 0600 JSON file in state_path, and its generation number in memory shared
with every worker); a worker that gets SIGHUP puts the mutable ones in force, reading the
file only when the generation moved, so a file edited again mid-reload cannot reach it.
Publishing is two steps, so that the step that can fail (writing, on a full disk) comes
before a reload changes anything. Secret values are never logged.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
from typing import Any

from oslo_config import cfg

from supervisor import config, state

Snapshot = dict[str, dict[str, Any]]  # {section: {option: [value, mutable, secret]}}
MASK = "***"

_GENERATION = struct.Struct("<Q")


def take(conf: cfg.ConfigOpts, specs: list[config.ManagerSpec]) -> Snapshot:
    """Every value of a validated config that the supervisor and its managers read."""
    result: Snapshot = {
        "DEFAULT": {
            opt.dest: [conf[opt.dest], opt.mutable, opt.secret] for opt in config.default_opts
        },
        config.SUPERVISOR_GROUP: {
            opt.dest: [conf[config.SUPERVISOR_GROUP][opt.dest], opt.mutable, opt.secret]
            for opt in config.supervisor_opts + config.manager_common_opts()
        },
    }
    result["DEFAULT"]["debug"] = [conf.debug, True, False]
    for spec in specs:
        values = conf[spec.section]
        opts = config.manager_section_opts() + list(getattr(spec.manager_class, "opts", []))
        result[spec.section] = {
            opt.dest: [values[opt.dest], opt.mutable, opt.secret] for opt in opts
        }
    return result


def apply(
    conf: cfg.ConfigOpts, snap: Snapshot, sections: list[str], mutable_only: bool
) -> list[str]:
    """Put a snapshot's values in force in `conf`; returns what changed, for the log."""
    changes = []
    for section in sections:
        group = None if section == "DEFAULT" else section
        for name, (value, mutable, secret) in snap.get(section, {}).items():
            if mutable_only and not mutable:
                continue
            current = conf[name] if group is None else conf[group][name]
            if current != value:
                conf.set_override(name, value, group)
                if secret:
                    changes.append(f"[{section}] {name} = {MASK} (changed)")
                else:
                    changes.append(f"[{section}] {name} = {value!r} (was {current!r})")
    root = logging.getLogger()
    if conf.debug != (root.level == logging.DEBUG):
        root.setLevel(logging.DEBUG if conf.debug else logging.INFO)
    return changes


class SnapshotStore:
    """The published snapshot: a file, and its generation in memory shared across fork."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._staged_path = path + ".staged"
        self._generation = mmap.mmap(-1, _GENERATION.size)  # MAP_SHARED
        self._published = ""
        self._staged: str | None = None

    @property
    def generation(self) -> int:
        return _GENERATION.unpack_from(self._generation, 0)[0]

    def stage(self, snap: Snapshot) -> None:
        """Write the next generation beside the current one (in the parent); may raise OSError.

        Nothing is published yet: `commit()` makes it the one workers read.
        """
        values = json.dumps(snap, sort_keys=True)
        if values == self._published:
            self._staged = None
            return
        document = f'{{"generation": {self.generation + 1}, "values": {values}}}'
        state.write_private_file(self._staged_path, document.encode())
        self._staged = values

    def commit(self) -> bool:
        """Publish what `stage()` wrote; False if the values had not changed."""
        if self._staged is None:
            return False
        os.replace(self._staged_path, self.path)
        _GENERATION.pack_into(self._generation, 0, self.generation + 1)
        self._published, self._staged = self._staged, None
        return True

    def publish(self, snap: Snapshot) -> bool:
        """Stage and commit at once (at start, before any worker exists)."""
        self.stage(snap)
        return self.commit()

    def load(self) -> tuple[int, Snapshot]:
        """Read the published snapshot (in a worker): its generation and its values."""
        with open(self.path, encoding="utf-8") as stream:
            document = json.load(stream)
        return document["generation"], document["values"]

    def remove(self) -> None:
        for path in (self.path, self._staged_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
