"""`mgr-supervisor`: every expected failure becomes one line and an exit status."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

from oslo_config import cfg

from supervisor import config, control, logs, opts, reports
from supervisor.arbiter import Arbiter
from supervisor.exits import EXIT_FAILURE, EXIT_OK, config_error

LOG = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """`mgr-supervisor --config-file FILE [--config-dir DIR] [--check-config]`."""
    # A SIGHUP or SIGUSR2 before the arbiter's handlers exist would kill us (their default
    # action): hold them until they do, then they are a reload and a report.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGUSR2})
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with config.warnings_on_stderr():
            conf, specs = config.load(args, conf=cfg.CONF)
        if conf.check_config:
            config.validate_database(conf)
    except config.ConfigError as exc:
        return config_error(str(exc))
    if conf.check_config:
        summary = ", ".join(f"{spec.name} ({spec.workers})" for spec in specs)
        print(f"{opts.PROJECT}: config OK: {len(specs)} manager(s): {summary}")
        return EXIT_OK
    logs.setup(conf, opts.PROJECT)
    reports.warn_unsupported(conf)

    try:
        status = Arbiter(args, conf, specs).run()
    except config.ConfigError as exc:
        return config_error(str(exc))
    except control.ControlError as exc:
        return config_error(f"[supervisor] control_socket: {exc}")
    except Exception:
        LOG.exception("internal error, stopping")
        return EXIT_FAILURE
    # Skip the interpreter's finalization (25-45 ms with our imports): flush the logs and go.
    logging.shutdown()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
