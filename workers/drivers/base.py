"""The interface every resources driver implements."""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable
from typing import Any, ClassVar


class ResourcesDriver(abc.ABC):
    """Samples this host's CPUs, load, memory and disks.

    `mounts` (mount points) limits the disks to those of them that are mounted, whatever their
    filesystem; empty means every mounted real filesystem (those on a device, of a type not
    marked `nodev` in /proc/filesystems, as `psutil.disk_partitions(all=False)` sees them).
    """

    #: Short name of the implementation, stored with each sample.
    name: ClassVar[str] = "base"

    def __init__(self, mounts: Iterable[str] | None = None) -> None:
        self.mounts = tuple(os.path.normpath(mount) for mount in (mounts or ()))

    @abc.abstractmethod
    def sample(self) -> dict[str, Any]:
        """One sample of this host, read now.

        Keys: `cpu_count` (int), `load_1`, `load_5`, `load_15` (float), `memory_total`,
        `memory_available` (int, bytes), `disks` (a list of `{"mount": str, "total": int,
        "used": int}`, bytes, one per mount point in mount order). A mount whose usage cannot
        be read (permission, a stale network mount) is left out.
        """

    def select_mounts(self, mountpoints: Iterable[str]) -> list[str]:
        """The mount points to report, from those mounted (in mount order, duplicates once)."""
        unique = list(dict.fromkeys(mountpoints))
        if not self.mounts:
            return unique
        wanted = set(self.mounts)
        return [mount for mount in unique if mount in wanted]
