"""A resources driver that reads /proc itself and calls os.statvfs: no psutil."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from workers.drivers.base import ResourcesDriver

# Escapes the kernel writes in /proc/*/mounts fields (space, tab, newline, backslash).
_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> str:
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda match: bytes([int(match[1], 8)]), field))


class ProcDriver(ResourcesDriver):
    """Reads /proc/loadavg, /proc/meminfo, /proc/filesystems, /proc/self/mounts, os.statvfs."""

    name = "proc"

    def __init__(self, mounts: Iterable[str] | None = None, proc: str = "/proc") -> None:
        super().__init__(mounts)
        self.proc = proc

    def sample(self) -> dict[str, Any]:
        load_1, load_5, load_15 = self.loadavg()
        memory_total, memory_available = self.meminfo()
        return {
            "cpu_count": self.cpu_count(),
            "load_1": load_1,
            "load_5": load_5,
            "load_15": load_15,
            "memory_total": memory_total,
            "memory_available": memory_available,
            "disks": self.disks(),
        }

    def cpu_count(self) -> int:
        count = os.cpu_count()
        if count:
            return count
        with open(f"{self.proc}/cpuinfo", "rb") as f:
            return sum(1 for line in f if line.lower().startswith(b"processor"))

    def loadavg(self) -> tuple[float, float, float]:
        with open(f"{self.proc}/loadavg", "rb") as f:
            fields = f.read().split()
        return float(fields[0]), float(fields[1]), float(fields[2])

    def meminfo(self) -> tuple[int, int]:
        """MemTotal and MemAvailable in bytes (the kernel writes kB, meaning KiB)."""
        values = {}
        with open(f"{self.proc}/meminfo", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2:
                    values[fields[0].rstrip(b":")] = int(fields[1]) * 1024
        total = values[b"MemTotal"]
        available = values.get(b"MemAvailable")
        if not available:
            # Before Linux 3.14 (or a reported 0): the estimate `free` falls back to.
            available = sum(
                values.get(key, 0) for key in (b"MemFree", b"Buffers", b"Cached", b"SReclaimable")
            )
        if available > total:  # A container's distorted view, as procps and psutil treat it.
            available = values.get(b"MemFree", 0)
        return total, available

    def real_fstypes(self) -> set[str]:
        """Filesystem types backed by a device: not `nodev` in /proc/filesystems, and zfs."""
        types = set()
        with open(f"{self.proc}/filesystems") as f:
            for line in f:
                nodev, _, fstype = line.rstrip("\n").partition("\t")
                fstype = fstype.strip()
                if nodev.strip() != "nodev" or fstype == "zfs":
                    types.add(fstype)
        return types

    def mountpoints(self) -> list[str]:
        """Mount points in mount order: real filesystems only, unless `mounts` names some."""
        real = None if self.mounts else self.real_fstypes()
        points = []
        with open(f"{self.proc}/self/mounts", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                device, mountpoint, fstype = (_unescape(field) for field in fields[:3])
                if real is not None and (device in ("", "none") or fstype not in real):
                    continue
                points.append(mountpoint)
        return self.select_mounts(points)

    def disks(self) -> list[dict[str, Any]]:
        disks = []
        for mount in self.mountpoints():
            try:
                st = os.statvfs(mount)
            except OSError:
                continue
            total = st.f_blocks * st.f_frsize
            disks.append({"mount": mount, "total": total, "used": total - st.f_bfree * st.f_frsize})
        return disks
