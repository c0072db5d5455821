"""The resources manager: samples this host through a driver of its choice, keeps the samples.

One manager, many drivers (the `nova.manager` model): the manager owns the logic (when to
sample, what to keep, what to answer), the data goes through `self.db`, its own db driver
`workers.resources_db` (a table of its own beside the service records, in the same
database), and how a sample is read is a driver chosen by the `driver` option:
`workers.drivers.psutil_driver.PsutilDriver` (the default) or
`workers.drivers.proc_driver.ProcDriver`, which reads /proc itself.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

from oslo_config import cfg
from oslo_service import periodic_task
from oslo_utils import importutils, timeutils

from supervisor.manager import DEFAULT_DB_DRIVER, Manager
from workers.drivers.base import ResourcesDriver

LOG = logging.getLogger(__name__)

DEFAULT_DRIVER = "workers.drivers.psutil_driver.PsutilDriver"
# Its `self.db` when its section leaves `db_driver` unset: the supervisor's default db api
# keeps the service records only.
DB_DRIVER = "workers.resources_db"

# What `get_host_resources` answers besides `host`, `sampled_at` and `disks`, as plain types.
_FIELDS = {
    "driver": str,
    "cpu_count": int,
    "load_1": float,
    "load_5": float,
    "load_15": float,
    "memory_total": int,
    "memory_available": int,
}


class ResourcesManager(Manager):
    """Samples CPUs, load, memory and disks of its host every `sample_interval` seconds.

    Each sample is stored with `self.db.host_resources_add(host, sample)`;
    `get_host_resources()` answers the latest one of a host from `self.db.host_resources_get`.
    `self.db` is `workers.resources_db` unless the section's `db_driver` names another module
    with those two functions.

    Every worker of this manager samples (so `workers = 1` is the sensible setting): a Manager
    is not told its worker id, so it cannot leave the sampling to worker 0 alone. The
    samples of several workers are simply more rows of the same host.
    """

    opts = [
        cfg.StrOpt(
            "driver",
            default=DEFAULT_DRIVER,
            help="Dotted path of the ResourcesDriver class that reads the host: "
            "workers.drivers.psutil_driver.PsutilDriver (psutil) or "
            "workers.drivers.proc_driver.ProcDriver (reads /proc and calls statvfs itself).",
        ),
        cfg.IntOpt(
            "sample_interval",
            default=60,
            min=1,
            mutable=True,
            help="Seconds between two samples; SIGHUP applies a new value in place.",
        ),
        cfg.ListOpt(
            "mounts",
            default=[],
            help="Mount points whose disk usage is sampled, if mounted (any filesystem type). "
            "Empty: every mounted real filesystem (on a device, not a nodev type such as "
            "tmpfs or proc).",
        ),
    ]

    def __init__(
        self,
        host: str | None = None,
        db_driver: str | None = None,
        service_name: str = "undefined",
    ) -> None:
        if not db_driver or db_driver == DEFAULT_DB_DRIVER:
            db_driver = DB_DRIVER
        super().__init__(host=host, db_driver=db_driver, service_name=service_name)

    def init_host(self) -> None:
        if getattr(self, "db", None) is None:
            raise RuntimeError(
                f"{self.service_name}: no db to store samples in; set db_driver for this manager"
            )
        driver_class = importutils.import_class(self.configuration.driver)
        if not (isinstance(driver_class, type) and issubclass(driver_class, ResourcesDriver)):
            raise TypeError(
                f"{self.service_name}: driver {self.configuration.driver} is not a ResourcesDriver"
            )
        self._storage_lost = False
        self.driver = driver = driver_class(mounts=self.configuration.mounts)
        self.set_periodic_spacing("sample", self.configuration.sample_interval)
        LOG.info(
            "%s: sampling %s every %ss with the %s driver",
            self.service_name,
            self.host,
            self.configuration.sample_interval,
            driver.name,
        )

    def reset(self) -> None:
        self.set_periodic_spacing("sample", self.configuration.sample_interval)

    @periodic_task.periodic_task(spacing=60, run_immediately=True)
    def sample(self, context: Any) -> None:
        """Take one sample through the driver and store it; a driver error is one log line."""
        sampled_at = timeutils.utcnow()
        try:
            reading = self.driver.sample()
        except Exception as exc:
            LOG.error(
                "%s: the %s driver failed to sample %s: %s: %s",
                self.service_name,
                self.driver.name,
                self.host,
                type(exc).__name__,
                exc,
            )
            return
        sample = {
            "sampled_at": sampled_at,
            "driver": self.driver.name,
            "cpu_count": int(reading["cpu_count"]),
            "load_1": float(reading["load_1"]),
            "load_5": float(reading["load_5"]),
            "load_15": float(reading["load_15"]),
            "memory_total": int(reading["memory_total"]),
            "memory_available": int(reading["memory_available"]),
            "disks": json.dumps(reading["disks"]),
        }
        try:
            self.db.host_resources_add(self.host, sample)
        except Exception as exc:  # an outage: said once, and sampling goes on
            if not self._storage_lost:
                LOG.error(
                    "%s: cannot store samples, the database is unreachable (%s)",
                    self.service_name,
                    type(exc).__name__,
                )
            self._storage_lost = True
            return
        if self._storage_lost:
            LOG.info("%s: storing samples again", self.service_name)
        self._storage_lost = False

    def get_host_resources(self, context: Any, host: str | None = None) -> dict[str, Any] | None:
        """The latest sample of `host` (default: this manager's host) as a JSON-able dict.

        Keys: `host`, `sampled_at` (ISO 8601, UTC), `driver`, `cpu_count`, `load_1`,
        `load_5`, `load_15`, `memory_total`, `memory_available` (bytes) and `disks` (a list of
        `{"mount", "total", "used"}`, bytes); a value the row lacks (NULL) is None, no disks
        `[]`. None if that host has no sample.
        """
        host = host or self.host
        row = self.db.host_resources_get(host)
        if row is None:
            return None
        sampled_at = row["sampled_at"]
        if isinstance(sampled_at, datetime.datetime):
            if sampled_at.tzinfo is None:
                sampled_at = sampled_at.replace(tzinfo=datetime.UTC)
            sampled_at = sampled_at.astimezone(datetime.UTC).isoformat()
        disks = row["disks"]
        return {
            "host": host,
            "sampled_at": sampled_at,
            **{
                field: None if row[field] is None else kind(row[field])
                for field, kind in _FIELDS.items()
            },
            "disks": json.loads(disks) if isinstance(disks, (str, bytes)) else (disks or []),
        }


def list_opts() -> list[tuple[str | cfg.OptGroup, list[cfg.Opt]]]:
    """Options of a `[manager:NAME]` section that runs ResourcesManager, for the sample."""
    return [
        (
            cfg.OptGroup(
                "manager:resources",
                help="A section that runs the resources manager "
                "(manager = workers.resources.ResourcesManager) has these options besides the "
                "ones every [manager:NAME] section has.",
            ),
            ResourcesManager.opts,
        )
    ]
