"""The notes manager: nova's shape, on mgr-supervisor.

- a versioned RPC API (`target`, 2.1): 2.0 has `put_note` and `get_note`; 2.1 added the
  `prefix` of `list_notes`;
- `_NotesV1Proxy` in `additional_endpoints` answers callers still on 1.x (`set_note` became
  `put_note` in 2.0), as nova's `_ComputeV5Proxy` does for compute 5.x;
- `NoteNotFound` travels: a caller that allows `workers.notes.exception` catches it;
- `self.notifier` tells listeners of each note put (`notes.put`);
- the storage is a driver chosen by `notes_driver`.
"""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging
from oslo_config import cfg

from supervisor.manager import Manager
from workers.notes import drivers, exception

LOG = logging.getLogger(__name__)


class NotesManager(Manager):
    """Keeps notes by key, behind a versioned RPC API."""

    target = messaging.Target(version="2.1")
    opts = [
        cfg.StrOpt(
            "notes_driver",
            default="memory",
            choices=sorted(drivers.DRIVERS),
            help="Where notes are kept: memory (each worker its own, gone at a stop) or "
            "file (notes_file, shared by the host's workers). Needs a restart of the manager.",
        ),
        cfg.StrOpt("notes_file", default="", help="The file driver's JSON file."),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(service_name="notes", *args, **kwargs)  # noqa: B026 (nova's idiom)
        self.driver: drivers.NotesDriver | None = None
        self.additional_endpoints = [_NotesV1Proxy(self)]

    def init_host(self) -> None:
        conf = self.configuration
        self.driver = drivers.DRIVERS[conf.notes_driver](conf.notes_file)
        LOG.info("%s: notes kept by the %s driver", self.manager_name, conf.notes_driver)

    def put_note(self, context: Any, key: str, text: str) -> None:
        assert self.driver is not None
        self.driver.put(key, text)
        self.notifier.info(context, "notes.put", {"key": key, "host": self.host})

    def get_note(self, context: Any, key: str) -> str:
        assert self.driver is not None
        text = self.driver.get(key)
        if text is None:
            raise exception.NoteNotFound(key)
        return text

    def list_notes(self, context: Any, prefix: str | None = None) -> list[str]:
        """2.1 added `prefix`."""
        assert self.driver is not None
        return [key for key in self.driver.keys() if key.startswith(prefix or "")]


class _NotesV1Proxy:
    """The 1.x API, for callers not upgraded yet: each method maps to 2.x."""

    target = messaging.Target(version="1.3")

    def __init__(self, manager: NotesManager) -> None:
        self.manager = manager

    def set_note(self, context: Any, key: str, text: str) -> None:
        self.manager.put_note(context, key, text)

    def get_note(self, context: Any, key: str) -> str:
        return self.manager.get_note(context, key)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace `mgr-supervisor.workers`)."""
    return [("manager:notes", NotesManager.opts)]
