"""Worker health as the parent sees it: a shared-memory beacon per worker, and the checks.

The worker writes its phase into an anonymous shared mapping when the phase changes (a hook,
a periodic task, idle until some time); nothing is sent per tick and the parent reads it
without a system call. The parent only wakes up to check when a manager sets a limit.
"""

from __future__ import annotations

import dataclasses
import mmap
import struct
import threading
import time

_LAYOUT = struct.Struct("<dd?B62s")  # phase_since, idle_until, ready, database, phase name
_DATABASE_OFFSET = 17
_PHASE_BYTES = 62
DATABASE_STATES = ("unknown", "ok", "unreachable")
# After it, written by the worker's RPC threads: the consumers' state, then the calls and casts
# served (returned), failed (raised) and rejected (by the dispatcher: no such method, a version
# the endpoints do not support, arguments the method does not take).
_RPC_LAYOUT = struct.Struct("<BQQQ")
RPC_OUTCOMES = ("served", "failed", "rejected")
_RPC_OFFSET = _LAYOUT.size
RPC_STATES = ("off", "connecting", "consuming", "reconnecting", "stopped")
# The phase of a worker whose RPC consumers wait for the broker: not a hang, not a failed start.
WAITING_FOR_BROKER = "waiting for the message broker"


@dataclasses.dataclass(frozen=True)
class HealthLimits:
    """Per-manager limits; 0 means off."""

    start_timeout: float = 0.0
    heartbeat_timeout: float = 0.0
    max_rss_mb: int = 0

    @property
    def any(self) -> bool:
        return bool(self.start_timeout or self.heartbeat_timeout or self.max_rss_mb)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    phase: str
    phase_since: float
    idle_until: float
    ready: bool
    database: str = "unknown"  # the recorder's beacon only: as its last database call found it
    rpc: str = "off"
    rpc_served: int = 0
    rpc_failed: int = 0
    rpc_rejected: int = 0


class Beacon:
    """One worker's phase and liveness, shared between the parent and that worker."""

    def __init__(self) -> None:
        # MAP_SHARED: survives the fork, both see it.
        self._map = mmap.mmap(-1, _LAYOUT.size + _RPC_LAYOUT.size)
        self._ready = False
        self._database = 0
        self._rpc = [0, 0, 0, 0]  # state, then RPC_OUTCOMES: this process's own copy
        self._rpc_lock = threading.Lock()  # the RPC executor's threads count at once
        self.set_phase("starting")

    def set_phase(self, phase: str, idle_until: float = 0.0) -> None:
        """Written by the worker only; `idle_until` promises the next phase change."""
        encoded = phase.encode("utf-8", "replace")[:_PHASE_BYTES]
        now = time.monotonic()
        _LAYOUT.pack_into(self._map, 0, now, idle_until, self._ready, self._database, encoded)

    def set_database_ok(self, ok: bool) -> None:
        """Written by the recorder into its own beacon: one byte, not the phase."""
        self._database = 1 if ok else 2
        self._map[_DATABASE_OFFSET] = self._database

    def set_rpc_state(self, state: str) -> None:
        with self._rpc_lock:
            self._rpc[0] = RPC_STATES.index(state)
            _RPC_LAYOUT.pack_into(self._map, _RPC_OFFSET, *self._rpc)

    def count_rpc(self, outcome: str) -> None:
        """One call or cast done, by its outcome (one of RPC_OUTCOMES)."""
        with self._rpc_lock:
            self._rpc[1 + RPC_OUTCOMES.index(outcome)] += 1
            _RPC_LAYOUT.pack_into(self._map, _RPC_OFFSET, *self._rpc)

    def mark_ready(self, phase: str) -> None:
        self._ready = True
        self.set_phase(phase)

    def read(self) -> Snapshot:
        since, idle_until, ready, database, raw = _LAYOUT.unpack_from(self._map, 0)
        rpc, served, failed, rejected = _RPC_LAYOUT.unpack_from(self._map, _RPC_OFFSET)
        phase = raw.rstrip(b"\0").decode("utf-8", "replace")
        return Snapshot(
            phase,
            since,
            idle_until,
            ready,
            DATABASE_STATES[database % len(DATABASE_STATES)],
            RPC_STATES[rpc % len(RPC_STATES)],
            served,
            failed,
            rejected,
        )

    def close(self) -> None:
        self._map.close()


def stuck_for(snapshot: Snapshot, now: float) -> float:
    """How long past its promise the worker is: in a phase, or idle past its wake-up time."""
    if snapshot.idle_until:
        return now - snapshot.idle_until
    return now - snapshot.phase_since


def check(limits: HealthLimits, snapshot: Snapshot, age: float, now: float) -> str | None:
    """The reason a worker must be recycled for start or heartbeat limits, or None."""
    if not snapshot.ready:
        # Waiting for the broker is no failed start: oslo.messaging retries, capped.
        waiting = snapshot.phase == WAITING_FOR_BROKER
        if limits.start_timeout and age > limits.start_timeout and not waiting:
            return (
                f"not ready {age:.1f}s after start (start_timeout={limits.start_timeout:g}s), "
                f"in {snapshot.phase} for {now - snapshot.phase_since:.1f}s"
            )
        return None
    if limits.heartbeat_timeout and snapshot.phase not in ("stopping", "cleanup_host"):
        late = stuck_for(snapshot, now)
        if late > limits.heartbeat_timeout:
            return (
                f"no heartbeat for {late:.1f}s (heartbeat_timeout={limits.heartbeat_timeout:g}s), "
                f"stuck in {snapshot.phase} for {now - snapshot.phase_since:.1f}s"
            )
    return None
