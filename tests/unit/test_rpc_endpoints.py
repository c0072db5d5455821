"""What a remote caller may call on a manager: the allow-list, through oslo.messaging's own
dispatcher (no broker: a request is handed to `RPCDispatcher.dispatch` as a listener would)."""

from __future__ import annotations

import cotyledon
import oslo_messaging as messaging
import pytest
from oslo_service import periodic_task

from supervisor import health, rpc
from supervisor.manager import Manager


class Driver:
    """A bound object on the manager: callable, but never an RPC method."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.calls += 1


class Mixin:
    def from_mixin(self, context: object) -> str:
        return "mixin"


class BaseManager(Manager):
    def base_call(self, context: object) -> str:
        return "base"

    def init_host(self) -> None:  # a hook, overridden below Manager: still not remote
        self.hosted = True

    def _private(self, context: object) -> str:
        return "private"

    @periodic_task.periodic_task(spacing=60)
    def tick(self, context: object) -> None:
        self.ticked = True


class ComputeManager(Mixin, BaseManager):
    target = messaging.Target(version="6.2")
    count = 1  # a class attribute
    hidden = None  # a method name that an instance attribute hides, below

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.driver = Driver()
        self.hidden = Driver()

    def get_host_uptime(self, context: object) -> str:
        return "up"

    def echo(self, context: object, value: object = None) -> object:
        return value

    def explode(self, context: object, kind: str = "runtime") -> None:
        raise TypeError("its own") if kind == "type" else RuntimeError("its own")

    @staticmethod
    def static(context: object) -> str:
        return "static"

    @classmethod
    def klass(cls, context: object) -> str:
        return "classmethod"

    @property
    def prop(self) -> str:
        return "property"


class ComputeV5Proxy:
    """An additional endpoint, as nova's `_ComputeV5Proxy`: its own methods only."""

    target = messaging.Target(version="5.13")

    def __init__(self, manager: ComputeManager) -> None:
        self.manager = manager

    def get_host_uptime(self, context: object) -> str:
        return "v5 up"

    def _helper(self) -> None:
        raise AssertionError("never called remotely")


class ServiceEndpoint(cotyledon.Service):
    """A cotyledon.Service as an endpoint: nothing of cotyledon's is exposed."""

    def status(self, context: object) -> str:
        return "fine"


class Incoming:
    """What a listener hands the dispatcher: the message, its context."""

    def __init__(self, method: str, version: str = "6.0", **args: object) -> None:
        self.message = {"method": method, "args": args, "version": version}
        self.ctxt: dict[str, object] = {}
        self.client_timeout = None


@pytest.fixture
def manager() -> ComputeManager:
    return ComputeManager(host="node-1", service_name="compute-allow-list")


def test_only_the_managers_own_plain_methods_are_exposed(manager):
    assert rpc.exposed_methods(manager) == {
        "base_call",
        "echo",
        "explode",
        "from_mixin",
        "get_host_uptime",
    }
    assert rpc.exposed_methods(ComputeV5Proxy(manager)) == {"get_host_uptime"}
    assert rpc.exposed_methods(ServiceEndpoint(0)) == {"status"}


def test_every_other_name_on_the_manager_answers_no_such_method(manager):
    """Every name `dir()` shows that is not exposed, and the wrapper's own names, as a remote
    caller would send them: NoSuchMethod, and nothing ran."""
    manager.conf = Driver()  # in a worker, cfg.CONF: calling it clears the whole config
    beacon = health.Beacon()
    dispatcher = rpc.Dispatcher([manager], beacon)
    names = set(dir(manager)) | {"conf", "target", "methods", "oslo_rpc_server_ping"}
    refused = sorted(names - rpc.exposed_methods(manager))
    assert {"conf", "set_periodic_spacing", "init_host", "tick", "driver", "_private"} <= set(
        refused
    )
    for name in refused:
        with pytest.raises(messaging.NoSuchMethod):
            dispatcher.dispatch(Incoming(name))
    assert manager.conf.calls == manager.driver.calls == manager.hidden.calls == 0
    assert not hasattr(manager, "hosted") and not hasattr(manager, "ticked")
    counts = beacon.read()
    assert counts.rpc_served == counts.rpc_failed == 0
    assert counts.rpc_rejected == len(refused)


def test_exposed_methods_are_served_and_counted(manager):
    beacon = health.Beacon()
    dispatcher = rpc.Dispatcher([manager, ComputeV5Proxy(manager)], beacon)
    assert dispatcher.dispatch(Incoming("echo", value=3)) == 3
    assert dispatcher.dispatch(Incoming("get_host_uptime")) == "up"
    assert dispatcher.dispatch(Incoming("get_host_uptime", version="5.0")) == "v5 up"
    assert dispatcher.dispatch(Incoming("from_mixin")) == "mixin"
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(Incoming("_helper", version="5.0"))
    with pytest.raises(messaging.UnsupportedVersion):
        dispatcher.dispatch(Incoming("echo", version="7.0"))
    with pytest.raises(TypeError):
        dispatcher.dispatch(Incoming("echo", colour="red"))  # no such argument
    with pytest.raises(RuntimeError):
        dispatcher.dispatch(Incoming("explode"))
    with pytest.raises(TypeError):
        dispatcher.dispatch(Incoming("explode", kind="type"))  # its own TypeError: failed
    counts = beacon.read()
    assert (counts.rpc_served, counts.rpc_failed, counts.rpc_rejected) == (4, 2, 3)


def test_novas_base_api_answers_ping_in_its_namespace(manager):
    base = rpc.BaseRPCAPI("compute", backdoor_port=None)
    assert rpc.exposed_methods(base) == {"ping", "get_backdoor_port"}
    dispatcher = rpc.Dispatcher([manager, base], health.Beacon())
    ping = Incoming("ping", version="1.0", arg="probe")
    ping.message["namespace"] = "baseapi"
    assert dispatcher.dispatch(ping) == {"service": "compute", "arg": "probe"}
    with pytest.raises(messaging.NoSuchMethod):
        dispatcher.dispatch(Incoming("ping", arg="probe"))  # not the manager's own


@pytest.mark.parametrize(
    ("level", "message", "lost"),
    [
        ("ERROR", "Connection failed: %s (retrying in %s seconds)", True),
        ("ERROR", "[%(connection_id)s] AMQP server on %(hostname)s:%(port)s is unreachable", True),
        ("ERROR", "Failed to consume message from queue: %s", True),
        ("ERROR", "Failed to process message ... skipping it.", False),
        ("ERROR", "Failed to publish message to topic '%(topic)s': %(err_str)s", False),
        ("INFO", "Connection failed, said at INFO", False),
    ],
)
def test_only_a_lost_connection_counts_as_one(level, message, lost):
    import logging

    record = logging.LogRecord("impl_rabbit", getattr(logging, level), "", 0, message, None, None)
    assert rpc.connection_lost(record) is lost
