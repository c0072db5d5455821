"""How a reload reaches the workers: a snapshot of the values the parent validated.

Workers never re-read the config files. The parent publishes the values of each valid
config it applies (a JSON file in state_path, and its generation number in memory shared
with every worker); a worker that gets SIGHUP puts the mutable ones in force, reading the
file only when the generation moved, so a file edited again mid-reload cannot reach it.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
from typing import Any

from oslo_config import cfg

from supervisor import config

Snapshot = dict[str, dict[str, Any]]  # {section: {option: [value, mutable]}}

_GENERATION = struct.Struct("<Q")


def take(conf: cfg.ConfigOpts, specs: list[config.ManagerSpec]) -> Snapshot:
    """Every value of a validated config that the supervisor and its managers read."""
    result: Snapshot = {
        "DEFAULT": {opt.dest: [conf[opt.dest], opt.mutable] for opt in config.default_opts},
        config.SUPERVISOR_GROUP: {
            opt.dest: [conf[config.SUPERVISOR_GROUP][opt.dest], opt.mutable]
            for opt in config.supervisor_opts + config.manager_common_opts()
        },
    }
    result["DEFAULT"]["debug"] = [conf.debug, True]
    for spec in specs:
        values = conf[spec.section]
        opts = config.manager_section_opts() + list(getattr(spec.manager_class, "opts", []))
        result[spec.section] = {opt.dest: [values[opt.dest], opt.mutable] for opt in opts}
    return result


def apply(
    conf: cfg.ConfigOpts, snap: Snapshot, sections: list[str], mutable_only: bool
) -> list[str]:
    """Put a snapshot's values in force in `conf`; returns what changed, for the log."""
    changes = []
    for section in sections:
        group = None if section == "DEFAULT" else section
        for name, (value, mutable) in snap.get(section, {}).items():
            if mutable_only and not mutable:
                continue
            current = conf[name] if group is None else conf[group][name]
            if current != value:
                conf.set_override(name, value, group)
                changes.append(f"[{section}] {name} = {value!r} (was {current!r})")
    root = logging.getLogger()
    if conf.debug != (root.level == logging.DEBUG):
        root.setLevel(logging.DEBUG if conf.debug else logging.INFO)
    return changes


class SnapshotStore:
    """The published snapshot: a file, and its generation in memory shared across fork."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._generation = mmap.mmap(-1, _GENERATION.size)  # MAP_SHARED
        self._published = ""

    @property
    def generation(self) -> int:
        return _GENERATION.unpack_from(self._generation, 0)[0]

    def publish(self, snap: Snapshot) -> bool:
        """Write a new generation if the values changed (in the parent); False if not."""
        values = json.dumps(snap, sort_keys=True)
        if values == self._published:
            return False
        generation = self.generation + 1
        with open(self.path + ".new", "w", encoding="utf-8") as stream:
            stream.write(f'{{"generation": {generation}, "values": {values}}}')
        os.replace(self.path + ".new", self.path)
        _GENERATION.pack_into(self._generation, 0, generation)
        self._published = values
        return True

    def load(self) -> tuple[int, Snapshot]:
        """Read the published snapshot (in a worker): its generation and its values."""
        with open(self.path, encoding="utf-8") as stream:
            document = json.load(stream)
        return document["generation"], document["values"]

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
