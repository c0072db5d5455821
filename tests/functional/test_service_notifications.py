"""The supervisor's own `service.update` notifications on a real RabbitMQ: one per change
of a record's state, so a fleet's listeners see what `mgr-supervisorctl services` shows."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests import rpcfixtures
from tests.functional.conftest import Supervisor, ctl

HOST = "node-e"


class Listener:
    """The notifications of one topic, read from its `.info` queue as they come."""

    def __init__(self, broker: str, topic: str) -> None:
        self.queue = f"{topic}.info"
        self._connection = rpcfixtures.kombu_connection(broker)
        self._channel = self._connection.channel()
        # Declared before anything is sent, so none is published to no queue.
        self._channel.queue_declare(self.queue, durable=False, auto_delete=False)
        self.bodies: list[dict] = []

    def events(self) -> list[str]:
        while (message := self._channel.basic_get(queue=self.queue, no_ack=True)) is not None:
            self.bodies.append(json.loads(json.loads(message.body)["oslo.message"]))
        return [b["payload"]["event"] for b in self.bodies if b["event_type"] == "service.update"]

    def close(self) -> None:
        self._channel.queue_delete(self.queue)
        self._connection.close()


@pytest.fixture
def listener(broker: str, topic: str) -> Iterator[Listener]:
    made = Listener(broker, topic)
    yield made
    made.close()


def test_each_change_of_a_record_is_notified(supervisor: Supervisor, broker, topic, listener):
    supervisor.configure(
        {"alpha": {}},
        default={"host": HOST, "report_interval": 1, "service_down_time": 2},
        extra={
            "oslo_messaging_notifications": {
                "driver": "messagingv2",
                "topics": topic,
                "transport_url": broker,
            }
        },
    )
    supervisor.start()

    def seen(*expected: str) -> bool:
        return listener.events() == list(expected)

    supervisor.wait_for(lambda: seen("up"), what="up")
    for verb, reason in (("disable", ["--reason", "maintenance"]), ("enable", [])):
        result = ctl(supervisor, "services", verb, HOST, "alpha", *reason)
        assert result.returncode == 0, result.stderr
    supervisor.wait_for(lambda: seen("up", "disabled", "enabled"), what="disabled, enabled")
    (pid,) = supervisor.worker_titles().values()
    os.kill(pid, signal.SIGSTOP)  # no more reports
    try:
        supervisor.wait_for(lambda: seen("up", "disabled", "enabled", "down"), what="down")
    finally:
        os.kill(pid, signal.SIGCONT)
    supervisor.wait_for(lambda: listener.events()[-1] == "up", what="up again")
    started = time.monotonic()
    assert supervisor.stop() == 0
    supervisor.wait_for(lambda: listener.events()[-1] == "stopped", what="stopped")
    assert time.monotonic() - started < 10

    assert listener.events() == ["up", "disabled", "enabled", "down", "up", "stopped"]
    first, disabled, *_, last = (b for b in listener.bodies)
    assert first["publisher_id"] == f"mgr-supervisor.{HOST}"
    assert first["payload"]["state"] == "up" and first["payload"]["pid"] == pid
    assert (disabled["payload"]["disabled"], disabled["payload"]["disabled_reason"]) == (
        True,
        "maintenance",
    )
    assert last["payload"]["state"] == "stopped"
    assert {b["payload"]["manager"] for b in listener.bodies} == {"alpha"}
