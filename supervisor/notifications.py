"""Notifications: a manager's notifier (`Manager.notifier`), as nova's managers have one,
and the supervisor's own `service.update`, one per change of a service record's state.

An oslo.messaging `Notifier` with publisher_id `<service_name>.<host>`, its driver, topics and
transport from `[oslo_messaging_notifications]` (oslo.messaging's own options). A config whose
files have no such section, or set no driver, gets `NoopNotifier`: nothing imported, nothing
connected, every notification dropped, as oslo.messaging's own `noop` driver drops them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oslo_config import cfg

LOG = logging.getLogger(__name__)

GROUP = "oslo_messaging_notifications"
SERVICE_UPDATE = "service.update"
# service.update notifications the recorder holds while the broker does not take them.
QUEUE_SIZE = 1000


class NoopNotifier:
    """What a manager notifies when notifications are off: the Notifier's methods, no-ops."""

    def prepare(self, **kwargs: Any) -> NoopNotifier:
        return self

    def is_enabled(self) -> bool:
        return False

    def _drop(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Dropped: no driver is configured."""

    audit = critical = debug = error = info = sample = warn = warning = _drop


def get_notifier(service_name: str, host: str, conf: cfg.ConfigOpts | None = None) -> Any:
    """The notifier of one manager's worker: oslo.messaging's, or `NoopNotifier` when no
    `[oslo_messaging_notifications] driver` is set."""
    conf = conf or cfg.CONF
    if GROUP not in conf.list_all_sections():  # then no driver is set: import nothing
        return NoopNotifier()
    # oslo.messaging, which a worker with RPC on has already.
    from supervisor.context import RequestContextSerializer, messaging, messaging_opts

    options = dict(messaging_opts.list_opts())[GROUP]
    conf.register_opts(options, group=GROUP)
    if not conf[GROUP].driver:
        return NoopNotifier()
    return messaging.Notifier(
        messaging.get_notification_transport(conf),
        publisher_id=f"{service_name}.{host}",
        serializer=RequestContextSerializer(),
    )


def service_payload(row: Mapping[str, Any], state: str, event: str) -> dict[str, Any]:
    """A `service.update` payload: the record as `mgr-supervisorctl services --json` shows
    it, `state` up, down or stopped (nova's State) beside `disabled` (its Status), and the
    change that caused it: `event` up, down, stopped, disabled or enabled."""
    last = row["last_seen_up"]
    return {
        "event": event,
        "host": row["host"],
        "manager": row["manager"],
        "worker_id": row["worker_id"],
        "pid": row["pid"],
        "state": state,
        "disabled": bool(row["disabled"]),
        "disabled_reason": row["disabled_reason"],
        "report_count": row["report_count"],
        "last_seen_up": None if last is None else last.isoformat() + "Z",
    }


Liveness = Callable[[Mapping[str, Any], float, "datetime.datetime | None"], str]


class ServiceEvents:
    """The recorder's `service.update` notifications: one each time a row it writes goes
    up, down or stopped, so a fleet's listeners see what `services` shows.

    It knows the rows it wrote (starts, reports, stops) and the state it last announced for
    each; a row whose reports stop is announced down once `service_down_time` has passed
    since its last one (`due()` says when). Disabling and enabling are announced by the
    command that does them (`mgr-supervisorctl services`), as nova announces them from the
    API that saves them.

    They are sent by a thread of their own, from a bounded queue: the recorder's loop never
    waits on the message broker, and a broker that is down costs notifications (dropped,
    said once), never records.
    """

    def __init__(self, notifier: Any, service_down_time: float, liveness: Liveness) -> None:
        self._notifier = notifier
        self._down_time = service_down_time
        self._liveness = liveness
        self._rows: dict[int, dict[str, Any]] = {}
        self._announced: dict[int, str] = {}
        self._check_at: float | None = None  # monotonic: when the next row up may be down
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._sender: threading.Thread | None = None
        self._dropped = 0

    def written(self, rows: Iterable[Any]) -> None:
        """Rows a start or a report wrote, as the database returned them."""
        for row in rows:
            fields = dict(row.items())
            self._rows[fields["id"]] = fields
            self._announce(fields["id"], self._liveness(fields, self._down_time, None))
        self._plan()

    def stopped(self, row_ids: Iterable[int]) -> None:
        """Rows marked stopped (a stop the supervisor asked for)."""
        for row_id in row_ids:
            if row_id in self._rows:
                self._rows[row_id]["stopped"] = True
                self._announce(row_id, "stopped")
        self._plan()

    def sweep(self) -> None:
        """Announce down every row up until now whose last report is too old; nothing to do
        (and nothing read) before `due()`: the recorder calls it at every turn of its loop."""
        if self._check_at is None or time.monotonic() < self._check_at:
            return
        for row_id, state in list(self._announced.items()):
            if state == "up":
                self._announce(row_id, self._liveness(self._rows[row_id], self._down_time, None))
        self._plan()

    def due(self) -> float | None:
        """Seconds until the next row announced up may be down (None: none is up)."""
        return None if self._check_at is None else max(0.0, self._check_at - time.monotonic())

    def _plan(self) -> None:
        """When to sweep next: as the rows' last reports change, not at every turn."""
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        left = [
            self._down_time - (now - self._rows[row_id]["last_seen_up"]).total_seconds()
            for row_id, state in self._announced.items()
            if state == "up" and self._rows[row_id]["last_seen_up"] is not None
        ]
        self._check_at = time.monotonic() + max(0.0, min(left)) + 0.01 if left else None

    def _announce(self, row_id: int, state: str) -> None:
        if self._announced.get(row_id) == state:
            return
        self._announced[row_id] = state
        if self._sender is None:
            self._sender = threading.Thread(target=self._send, name="notifications", daemon=True)
            self._sender.start()
        try:
            self._queue.put_nowait(service_payload(self._rows[row_id], state, state))
        except queue.Full:
            if not self._dropped:
                LOG.warning("notifications: the message broker is not taking them; dropping")
            self._dropped += 1

    def close(self, timeout: float) -> None:
        """Send what is queued, for at most `timeout` seconds (the recorder is stopping)."""
        if self._sender is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            self._sender.join(timeout)

    def _send(self) -> None:
        while (payload := self._queue.get()) is not None:
            try:
                self._notifier.info({}, SERVICE_UPDATE, payload)
            except Exception:  # oslo.messaging logs its own failures; never end the thread
                LOG.debug("notifications: %s not sent", SERVICE_UPDATE, exc_info=True)


def announce_disabled(
    notifier: Any, rows: Iterable[Any], disabled: bool, service_down_time: float, liveness: Liveness
) -> None:
    """`service.update` for rows an operator disabled or enabled."""
    event = "disabled" if disabled else "enabled"
    for row in rows:
        fields = dict(row.items())
        state = liveness(fields, service_down_time, None)
        notifier.info({}, SERVICE_UPDATE, service_payload(fields, state, event))
