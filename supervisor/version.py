"""`--version` for the three programs: the installed package's version, read only when asked.

The version is the one setuptools-scm wrote into the package metadata from the git tag.
Reading it scans `sys.path` for the distribution (milliseconds), so a command line that
asks neither for `--version` nor for `--help` (which lists `--version`) never pays for it,
the supervisor's start path included.
"""

from __future__ import annotations

from collections.abc import Sequence

DISTRIBUTION = "mgr-supervisor"


def version() -> str:
    """The installed distribution's version; "unknown" when run from a tree never installed."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def for_command_line(program: str, argv: Sequence[str]) -> str | None:
    """What oslo.config's `--version` prints (`<program> <version>`), or None if argv
    cannot need it; oslo.config adds `--version` only when it is given a version."""
    if not any(_asks_for_version_or_help(arg) for arg in argv):
        return None
    return f"{program} {version()}"


def _asks_for_version_or_help(arg: str) -> bool:
    # argparse takes any unambiguous prefix of a long option: `--vers`, `--he`.
    return arg == "-h" or (
        len(arg) > 2 and ("--version".startswith(arg) or "--help".startswith(arg))
    )
