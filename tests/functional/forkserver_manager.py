"""A manager module whose import makes forkserver the default start method, as on 3.14.

Python 3.14 made forkserver multiprocessing's default on Linux; importing this module in the
parent (which imports manager classes while it validates the config) does the same on any
version, so workers must start without multiprocessing's start methods.
"""

from __future__ import annotations

import multiprocessing

from tests.functional.managers import EventManager

multiprocessing.set_start_method("forkserver", force=True)


class ForkserverManager(EventManager):
    """An EventManager; only importing its module matters."""
