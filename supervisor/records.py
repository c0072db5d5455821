"""A worker's service record: nova's `services` row, written from the worker itself.

One row per (host, manager, worker id), created or updated after `init_host()` and before
`pre_start_hook()`, reported every `report_interval` by a thread of its own (so database
latency or an outage delays reports, never a hook or the supervisor's loop), and marked
stopped when the supervisor stops the worker. A worker the supervisor would judge hung is
not reported up; a dead one is never. An unreachable database is logged once when lost and
once when back (nova's `model_disconnected`); the worker goes on, and writes its record
when the database returns.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from supervisor import health

LOG = logging.getLogger(__name__)

# How long the lifecycle waits for the record before going on without it (database down).
CREATE_WAIT_SECONDS = 2.0


class ServiceRecord:
    """Creates, reports and stops one worker's row; every database call on its own thread."""

    def __init__(
        self,
        db: Any,
        host: str,
        topic: str,
        worker_id: int,
        pid: int,
        beacon: health.Beacon,
        limits: health.HealthLimits,
        report_interval: float,
    ) -> None:
        self.db = db
        self.host = host
        self.topic = topic
        self.worker_id = worker_id
        self.pid = pid
        self.label = f"{topic} worker({worker_id})"
        self.row: Any = None
        self._beacon = beacon
        self._limits = limits
        self._report_interval = report_interval
        self._forked_at = time.monotonic()
        self._created = threading.Event()
        self._stopping = threading.Event()
        self._connected: bool | None = None  # unknown until the first call
        self._thread = threading.Thread(target=self._run, name="service-record", daemon=True)

    def existing(self) -> Any:
        """The row this worker had before (for `init_host(service_ref)`), or None.

        Waits a little at most: a database that does not answer must not hold up a start.
        """
        found: list[Any] = []

        def get() -> None:
            try:
                found.append(self.db.service_get(self.host, self.topic, self.worker_id))
            except Exception as exc:
                self._lost(exc)
            else:
                self._back()

        thread = threading.Thread(target=get, name="service-record-get", daemon=True)
        thread.start()
        thread.join(CREATE_WAIT_SECONDS)
        return found[0] if found else None

    def create(self) -> Any:
        """Create or update the row; wait a little for it, then go on without it."""
        self._thread.start()
        self._created.wait(CREATE_WAIT_SECONDS)
        return self.row

    def stop(self) -> None:
        """A stop the supervisor asked for: no more reports, and the row says stopped."""
        self._stopping.set()
        if self.row is None:
            return
        try:
            self.db.service_mark_stopped(self.row["id"])
        except Exception as exc:
            self._lost(exc)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self.row is None:
                self._try(self._create)
            elif self._healthy():
                self._try(self._report)
            self._stopping.wait(self._report_interval)

    def _create(self) -> None:
        self.db.ensure_schema_once()  # the database may have been down when the parent began
        self.row = self.db.service_create_or_update(self.host, self.topic, self.worker_id, self.pid)
        self._created.set()
        LOG.debug("%s: service record %s", self.label, self.row["id"])

    def _report(self) -> None:
        self.row = self.db.service_report(self.row["id"])

    def _healthy(self) -> bool:
        """Whether the supervisor would keep this worker: a hung one is not reported up."""
        beacon = self._beacon.read()
        now = time.monotonic()
        return health.check(self._limits, beacon, now - self._forked_at, now) is None

    def _try(self, call: Any) -> None:
        try:
            call()
        except Exception as exc:
            self._lost(exc)
        else:
            self._back()
        self._beacon.set_database_ok(bool(self._connected))

    def _lost(self, exc: Exception) -> None:
        if self._connected is not False:
            LOG.error(
                "%s: the database is unreachable (%s); reports resume when it is back",
                self.label,
                type(exc).__name__,
            )
        self._connected = False

    def _back(self) -> None:
        if self._connected is False:
            LOG.info("%s: the database is reachable again", self.label)
        self._connected = True
