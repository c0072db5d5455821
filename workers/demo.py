"""A demo manager that logs every hook: the smallest complete example of a Manager."""

from __future__ import annotations

import logging
import os

from oslo_config import cfg
from oslo_service import periodic_task

from supervisor.manager import Manager

LOG = logging.getLogger(__name__)


class DemoManager(Manager):
    """Logs each lifecycle hook and says hello from one periodic task."""

    opts = [
        cfg.StrOpt(
            "greeting",
            default="hello",
            mutable=True,
            help="What the periodic task logs; change it and send SIGHUP to see reset().",
        ),
        cfg.IntOpt(
            "greeting_interval",
            default=10,
            min=1,
            mutable=True,
            help="Seconds between two greetings; SIGHUP applies a new value in place.",
        ),
    ]

    def init_host(self) -> None:
        LOG.info("%s: init_host on %s", self.service_name, self.host)
        self.set_periodic_spacing("say_greeting", self.configuration.greeting_interval)

    def pre_start_hook(self) -> None:
        LOG.info("%s: pre_start_hook", self.service_name)

    def post_start_hook(self) -> None:
        LOG.info("%s: post_start_hook", self.service_name)

    def reset(self) -> None:
        LOG.info("%s: reset, greeting is now %r", self.service_name, self.configuration.greeting)
        self.set_periodic_spacing("say_greeting", self.configuration.greeting_interval)

    def cleanup_host(self) -> None:
        LOG.info("%s: cleanup_host", self.service_name)

    def greet(self, context: object, name: str = "world") -> dict[str, object]:
        """Over RPC (with [DEFAULT] transport_url set): which worker answered, and how."""
        LOG.info("%s: %s, %s (over RPC)", self.service_name, self.configuration.greeting, name)
        return {
            "greeting": f"{self.configuration.greeting}, {name}",
            "host": self.host,
            "pid": os.getpid(),
        }

    @periodic_task.periodic_task(spacing=10, run_immediately=True)
    def say_greeting(self, context: object) -> None:
        LOG.info("%s: %s", self.service_name, self.configuration.greeting)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace `mgr-supervisor.workers`)."""
    return [("manager:demo", DemoManager.opts)]
