"""Entry point for oslo-config-generator (namespace `mgr-supervisor.workers`)."""

from __future__ import annotations

from oslo_config import cfg

from workers import demo, resources
from workers.notes import manager as notes


def list_opts() -> list[tuple[str | cfg.OptGroup, list[cfg.Opt]]]:
    """The own options of every manager shipped in `workers`, one sample section each."""
    return demo.list_opts() + resources.list_opts() + notes.list_opts()
