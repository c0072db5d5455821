"""The restart policy (docs/architecture.md, "Restart policy") as pure logic: backoff, FATAL.

Kept free of processes and clocks so it can be unit-tested exhaustively; the arbiter feeds
it exits and asks it when a manager may start again.
"""

from __future__ import annotations

import dataclasses
import enum


class State(enum.Enum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    FATAL = "FATAL"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"  # stopped with `mgr-supervisorctl stop NAME`, until started again


# `start_retries` that never gives up: supervisord's most asked-for change, for managers
# that wait for a database or a broker that comes up later.
RETRY_FOREVER = -1


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    start_secs: float = 1.0
    start_retries: int = 5  # RETRY_FOREVER: never FATAL
    backoff_initial: float = 1.0
    backoff_max: float = 60.0


@dataclasses.dataclass
class RestartTracker:
    """Counts one manager's failed starts, across its workers, and says what comes next."""

    policy: RestartPolicy
    in_a_row: int = 0  # failed starts in a row: the backoff and FATAL count them
    fatal: bool = False
    not_before: float = 0.0

    def record_exit(self, now: float, failed_start: bool) -> None:
        """A worker ended without the supervisor asking; decide the next start time."""
        if not failed_start:
            self.record_settled()
            return
        self.in_a_row += 1
        retries = self.policy.start_retries
        if retries != RETRY_FOREVER and self.in_a_row > retries:
            self.fatal = True
            return
        self.not_before = now + self.delay()

    def record_settled(self) -> None:
        """A worker lived past start_secs: the manager starts with a clean slate."""
        self.in_a_row = 0
        self.not_before = 0.0

    def delay(self) -> float:
        """Backoff after the current run of failed starts: initial, doubling, capped."""
        if self.in_a_row == 0:
            return 0.0
        exponent = min(self.in_a_row - 1, 62)
        return min(self.policy.backoff_initial * 2**exponent, self.policy.backoff_max)

    def may_start(self, now: float) -> bool:
        return not self.fatal and now >= self.not_before

    def clear(self) -> None:
        """A reload or an explicit restart forgives everything."""
        self.in_a_row = 0
        self.fatal = False
        self.not_before = 0.0
