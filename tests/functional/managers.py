"""Managers used by the functional tests: each hook call is appended to an event file.

A line is `<pid> <event> [detail ...]`. Options make a hook fail, block forever, or be slow,
so tests can assert on what real worker processes actually did.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from oslo_config import cfg
from oslo_service import periodic_task

from supervisor.manager import Manager


class EventManager(Manager):
    opts = [
        cfg.StrOpt("event_file", help="Where hook calls are recorded."),
        cfg.StrOpt("fail_in", default="", help="Hook that raises."),
        cfg.StrOpt("block_in", default="", help="Hook that never returns."),
        cfg.StrOpt("slow_in", default="", help="Hook that sleeps slow_seconds."),
        cfg.FloatOpt("slow_seconds", default=1.0),
        cfg.BoolOpt("spawn_child", default=False, help="Start `sleep` in init_host."),
        cfg.StrOpt("label", default="-", mutable=True, help="Recorded by reset()."),
        cfg.IntOpt("leak_mb", default=0, help="MiB each tick keeps for good."),
        cfg.FloatOpt("tick_spacing", default=1, mutable=True, help="Seconds between ticks."),
    ]
    leaked: list[bytearray] = []

    def _record(self, *words: str) -> None:
        line = " ".join([str(os.getpid()), *words]) + "\n"
        fd = os.open(self.configuration.event_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def _hook(self, name: str, *detail: str) -> None:
        self._record(name, *detail)
        conf = self.configuration
        if conf.fail_in == name:
            raise RuntimeError(f"{name} failed on purpose")
        if conf.block_in == name:
            self._record(name + "-blocked")
            threading.Event().wait()
        if conf.slow_in == name:
            time.sleep(conf.slow_seconds)
            self._record(name + "-done")

    def init_host(self) -> None:
        self.set_periodic_spacing("tick", self.configuration.tick_spacing)
        self._record("environ", "NOTIFY_SOCKET=" + os.environ.get("NOTIFY_SOCKET", "-"))
        self._hook("init_host", self.service_name, self.host)
        if self.configuration.spawn_child:
            child = subprocess.Popen(["sleep", "300"])
            self._record("child", str(child.pid))

    def pre_start_hook(self) -> None:
        self._hook("pre_start_hook")

    def post_start_hook(self) -> None:
        self._hook("post_start_hook")

    def reset(self) -> None:
        self.set_periodic_spacing("tick", self.configuration.tick_spacing)
        self._hook("reset", self.configuration.label)

    def cleanup_host(self) -> None:
        self._hook("cleanup_host")

    @periodic_task.periodic_task(spacing=1, run_immediately=True)
    def tick(self, context: object) -> None:
        self._hook("tick")
        if self.configuration.leak_mb:
            self.leaked.append(bytearray(b"x") * (self.configuration.leak_mb * 2**20))


class NotAManager:
    """Importable, but not a Manager subclass."""


class BrokenInit(Manager):
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("constructor failed on purpose")
