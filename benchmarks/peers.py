"""The peers' benchmark targets: one trivial service on raw cotyledon and on oslo.service.

Run as `python -m benchmarks.peers KIND WORKERS PROBE`, KIND one of `cotyledon`,
`oslo-eventlet`, `oslo-threading`. Like BenchManager's hooks, each worker reports `ready` when
its service starts, `reset` when it is reloaded in place and `cleanup` when it is stopped,
and runs one full collection `COLLECT_DELAY_SECONDS` after `ready` (`collected`).
Imports happen inside each runner: eventlet must patch before anything else loads, and
oslo.service picks its backend once, when `oslo_service.service` is first imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from benchmarks.report import collect_once_later, report


def run_cotyledon(workers: int, probe: str) -> None:
    """A raw `cotyledon.ServiceManager` with its defaults (10 ms between forks)."""
    import cotyledon

    class BenchService(cotyledon.Service):
        def run(self) -> None:
            report(probe, "ready")
            collect_once_later(probe)

        def reload(self) -> None:
            report(probe, "reset")

        def terminate(self) -> None:
            report(probe, "cleanup")

    manager = cotyledon.ServiceManager()
    manager.add(BenchService, workers=workers)
    manager.run()


def run_oslo(workers: int, probe: str, threading_backend: bool) -> None:
    """oslo.service's `ProcessLauncher` with its defaults (restart_method='reload')."""
    if threading_backend:
        from oslo_service import backend

        backend.init_backend(backend.BackendType.THREADING)
    else:
        import eventlet

        eventlet.monkey_patch()
    from oslo_config import cfg
    from oslo_service import service

    class BenchService(service.Service):
        def start(self) -> None:
            super().start()
            report(probe, "ready")
            collect_once_later(probe)

        def reset(self) -> None:
            report(probe, "reset")

        def stop(self, graceful: bool = False) -> None:
            report(probe, "cleanup")
            super().stop(graceful)

    conf = cfg.ConfigOpts()
    conf([], project="bench")
    launcher = service.ProcessLauncher(conf)
    launcher.launch_service(BenchService(), workers=workers)
    launcher.wait()


def main(argv: Sequence[str] | None = None) -> int:
    kind, workers, probe = sys.argv[1:] if argv is None else argv
    if kind == "cotyledon":
        run_cotyledon(int(workers), probe)
    elif kind in ("oslo-eventlet", "oslo-threading"):
        run_oslo(int(workers), probe, threading_backend=kind == "oslo-threading")
    else:
        raise SystemExit(f"unknown peer {kind!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
