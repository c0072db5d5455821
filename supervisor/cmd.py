"""`mgr-supervisor`: every expected failure becomes one line and an exit status."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log as oslo_log

from supervisor import config, control
from supervisor.arbiter import Arbiter

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NOT_RUNNING = 3  # as systemctl and LSB status scripts say "not running"
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h


def main(argv: Sequence[str] | None = None) -> int:
    """`mgr-supervisor --config-file FILE [--config-dir DIR] [--check-config]`."""
    # A SIGHUP before the arbiter's handlers exist would kill us (its default action):
    # hold it until they do, then it is handled as a reload.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        conf, specs = config.load(args, conf=cfg.CONF)
        if conf.check_config:
            config.validate_database(conf)
    except config.ConfigError as exc:
        return config_error(str(exc))
    if conf.check_config:
        summary = ", ".join(f"{spec.name} ({spec.workers})" for spec in specs)
        print(f"{config.PROJECT}: config OK: {len(specs)} manager(s): {summary}")
        return EXIT_OK
    # alembic says about ten INFO lines whenever it creates or upgrades the schema.
    oslo_log.set_defaults(default_log_levels=[*oslo_log.get_default_log_levels(), "alembic=WARN"])
    oslo_log.setup(conf, config.PROJECT)
    # `kill -USR2` prints every thread's stack to stderr, in the parent and in any worker.
    faulthandler.register(signal.SIGUSR2, file=sys.stderr, all_threads=True)

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


def config_error(message: str, program: str = config.PROJECT) -> int:
    """One line on stderr, and the exit status that says "configuration error"."""
    print(f"{program}: config error: {message}", file=sys.stderr)
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
