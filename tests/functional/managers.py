"""Managers used by the functional tests: each hook call is appended to an event file.

A line is `<pid> <event> [detail ...]`. Options make a hook fail, block forever, or be slow,
so tests can assert on what real worker processes actually did.
"""

from __future__ import annotations

import gc
import os
import shlex
import subprocess
import threading
import time

import cotyledon
from oslo_config import cfg
from oslo_service import periodic_task

from supervisor.manager import Manager


class EventManager(Manager):
    """Its options are the tests' knobs, so a reload may turn any of them (mutable) except
    `fixed`, the test of an option that needs a restart."""

    opts = [
        cfg.StrOpt("event_file", mutable=True, help="Where hook calls are recorded."),
        cfg.StrOpt("fail_in", default="", mutable=True, help="Hook that raises."),
        cfg.StrOpt("block_in", default="", mutable=True, help="Hook that never returns."),
        cfg.StrOpt("slow_in", default="", mutable=True, help="Hook that sleeps slow_seconds."),
        cfg.FloatOpt("slow_seconds", default=1.0, mutable=True),
        cfg.BoolOpt("spawn_child", default=False, mutable=True, help="Start child_command."),
        cfg.StrOpt("child_command", default="sleep 300", mutable=True, help="spawn_child's."),
        cfg.StrOpt("label", default="-", mutable=True, help="Recorded by reset()."),
        cfg.IntOpt("leak_mb", default=0, mutable=True, help="MiB each tick keeps for good."),
        cfg.FloatOpt("tick_spacing", default=1, mutable=True, help="Seconds between ticks."),
        cfg.StrOpt("secret", secret=True, mutable=True, default="", help="Never to be shown."),
        cfg.StrOpt("fixed", default="-", help="Immutable; recorded by reset()."),
    ]
    leaked: list[bytearray] = []

    def _record(self, *words: str) -> None:
        append_event(self.configuration.event_file, *words)

    def _hook(self, name: str, *detail: str) -> None:
        self._record(name, *detail)
        conf = self.configuration
        # Slow first: slow_in and fail_in on one hook make a hook that fails late.
        if conf.slow_in == name:
            time.sleep(conf.slow_seconds)
            self._record(name + "-done")
        if conf.fail_in == name:
            raise RuntimeError(f"{name} failed on purpose")
        if conf.block_in == name:
            self._record(name + "-blocked")
            threading.Event().wait()

    def init_host(self) -> None:
        self.set_periodic_spacing("tick", self.configuration.tick_spacing)
        self._record("environ", "NOTIFY_SOCKET=" + os.environ.get("NOTIFY_SOCKET", "-"))
        self._hook("init_host", self.service_name, self.host)
        if self.configuration.spawn_child:
            child = subprocess.Popen(shlex.split(self.configuration.child_command))
            self._record("child", str(child.pid))

    def pre_start_hook(self) -> None:
        self._hook("pre_start_hook")

    def post_start_hook(self) -> None:
        self._hook("post_start_hook")

    def reset(self) -> None:
        self.set_periodic_spacing("tick", self.configuration.tick_spacing)
        self._record("reset-values", self.configuration.fixed, self.host)
        self._hook("reset", self.configuration.label)
        if self.configuration.label == "collect":  # what a busy worker reaches on its own
            gc.collect()
            self._record("collected")

    def cleanup_host(self) -> None:
        self._hook("cleanup_host")

    @periodic_task.periodic_task(spacing=1, run_immediately=True)
    def tick(self, context: object) -> None:
        self._hook("tick")
        if self.configuration.leak_mb:
            self.leaked.append(bytearray(b"x") * (self.configuration.leak_mb * 2**20))


DRIVER_GROUP = "event_driver"


class DriverManager(EventManager):
    """Registers a group of its own on `cfg.CONF`, in the worker, as a manager's driver does
    (the supervisor never sees it), and a mutate hook recording what a reload changed."""

    driver_opts = [
        cfg.StrOpt("mode", default="a", mutable=True, help="Changed by a reload."),
        cfg.IntOpt("size", default=1, help="Needs a restart."),
    ]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        cfg.CONF.register_opts(self.driver_opts, group=DRIVER_GROUP)
        cfg.CONF.register_mutate_hook(self._mutated)

    def _mutated(self, conf: cfg.ConfigOpts, fresh: dict) -> None:
        self._record("mutated", ",".join(sorted(f"{g or 'DEFAULT'}.{n}" for g, n in fresh)))

    def reset(self) -> None:
        driver = cfg.CONF[DRIVER_GROUP]
        self._record("driver", driver.mode, str(driver.size))
        super().reset()


class NotAManager:
    """Importable, but not a Manager subclass."""


class BrokenInit(Manager):
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("constructor failed on purpose")


class RetypedManager(EventManager):
    """EventManager whose `slow_seconds` is a string: an option that changes type on reload."""

    opts = [opt for opt in EventManager.opts if opt.dest != "slow_seconds"] + [
        cfg.StrOpt("slow_seconds", default="1.0"),
    ]


EVENT_FILE_ENV = "MGR_TEST_EVENT_FILE"


def append_event(path: str, *words: str) -> None:
    """Append `<pid> <words>` to the event file in one write (workers share the file)."""
    line = " ".join([str(os.getpid()), *words]) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record_event(*words: str) -> None:
    """Append to the event file named by $MGR_TEST_EVENT_FILE."""
    append_event(os.environ[EVENT_FILE_ENV], *words)


class EventService(cotyledon.Service):
    """A plain cotyledon service, as aodh or ceilometer write one: no Manager, no options.

    Its event file comes from $MGR_TEST_EVENT_FILE (a Service has no `self.configuration`).
    """

    name = "event-service"

    def __init__(self, worker_id: int) -> None:
        super().__init__(worker_id)
        self._shutdown = threading.Event()

    def run(self) -> None:
        record_event("run", str(self.worker_id))
        while not self._shutdown.wait(1):
            pass

    def reload(self) -> None:
        record_event("reload", str(self.worker_id))  # and no exit: reloaded in place

    def terminate(self) -> None:
        record_event("terminate", str(self.worker_id))
        self._shutdown.set()


class RecordManager(EventManager):
    """Nova's current hook signatures: init_host and pre_start_hook get the service record."""

    service_ref = None

    def init_host(self, service_ref: object = None) -> None:
        self._record("init_host-ref", _row_id(service_ref))
        super().init_host()
        self.set_periodic_spacing("watch_service_ref", self.configuration.tick_spacing)

    def pre_start_hook(self, service_ref: object = None) -> None:
        stored = None
        if service_ref is not None:
            stored = self.db.service_get(
                service_ref["host"], service_ref["manager"], service_ref["worker_id"]
            )
        self._record("pre_start_hook-ref", _row_id(service_ref), _row_id(stored))
        self.service_ref = service_ref
        super().pre_start_hook()

    @periodic_task.periodic_task(spacing=1, run_immediately=True)
    def watch_service_ref(self, context: object) -> None:
        """What the kept `service_ref` says now: an operator's disable reaches it."""
        if self.service_ref is not None:
            self._record("service_ref-disabled", str(self.service_ref.disabled))


class NovaStyleManager(EventManager):
    """Built as nova's managers are: `__init__(*args, **kwargs)` giving its own service_name."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(service_name="compute", *args, **kwargs)  # noqa: B026 (nova's idiom)

    def init_host(self) -> None:
        self._record("names", self.service_name, self.manager_name, self.configuration.label)
        super().init_host()


class UnbuildableManager(EventManager):
    """Takes a parameter the supervisor never passes: refused by the config check."""

    def __init__(self, host: str, db_driver: str, flavour: str) -> None:
        super().__init__(host, db_driver)


class RpcManager(EventManager):
    """EventManager with methods for RPC: each records what it did, so a test sees which
    worker served a call, and when (against the hooks)."""

    opts = [
        *EventManager.opts,
        cfg.BoolOpt(
            "call_self_in_post_start",
            default=False,
            help="post_start_hook() calls this worker over RPC: it can only be answered if "
            "the consumers run before it.",
        ),
    ]

    def post_start_hook(self) -> None:
        if self.configuration.call_self_in_post_start:
            from supervisor import rpc

            topic = self.configuration.topic or self.service_name
            client = rpc.get_client(topic, server=self.host).prepare(timeout=5)
            answer = client.call(None, "echo", value="self")
            self._record("post_start_hook-self-call", str(answer["pid"]))
        super().post_start_hook()

    def echo(self, context: object, value: object = None) -> dict[str, object]:
        self._record("rpc", "echo")
        return {
            "pid": os.getpid(),
            "value": value,
            "context": type(context).__name__,
            "request_id": getattr(context, "request_id", None),
        }

    def slow(self, context: object, seconds: float = 1.0) -> int:
        self._record("rpc", "slow-start")
        time.sleep(seconds)
        self._record("rpc", "slow-done")
        return os.getpid()

    def note(self, context: object, word: str) -> None:
        self._record("rpc", "note", word)

    def names(self, context: object) -> list[str]:
        """What `dir()` shows of this manager in its worker: what a caller could try."""
        return dir(self)

    def announce(self, context: object, value: object = None) -> None:
        """Sends `test.announced` through `self.notifier`."""
        self.notifier.info(context, "test.announced", {"value": value, "pid": os.getpid()})

    def quick(self, context: object, value: object = None) -> object:
        """An answer that records nothing: for loads of thousands of calls."""
        return value

    def fail(self, context: object) -> None:
        raise ValueError("failed on purpose")


def _row_id(row: object) -> str:
    return "none" if row is None else str(row["id"])  # type: ignore[index]
