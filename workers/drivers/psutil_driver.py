"""The default resources driver, on psutil."""

from __future__ import annotations

from typing import Any

import psutil

from workers.drivers.base import ResourcesDriver


class PsutilDriver(ResourcesDriver):
    """Reads everything through psutil (portable; the default)."""

    name = "psutil"

    def sample(self) -> dict[str, Any]:
        load_1, load_5, load_15 = psutil.getloadavg()
        memory = psutil.virtual_memory()
        # Named mounts may be of any filesystem type, so look at every mount for them.
        partitions = psutil.disk_partitions(all=bool(self.mounts))
        disks = []
        for mount in self.select_mounts(part.mountpoint for part in partitions):
            try:
                usage = psutil.disk_usage(mount)
            except OSError:
                continue
            disks.append({"mount": mount, "total": usage.total, "used": usage.used})
        return {
            "cpu_count": psutil.cpu_count(logical=True) or 0,
            "load_1": float(load_1),
            "load_5": float(load_5),
            "load_15": float(load_15),
            "memory_total": int(memory.total),
            "memory_available": int(memory.available),
            "disks": disks,
        }
