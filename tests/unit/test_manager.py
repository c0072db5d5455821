"""The Manager base class API (docs/architecture.md, "The Manager")."""

from __future__ import annotations

import inspect
import sys

from oslo_config import cfg
from oslo_service import periodic_task

from supervisor.config import register_static_opts
from supervisor.manager import Manager

if "host" not in cfg.CONF:
    register_static_opts(cfg.CONF)


class Counting(Manager):
    opts = [cfg.IntOpt("answer", default=42)]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ticks = 0

    @periodic_task.periodic_task(spacing=5, run_immediately=True)
    def tick(self, context):
        self.ticks += 1


def test_signature_is_novas():
    params = inspect.signature(Manager.__init__).parameters
    assert list(params) == ["self", "host", "db_driver", "service_name"]
    assert params["host"].default is None
    assert params["db_driver"].default is None
    assert params["service_name"].default == "undefined"


def test_hooks_are_no_ops():
    manager = Manager(host="h")
    for hook in ("init_host", "pre_start_hook", "post_start_hook", "reset", "cleanup_host"):
        assert getattr(manager, hook)() is None


def test_host_defaults_to_conf_host():
    assert Manager().host == cfg.CONF.host
    assert Manager(host="node-9").host == "node-9"


def test_db_driver_is_imported_as_self_db_at_its_first_use():
    import json

    name = "tests.unit.lazy_db_driver"
    sys.modules.pop(name, None)
    manager = Manager(db_driver=name)
    assert name not in sys.modules, "not imported while the manager is built"
    assert manager.db.ANSWER == 42
    assert sys.modules[name].ANSWER == 42
    assert Manager(db_driver="json").db.dumps([1]) == json.dumps([1])
    assert not hasattr(Manager(), "db")


def test_own_opts_live_in_the_manager_section():
    manager = Counting(service_name="counting")
    assert manager.configuration.answer == 42
    assert cfg.CONF["manager:counting"].answer == 42
    assert manager.conf is cfg.CONF


def test_periodic_tasks_run_due_tasks_and_return_the_idle_time():
    manager = Counting(service_name="counting")
    idle = manager.periodic_tasks(context=None)
    assert manager.ticks == 1
    assert 0 < idle <= 5
    manager.periodic_tasks(context=None)
    assert manager.ticks == 1, "not due again yet"


def test_periodic_spacing_can_change_per_instance():
    one, other = Counting(service_name="counting"), Counting(service_name="counting")
    one.set_periodic_spacing("tick", 0.5)
    assert one._periodic_spacing["tick"] == 0.5
    assert other._periodic_spacing["tick"] == 5
    assert Counting._periodic_spacing["tick"] == 5
    assert one.periodic_tasks(context=None) <= 0.5


def test_periodic_spacing_of_an_unknown_task_is_an_error():
    import pytest

    with pytest.raises(KeyError, match="no periodic task 'nope'"):
        Counting(service_name="counting").set_periodic_spacing("nope", 1)


class NovaStyle(Manager):
    opts = [cfg.StrOpt("flavour", default="plain")]

    def __init__(self, *args, **kwargs):
        super().__init__(service_name="compute", *args, **kwargs)  # noqa: B026 (nova's idiom)


def test_a_manager_naming_itself_gets_the_section_it_is_built_for():
    from supervisor.manager import building

    with building("cells"):
        manager = NovaStyle(host="h", db_driver=None)
    assert (manager.service_name, manager.manager_name) == ("compute", "cells")
    cfg.CONF.set_override("flavour", "spicy", group="manager:cells")
    try:
        assert manager.configuration.flavour == "spicy"
    finally:
        cfg.CONF.clear_override("flavour", group="manager:cells")
    with building("plain-name"):
        plain = Manager(host="h")
    assert (plain.service_name, plain.manager_name) == ("plain-name", "plain-name")
    outside = NovaStyle(host="h")
    assert (outside.service_name, outside.manager_name) == ("compute", "compute")


def test_a_constructor_the_supervisor_cannot_call_is_found_on_its_signature():
    import cotyledon

    from supervisor.config import unbuildable

    class NeedsMore(Manager):
        def __init__(self, host, db_driver, flavour):
            raise AssertionError("never built by the check")

    class TwoArgService(cotyledon.Service):
        def __init__(self, worker_id, extra):
            raise AssertionError("never built by the check")

    assert unbuildable(NovaStyle) is None
    assert unbuildable(Counting) is None
    assert unbuildable(Manager) is None
    assert "NeedsMore(host=..., db_driver=...): missing a required argument: 'flavour'" == (
        unbuildable(NeedsMore)
    )
    assert "TwoArgService(worker_id): missing a required argument: 'extra'" == (
        unbuildable(TwoArgService)
    )


def test_the_notifier_is_a_no_op_without_a_notification_driver(tmp_path):
    """No `[oslo_messaging_notifications]` section: notifications are dropped, and
    oslo.messaging is never imported for them (a fresh interpreter tells)."""
    import subprocess

    config = tmp_path / "plain.conf"
    config.write_text("[DEFAULT]\nhost = node-1\n")
    code = (
        "import sys\n"
        "from oslo_config import cfg\n"
        "from supervisor.config import register_static_opts\n"
        "from supervisor.manager import Manager\n"
        "register_static_opts(cfg.CONF)\n"
        f"cfg.CONF(['--config-file', {str(config)!r}], project='t')\n"
        "m = Manager(service_name='alpha')\n"
        "m.notifier.info({}, 'x.y', {'a': 1})\n"
        "n = m.notifier\n"
        "print(type(n).__name__, n.is_enabled(), 'oslo_messaging' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NoopNotifier", "False", "False"]


def test_a_manager_may_set_its_own_notifier():
    manager = Manager(host="h", service_name="own-notifier")
    sentinel = object()
    manager.notifier = sentinel  # nova's managers: self.notifier = rpc.get_notifier(...)
    assert manager.notifier is sentinel
