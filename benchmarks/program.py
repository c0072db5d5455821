"""supervisord's benchmark target: a program that reports `ready`, and `cleanup` on SIGTERM.

supervisord execs one per worker and restarts it on SIGHUP, so there is no `reset`.
Run as `python -m benchmarks.program PROBE`.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from benchmarks.report import collect_once_later, report


def main(argv: Sequence[str] | None = None) -> int:
    """Report ready (and, a while later, one full collection), then sleep until SIGTERM."""
    (probe,) = sys.argv[1:] if argv is None else argv

    def stop(signum: int, frame: object) -> None:
        report(probe, "cleanup")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    report(probe, "ready")
    collect_once_later(probe)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
