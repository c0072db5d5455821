"""Fixtures for the unit tests of the parent's decisions and views: a table of records."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from supervisor import config, health
from supervisor.policy import RestartPolicy, RestartTracker
from supervisor.table import ManagerRecord, Table, WorkerRecord

POLICY = RestartPolicy(start_secs=1, start_retries=2, backoff_initial=1, backoff_max=4)


class Alpha:
    """A manager class, for specs."""


class Beta:
    """Another."""


def spec(name: str = "alpha", workers: int = 1, cls: type = Alpha) -> config.ManagerSpec:
    return config.ManagerSpec(name, cls, workers, topic=name, policy=POLICY)


class Workers:
    """Builds the table's records with real beacons (shared memory), closed at the end."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._pids = itertools.count(100)
        self._beacons: list[health.Beacon] = []

    def add(self, name: str, worker_id: int, forked_at: float = 0.0, ready: bool = False):
        beacon = health.Beacon()
        self._beacons.append(beacon)
        if ready:
            beacon.mark_ready("idle")
        record = WorkerRecord(name, worker_id, next(self._pids), beacon, forked_at)
        self.table.workers[record.pid] = record
        return record

    def close(self) -> None:
        for beacon in self._beacons:
            beacon.close()


@pytest.fixture
def table() -> Table:
    table = Table()
    for name, count in (("alpha", 2), ("beta", 1)):
        table.managers[name] = ManagerRecord(spec(name, count), RestartTracker(POLICY))
    return table


@pytest.fixture
def workers(table: Table) -> Iterator[Workers]:
    made = Workers(table)
    yield made
    made.close()
