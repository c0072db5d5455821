"""The Manager base class: smart managers, dumb data (the `nova.manager.Manager` model).

A Manager holds the logic of one service; the data layer is a plain module given as
`db_driver` and imported as `self.db`, and backends are drivers the manager loads from its
own options. The supervisor builds one Manager per worker process and calls the hooks below.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

from oslo_config import cfg
from oslo_service import periodic_task
from oslo_utils import importutils

CONF = cfg.CONF

# A manager's own options live in the config section `[manager:NAME]`.
MANAGER_SECTION_PREFIX = "manager:"
# `[manager:NAME] db_driver` when the section does not set it: the service records' db api.
DEFAULT_DB_DRIVER = "supervisor.db.api"


_building: str | None = None  # the NAME whose manager is being built, in this process


@contextlib.contextmanager
def building(name: str) -> Iterator[None]:
    """While the supervisor builds `[manager:NAME]`'s manager, as nova's `Service` does:
    `cls(host=..., db_driver=...)`, no `service_name`, so a class that passes its own
    (nova's idiom) still gets NAME's section, and `manager_name` says which NAME it is."""
    global _building
    previous, _building = _building, name
    try:
        yield
    finally:
        _building = previous


class LazyModule:
    """`self.db`: the `db_driver` module, imported at its first use.

    A worker whose manager never touches its database never pays for SQLAlchemy (~0.4 s of
    CPU and ~10 MiB per process on the default driver); one that does gets the plain module.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importutils.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


class Manager(periodic_task.PeriodicTasks):
    """Base class of every manager; every hook is a no-op here.

    `opts` (a class attribute) lists the manager's own oslo.config options; they are
    registered in its `[manager:NAME]` section, which `self.configuration` is.
    """

    opts: ClassVar[list[cfg.Opt]] = []
    _notifier: Any = None  # made at the first use of `notifier`, or set by the manager

    def __init__(
        self,
        host: str | None = None,
        db_driver: str | None = None,
        service_name: str = "undefined",
    ) -> None:
        if not host:
            host = CONF.host
        self.host = host
        # The configured NAME: its section holds the options, whatever service_name the
        # class gives itself (nova's managers pass their own, e.g. 'compute').
        self.manager_name = _building or service_name
        if service_name == "undefined":
            service_name = self.manager_name
        self.service_name = service_name
        self.backdoor_port = None
        # More RPC endpoints beside the manager itself (nova's habit), each with its target.
        self.additional_endpoints: list[object] = []
        if db_driver:
            self.db = LazyModule(db_driver)
        section = MANAGER_SECTION_PREFIX + self.manager_name
        CONF.register_group(cfg.OptGroup(section))
        CONF.register_opts(list(self.opts), group=section)
        self.configuration = CONF[section]
        super().__init__(CONF)

    @property
    def notifier(self) -> Any:
        """nova's `self.notifier`: an oslo.messaging Notifier (publisher_id
        `<service_name>.<host>`, `[oslo_messaging_notifications]`), made at its first use;
        one that drops everything while no notification driver is configured."""
        if self._notifier is None:
            from supervisor import notifications

            self._notifier = notifications.get_notifier(self.service_name, self.host)
        return self._notifier

    @notifier.setter
    def notifier(self, notifier: Any) -> None:  # nova's managers set their own
        self._notifier = notifier

    def set_periodic_spacing(self, task_name: str, seconds: float) -> None:
        """Change one periodic task's spacing for this manager only.

        oslo.service keeps spacings on the class; a configurable spacing (set in
        `init_host()` and again in `reset()`) needs a per-instance copy.
        """
        if task_name not in self._periodic_spacing:
            raise KeyError(f"{type(self).__name__} has no periodic task {task_name!r}")
        if "_periodic_spacing" not in vars(self):
            self._periodic_spacing = dict(type(self)._periodic_spacing)
        self._periodic_spacing[task_name] = seconds

    def periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        """Run the due `@periodic_task` methods; return seconds until the next is due."""
        return self.run_periodic_tasks(context, raise_on_error=raise_on_error)

    def init_host(self) -> None:
        """Initialise the manager, before any service record exists."""

    def pre_start_hook(self) -> None:
        """After the service record is created, before RPC consumers exist."""

    def post_start_hook(self) -> None:
        """Right after RPC consumers are created; the worker is ready when this returns."""

    def reset(self) -> None:
        """On SIGHUP, in place, after the new config values are in force."""

    def cleanup_host(self) -> None:
        """On stop, once, before the worker exits."""
