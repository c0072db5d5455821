"""A few turns of a selector loop, as the arbiter's loop turns, for the servers' unit tests."""

from __future__ import annotations

import selectors


def pump(selector: selectors.BaseSelector) -> None:
    """Dispatch what the selector sees until nothing is left (at most 20 turns)."""
    for _ in range(20):
        events = selector.select(0.01)
        if not events:
            return
        for key, mask in events:
            key.data(mask)
