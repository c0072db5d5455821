"""A manager's notifier (`Manager.notifier`), as nova's managers have one.

An oslo.messaging `Notifier` with publisher_id `<service_name>.<host>`, its driver, topics and
transport from `[oslo_messaging_notifications]` (oslo.messaging's own options). A config whose
files have no such section, or set no driver, gets `NoopNotifier`: nothing imported, nothing
connected, every notification dropped, as oslo.messaging's own `noop` driver drops them.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

GROUP = "oslo_messaging_notifications"


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
