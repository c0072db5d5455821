"""service.update notifications: one per change of a record's state, sent off the loop."""

from __future__ import annotations

import datetime
import threading

from supervisor import notifications
from supervisor.db.api import service_liveness

DOWN_TIME = 3.0


class Notifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.each = threading.Semaphore(0)

    def info(self, ctxt: object, event_type: str, payload: dict) -> None:
        self.sent.append((event_type, payload))
        self.each.release()

    def events(self, count: int) -> list[str]:
        for _ in range(count):
            assert self.each.acquire(timeout=5), f"{count} notifications expected: {self.sent}"
        return [payload["event"] for _, payload in self.sent]


class Row(dict):
    """A record as the db api returns it: `items()` and keys."""


def row(seconds_ago: float = 0.0, **fields: object) -> Row:
    seen = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    values = {
        "id": 1,
        "host": "node-a",
        "manager": "alpha",
        "worker_id": 0,
        "pid": 42,
        "stopped": False,
        "disabled": False,
        "disabled_reason": None,
        "report_count": 3,
        "last_seen_up": seen - datetime.timedelta(seconds=seconds_ago),
    }
    return Row(values, **fields)


def test_a_row_is_announced_when_its_state_changes_and_only_then():
    notifier = Notifier()
    events = notifications.ServiceEvents(notifier, DOWN_TIME, service_liveness)
    events.written([row()])
    events.written([row()])  # a report: still up
    events.sweep()
    assert events.due() is not None and 2.9 < events.due() <= DOWN_TIME + 0.01
    events.written([row(seconds_ago=DOWN_TIME + 1)])  # a report written long ago
    events.written([row()])
    events.stopped([1, 7])  # 7: a row it never wrote
    events.close(timeout=5)
    assert notifier.events(4) == ["up", "down", "up", "stopped"]
    event_type, payload = notifier.sent[-1]
    assert event_type == "service.update"
    assert payload["state"] == "stopped" and payload["last_seen_up"].endswith("Z")
    assert (payload["host"], payload["manager"], payload["worker_id"]) == ("node-a", "alpha", 0)


def test_a_row_that_stops_reporting_is_announced_down_once():
    notifier = Notifier()
    events = notifications.ServiceEvents(notifier, 0.2, service_liveness)
    events.written([row()])
    assert notifier.events(1) == ["up"]
    threading.Event().wait(0.3)
    events.sweep()
    events.sweep()
    assert notifier.events(1) == ["up", "down"]
    assert events.due() is None, "nothing is up any more"
    events.close(timeout=5)


def test_a_broker_that_takes_nothing_costs_notifications_not_the_loop(caplog):
    class Stuck(Notifier):
        def info(self, ctxt: object, event_type: str, payload: dict) -> None:
            threading.Event().wait()

    events = notifications.ServiceEvents(Stuck(), DOWN_TIME, service_liveness)
    for row_id in range(notifications.QUEUE_SIZE + 5):
        events.written([row(id=row_id)])  # never waits
    events.close(timeout=0.1)
    assert caplog.text.count("dropping") == 1
