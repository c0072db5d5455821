"""A manager module whose import breaks the parent's SIGHUP handler, on purpose.

The parent imports manager classes while it validates the config, so importing this module
there replaces `Arbiter.handle_hup` with one that raises: the next SIGHUP makes a pass of
the parent's loop fail with an exception nobody expected.
"""

from __future__ import annotations

from supervisor.arbiter import Arbiter
from tests.functional.managers import EventManager


def _broken_handle_hup(self: Arbiter) -> None:
    raise RuntimeError("handle_hup sabotaged on purpose")


Arbiter.handle_hup = _broken_handle_hup  # type: ignore[method-assign]


class SabotagedManager(EventManager):
    """An EventManager; only importing its module matters."""
