"""RPC consumers per manager, and the client API, on oslo.messaging.

The seed's rule: a method that must run on a remote host is called "via rpc to the service
that wraps the manager". Each worker of a manager runs one RPC server,
`Target(topic=<topic>, server=<host>)` on the threading executor, whose endpoints are the
manager and its `additional_endpoints` (each versioned by its own `target`, as nova's
managers are). So all workers of a manager consume its `topic` and `topic.host` queues (a
call goes to one of them) and each has a fanout queue of its own (a fanout cast reaches
every worker). Messages are oslo.messaging's own, with nova's context serializer: a plain
`RPCClient` that knows only topic, method and arguments reaches our workers.

Imported only when `[DEFAULT] transport_url` is set. The parent imports it then, before its
first fork (~130 ms, mostly eventlet, which oslo.service's `service` module imports whatever
the executor), so the workers share those pages; every connection is made in a worker, after
its fork (docs/architecture.md, "RPC").
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import threading
import types
from collections.abc import Iterable
from typing import Any

import cotyledon
from oslo_config import cfg
from oslo_context import context as oslo_context

# First: it imports oslo.messaging with eventlet's import warning silenced.
from supervisor.context import RequestContextSerializer  # isort: skip

import oslo_messaging as messaging
from oslo_messaging import opts as messaging_opts
from oslo_messaging.rpc import server as rpc_server
from stevedore import driver as stevedore_driver

from supervisor import health
from supervisor.manager import Manager

LOG = logging.getLogger(__name__)

# The supervisor drives these; a remote caller never does.
LIFECYCLE_HOOKS = frozenset(
    {
        "init_host",
        "pre_start_hook",
        "post_start_hook",
        "periodic_tasks",
        "run_periodic_tasks",
        "reset",
        "cleanup_host",
    }
)
# What no endpoint exposes, whatever a manager inherits from it.
_FRAMEWORK_CLASSES = frozenset(Manager.__mro__) | frozenset(cotyledon.Service.__mro__)
BASE_NAMESPACE = "baseapi"  # nova's, for the endpoint every service serves
_OSLO_PING = "oslo_rpc_server_ping"  # the method of oslo.messaging's PingEndpoint
# oslo.messaging logs through this logger when the broker connection is lost and regained.
_DRIVER_LOGGER = "oslo.messaging._drivers.impl_rabbit"
_DRIVERS = "oslo.messaging.drivers"  # the entry-point group of its transports
_EXECUTORS = "oslo.messaging.executors"  # ... and of its executors
RABBIT_GROUP = "oslo_messaging_rabbit"


def check_transport_url(conf: cfg.ConfigOpts) -> str | None:
    """Why `[DEFAULT] transport_url` cannot be used, without its value (it is secret); None
    when it can. Registers oslo.messaging's transport options on `conf`."""
    try:
        url = messaging.TransportURL.parse(conf)
    except messaging.InvalidTransportURL:
        return "not a transport URL (driver://user:password@host:port/virtual_host)"
    except ValueError:  # the only number a URL has
        return "a port that is not a number from 1 to 65535"
    if not conf.transport_url:  # set empty: RPC is off
        return None
    drivers = {entry.name for entry in importlib.metadata.entry_points(group=_DRIVERS)}
    if url.transport not in drivers:
        return f"unknown transport {url.transport!r} (known: {', '.join(sorted(drivers))})"
    return None


def load_plugins(conf: cfg.ConfigOpts) -> None:
    """Load in the parent, before it forks, the plugins every worker's RPC server looks up
    through stevedore: the transport's driver and the threading executor (futurist, and the
    eventlet and multiprocessing modules it imports), with stevedore's entry-point cache.

    Looked up after each worker's fork, they would be built in every worker's private
    memory (a few MiB of USS each), and N workers would import them N times at a start.
    Loading creates nothing that must not cross a fork: no connection, no thread.
    """
    stevedore_driver.DriverManager(_DRIVERS, messaging.TransportURL.parse(conf).transport)
    stevedore_driver.DriverManager(_EXECUTORS, "threading")


def rabbit_opts() -> list[cfg.Opt]:
    """`[oslo_messaging_rabbit]`, registered by the driver in a worker, checked at start."""
    return next(opts for group, opts in messaging_opts.list_opts() if group == RABBIT_GROUP)


_transport_lock = threading.Lock()
_transport: Any = None
_extra_exmods: list[str] = []
UPGRADE_LEVELS_GROUP = "upgrade_levels"  # nova's: a version cap per topic
_EXMODS_OPT = "allowed_rpc_exception_modules"  # [DEFAULT], declared in supervisor/config.py


def add_extra_exmods(*modules: str) -> None:
    """Modules whose exceptions this process's RPC callers rebuild as their own type, beside
    `[DEFAULT] allowed_rpc_exception_modules` (nova's `rpc.add_extra_exmods`). Before the
    first `get_transport()`."""
    _extra_exmods.extend(modules)


def get_transport(conf: cfg.ConfigOpts | None = None) -> Any:
    """This process's RPC transport (made at its first use: never before a fork), with the
    exception modules a caller may rebuild."""
    global _transport
    with _transport_lock:
        if _transport is None:
            _transport = new_transport(conf or cfg.CONF)
        return _transport


def new_transport(conf: cfg.ConfigOpts) -> Any:
    """A transport on `conf`'s transport_url, whose callers rebuild the exceptions of
    `[DEFAULT] allowed_rpc_exception_modules` and of `add_extra_exmods()`."""
    # The supervisor's config declares the option; another service's may not.
    configured = conf.allowed_rpc_exception_modules if _EXMODS_OPT in conf else []
    allowed = [*configured, *_extra_exmods]
    return messaging.get_rpc_transport(conf, allowed_remote_exmods=allowed)


def get_client(
    topic: str,
    server: str | None = None,
    version: str | None = None,
    conf: cfg.ConfigOpts | None = None,
    namespace: str | None = None,
    *,
    version_cap: str | None = None,
    serializer: messaging.Serializer | None = None,
    transport: Any = None,
) -> messaging.RPCClient:
    """An oslo.messaging `RPCClient` for a manager's `topic` (and one host's workers with
    `server`), as nova's `rpc.get_client` makes one: nova's context serializer around
    `serializer`; `version_cap`, else `[upgrade_levels] <topic>` when set, caps the versions
    it sends (a rolling upgrade); `transport` reused, else this process's."""
    conf = conf or cfg.CONF
    if version_cap is None:
        conf.register_opt(cfg.StrOpt(topic), group=UPGRADE_LEVELS_GROUP)
        version_cap = conf[UPGRADE_LEVELS_GROUP][topic]
    target = messaging.Target(topic=topic, server=server, version=version, namespace=namespace)
    return messaging.get_rpc_client(
        transport or get_transport(conf),
        target,
        version_cap=version_cap,
        serializer=RequestContextSerializer(serializer),
    )


def exposed_methods(endpoint: object) -> frozenset[str]:
    """The names a remote caller may call on `endpoint`: an allow-list (docs/architecture.md,
    "RPC").

    A name is exposed when the class that defines it (the first in the endpoint's MRO) is
    the endpoint's own, not the framework's (`Manager`, oslo.service's `PeriodicTasks`,
    `cotyledon.Service`, `object`); its value there is a plain function; it does not start
    with `_`; it is no lifecycle hook and no periodic task; and no instance attribute hides
    it. Attributes, bound objects (`self.conf`, a driver) and anything inherited from the
    framework are never exposed.
    """
    instance_names = set(getattr(endpoint, "__dict__", ()))
    exposed = set()
    for name in dir(type(endpoint)):
        if name.startswith("_") or name in LIFECYCLE_HOOKS or name in instance_names:
            continue
        owner = next(cls for cls in type(endpoint).__mro__ if name in vars(cls))
        value = vars(owner)[name]
        if (
            owner not in _FRAMEWORK_CLASSES
            and isinstance(value, types.FunctionType)
            and not getattr(value, "_periodic_task", False)
        ):
            exposed.add(name)
    return frozenset(exposed)


class _Endpoint:
    """A manager, or one of its additional endpoints, as oslo.messaging sees it: its
    `target` and its exposed methods only, each call counted in the worker's beacon."""

    def __init__(self, endpoint: object, beacon: health.Beacon) -> None:
        self.target = getattr(endpoint, "target", None)  # None: the dispatcher's default
        self.methods = {
            name: _counted(getattr(endpoint, name), beacon) for name in exposed_methods(endpoint)
        }

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["methods"][name]
        except KeyError:
            raise AttributeError(name) from None


class _AllowListPolicy(messaging.RPCAccessPolicyBase):
    """The dispatcher calls only what `exposed_methods()` allowed; anything else is
    `NoSuchMethod`, even a name the wrapper itself has (`target`, `methods`). The one
    endpoint that is not ours is oslo.messaging's own ping (`[DEFAULT] rpc_ping_enabled`)."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        if isinstance(endpoint, _Endpoint):
            return method in endpoint.methods
        return method == _OSLO_PING


def _counted(method: Any, beacon: health.Beacon) -> Any:
    @functools.wraps(method)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = method(*args, **kwargs)
        except TypeError:
            beacon.count_rpc("failed" if _accepts(method, args, kwargs) else "rejected")
            raise
        except Exception:
            beacon.count_rpc("failed")
            raise
        beacon.count_rpc("served")
        return result

    return counted


def _accepts(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether `method` accepts these arguments (asked only once a call raised TypeError:
    the method's own TypeError is a failure, arguments it does not take a rejection)."""
    try:
        inspect.signature(method).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature to read
        return True
    return True


class Dispatcher(messaging.RPCDispatcher):
    """What a worker's RPC server dispatches with: oslo.messaging's dispatcher over the
    endpoints' exposed methods, counting what it refuses before any method runs (no such
    method, an unsupported version) as rejected."""

    def __init__(self, endpoints: Iterable[object], beacon: health.Beacon) -> None:
        super().__init__(
            [_Endpoint(endpoint, beacon) for endpoint in endpoints],
            RequestContextSerializer(),
            _AllowListPolicy,
        )
        self._beacon = beacon

    def dispatch(self, incoming: Any) -> Any:
        try:
            return super().dispatch(incoming)
        except (messaging.NoSuchMethod, messaging.UnsupportedVersion):
            self._beacon.count_rpc("rejected")
            raise


class BaseRPCAPI:
    """nova's base RPC API (`nova.baserpc`), served by every worker beside its manager, in
    the namespace `baseapi`: `ping` is what nova-style probes (openstack-helm's) call."""

    target = messaging.Target(namespace=BASE_NAMESPACE, version="1.1")

    def __init__(self, service_name: str, backdoor_port: int | None = None) -> None:
        self.service_name = service_name
        self.backdoor_port = backdoor_port

    def ping(self, context: Any, arg: Any) -> dict[str, Any]:
        return {"service": self.service_name, "arg": arg}

    def get_backdoor_port(self, context: Any) -> int | None:
        return self.backdoor_port


# The rabbit driver's ERROR records that mean the connection is lost (their message templates):
# a message it cannot read ("Failed to process message ... skipping it") is not among them.
_CONNECTION_LOST = (
    "Connection failed",
    "is unreachable",
    "closed the connection",
    "Failed to consume message from queue",
    "has blocked the connection",
)


def connection_lost(record: logging.LogRecord) -> bool:
    """Whether a driver log record says the broker connection is lost."""
    text = str(record.msg)
    return record.levelno >= logging.ERROR and any(part in text for part in _CONNECTION_LOST)


class _ConnectionWatch(logging.Filter):
    """Turns the driver's own log records about the broker connection into the worker's RPC
    state: lost is "reconnecting", "Reconnected" is "consuming" again. oslo.messaging has no
    callback for it; its records are what an operator sees too."""

    def __init__(self, beacon: health.Beacon) -> None:
        super().__init__()
        self._beacon = beacon
        self.consuming = False  # set once the server has started

    def filter(self, record: logging.LogRecord) -> bool:
        if self.consuming:
            if connection_lost(record):
                self._beacon.set_rpc_state("reconnecting")
            elif "Reconnected to AMQP server" in str(record.msg):
                self._beacon.set_rpc_state("consuming")
        return True


class Consumers:
    """One worker's RPC server: consuming from after `pre_start_hook()` until the stop, when
    it takes no more messages and answers those it took before `cleanup_host()` runs."""

    def __init__(
        self,
        topic: str,
        host: str,
        endpoints: Iterable[object],
        beacon: health.Beacon,
        conf: cfg.ConfigOpts | None = None,
    ) -> None:
        self._beacon = beacon
        self._watch = _ConnectionWatch(beacon)
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._server = rpc_server.RPCServer(
            get_transport(conf),
            messaging.Target(topic=topic, server=host),
            Dispatcher(endpoints, beacon),
            executor="threading",
        )

    def start(self) -> bool:
        """Consume; blocks while the broker cannot be reached (oslo.messaging retries, its
        interval capped by `[oslo_messaging_rabbit] rabbit_interval_max`). False when a
        stop came first: then nothing consumes."""
        self._beacon.set_rpc_state("connecting")
        logging.getLogger(_DRIVER_LOGGER).addFilter(self._watch)
        self._server.start()
        with self._lock:
            self._started = True
            stopped = self._stopped
        if stopped:
            self._stop_server(timeout=None)
            return False
        self._watch.consuming = True
        self._beacon.set_rpc_state("consuming")
        return True

    def stop(self, timeout: float | None) -> None:
        """Take no more messages; wait up to `timeout` seconds for the calls in flight to be
        answered. A server still waiting for the broker is stopped by `start()` itself."""
        with self._lock:
            self._stopped = True
            started = self._started
        if started:
            self._stop_server(timeout)

    def _stop_server(self, timeout: float | None) -> None:
        self._watch.consuming = False
        self._server.stop()  # the listener's thread is gone: what it took is dispatched
        _give_back_untaken(self._server)
        waiter = threading.Thread(target=self._server.wait, name="rpc-drain", daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            LOG.warning("RPC calls still running after %.1fs: going on without them", timeout)
        self._beacon.set_rpc_state("stopped")


def _give_back_untaken(server: Any) -> None:
    """Cancel a stopped server's consumers at the broker, handing back what it delivered
    to this worker and the worker did not take (docs/architecture.md, "RPC").

    oslo.messaging's rabbit driver acknowledges a request as it reads it. After `stop()`
    the broker still delivers to the worker's consumers, which stay registered until the
    connection closes; the close deletes the fanout queue first, and the frames read while
    it waits run the consumers' callbacks: those requests are acknowledged into a listener
    nobody polls any more, and their callers time out. Here, with the listener's thread
    gone (a listening connection has no heartbeat thread), every delivery from now on is
    rejected with requeue and each consumer is cancelled, so the broker gives those
    requests to the other workers at once, not after the calls in flight are drained.
    Only the rabbit driver's listener has this shape; any other is left as it is.
    """
    listener = getattr(getattr(server, "listener", None), "_poll_style_listener", None)
    channel = getattr(getattr(listener, "conn", None), "channel", None)
    callbacks = getattr(channel, "callbacks", None)
    if not isinstance(callbacks, dict):
        return

    def requeue(message: Any) -> None:
        message.channel.basic_reject(message.delivery_tag, requeue=True)

    try:
        for tag in list(callbacks):
            callbacks[tag] = requeue
        for tag in list(callbacks):
            channel.basic_cancel(tag)
    except Exception as exc:  # a lost connection hands them back by itself
        LOG.debug("cancelling the RPC consumers: %s", exc)


class CallFailed(Exception):
    """The remote method raised: its exception's type, then its message's first line."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")


class NoAnswer(Exception):
    """The broker could not be reached, or no worker answered in time."""


# A client sends once more when the broker does not take a message, then gives up (the
# default, None, retries forever: a command must end).
SEND_RETRIES = 1
_REMOTE_SUFFIX = "_Remote"  # how oslo.messaging names a remote exception it rebuilt
SEND_GRACE_SECONDS = 1.0  # beyond the call's timeout, for the client's own connecting


def invoke(
    topic: str,
    method: str,
    arguments: dict[str, Any],
    *,
    server: str | None = None,
    version: str | None = None,
    namespace: str | None = None,
    mode: str = "call",
    timeout: float | None = None,
    conf: cfg.ConfigOpts | None = None,
) -> Any:
    """One `call` (its result), `cast` or `fanout` cast (None) of `method` on `topic`, as
    `mgr-supervisorctl call` makes it. Raises CallFailed or NoAnswer."""
    client = get_client(
        topic, server=server, version=version, conf=conf, namespace=namespace
    ).prepare(timeout=timeout, retry=SEND_RETRIES, fanout=mode == "fanout")
    context = oslo_context.RequestContext()
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            if mode == "call":
                outcome["result"] = client.call(context, method, **arguments)
            else:
                client.cast(context, method, **arguments)
                outcome["result"] = None
        except BaseException as exc:
            outcome["error"] = exc

    # oslo.messaging waits for the broker without end when it makes a call's reply queue:
    # the deadline is ours.
    sender = threading.Thread(target=send, name="rpc-send", daemon=True)
    sender.start()
    sender.join(None if timeout is None else timeout + SEND_GRACE_SECONDS)
    if sender.is_alive():
        raise NoAnswer(f"no answer within {timeout}s (is the message broker reachable?)")
    if "error" not in outcome:
        return outcome["result"]
    try:
        raise outcome["error"]
    except messaging.MessagingTimeout:
        raise NoAnswer(f"no answer within {timeout}s") from None
    except messaging.RemoteError as exc:
        raise CallFailed(str(exc.exc_type), _first_line(exc.value)) from None
    except messaging.MessagingException as exc:
        raise NoAnswer(f"{type(exc).__name__}: {_first_line(str(exc))}") from None
    except Exception as exc:
        # What oslo.messaging rebuilt of the remote exception: a builtin as itself, one of
        # `allowed_remote_exmods` as `<Name>_Remote`; its text carries the remote traceback.
        kind = type(exc).__name__.removesuffix(_REMOTE_SUFFIX)
        raise CallFailed(kind, _first_line(str(exc))) from None


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""
