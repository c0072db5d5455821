"""Console scripts. `main()` turns every expected failure into one line and an exit status."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log as oslo_log

from supervisor import config

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h


def main(argv: Sequence[str] | None = None) -> int:
    """`mgr-supervisor --config-file FILE [--config-dir DIR] [--check-config]`."""
    # A SIGHUP before the arbiter's handlers exist would kill us (its default action):
    # hold it until they do, then it is handled as a reload.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        conf, specs = config.load(args, conf=cfg.CONF)
    except config.ConfigError as exc:
        print(f"{config.PROJECT}: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if conf.check_config:
        summary = ", ".join(f"{spec.name} ({spec.workers})" for spec in specs)
        print(f"{config.PROJECT}: config OK: {len(specs)} manager(s): {summary}")
        return EXIT_OK
    oslo_log.setup(conf, config.PROJECT)

    from supervisor.arbiter import Arbiter

    try:
        arbiter = Arbiter(args, conf, specs)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        arbiter.run()
    except SystemExit:
        raise
    except Exception:
        LOG.exception("internal error, stopping")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
