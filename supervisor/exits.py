"""The exit statuses of the three programs, and the one-line configuration error.

Their own module so that `ctl`, `manage` and `cmd` share them without importing each other
(and `cmd`, the arbiter with it).
"""

from __future__ import annotations

import sys

from supervisor.opts import PROJECT

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # as argparse says it
EXIT_NOT_RUNNING = 3  # as systemctl and LSB status scripts say "not running"
EXIT_DENIED = 4  # LSB's "insufficient privilege": the caller may not ask
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h


def config_error(message: str, program: str = PROJECT) -> int:
    """One line on stderr, and the exit status that says "configuration error"."""
    print(f"{program}: config error: {message}", file=sys.stderr)
    return EXIT_CONFIG
