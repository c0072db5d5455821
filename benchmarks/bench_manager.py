"""mgr-supervisor's benchmark target: a Manager whose hooks only report to the harness."""

from __future__ import annotations

from oslo_config import cfg

from benchmarks.report import collect_once_later, report
from supervisor.manager import Manager


class BenchManager(Manager):
    """Ready after `post_start_hook`, reports `reset` and `cleanup`; does nothing else
    but the one full collection every target's worker runs after `ready`."""

    opts = [
        cfg.StrOpt("probe", required=True, help="Address of the harness's probe, 127.0.0.1:PORT."),
    ]

    def post_start_hook(self) -> None:
        report(self.configuration.probe, "ready")
        collect_once_later(self.configuration.probe)

    def reset(self) -> None:
        report(self.configuration.probe, "reset")

    def cleanup_host(self) -> None:
        report(self.configuration.probe, "cleanup")
