"""A real message broker for the RPC tests: RabbitMQ from `MGR_TEST_TRANSPORT_URL`.

e.g. rabbit://guest:guest@127.0.0.1:5672/ (what `.ci/run` sets). Without it, or with a broker
that does not answer, the RPC tests are skipped; under `CI=true` they fail instead. Every
test has a topic of its own (`unique_topic()`) in an exchange of the same name
(`control_exchange`). Its queues are deleted with their last consumer (`amqp_auto_delete`;
the shared `openstack` exchange cannot be, it exists without it), reply queues expire a
minute after use, and `delete_exchanges()` removes what is left when the test ends, so runs
never meet and leave nothing behind.
"""

from __future__ import annotations

import secrets
import socket
import urllib.parse
from typing import Any

from tests.dbfixtures import unavailable

ENV_URL = "MGR_TEST_TRANSPORT_URL"
CONNECT_TIMEOUT = 3


def broker_url(environ: dict[str, str]) -> str:
    """The broker's URL; skips (fails under CI=true) when unset or not answering."""
    url = environ.get(ENV_URL)
    if not url:
        unavailable(
            f"RPC tests need {ENV_URL}, e.g. rabbit://guest:guest@127.0.0.1:5672/", "RabbitMQ"
        )
    try:
        socket.create_connection(broker_address(url), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        unavailable(f"RabbitMQ at {ENV_URL} does not answer: {exc}", "RabbitMQ")
    return url


def broker_address(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 5672


def through(url: str, port: int) -> str:
    """`url` with its host and port replaced by 127.0.0.1:`port` (a TcpProxy's)."""
    parsed = urllib.parse.urlsplit(url)
    credentials = parsed.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def unique_topic() -> str:
    return f"mgrtest_{secrets.token_hex(4)}"


def rpc_sections(url: str, topic: str) -> dict[str, dict[str, object]]:
    """The config a supervisor under test needs for RPC on `url`: `topic`'s own exchange,
    deleted with its queues after their last consumer, and quick reconnects."""
    return {
        "default": {"transport_url": url, "control_exchange": topic},
        "oslo_messaging_rabbit": {
            "amqp_auto_delete": "true",
            "rabbit_transient_queues_ttl": 60,
            "rabbit_retry_interval": 1,
            "rabbit_interval_max": 1,
            "kombu_reconnect_delay": 0.1,
        },
    }


_transports: dict[str, Any] = {}


def plain_client(url: str, topic: str, server: str | None = None, timeout: float = 15) -> Any:
    """An oslo.messaging `RPCClient` written by someone else: only topic (in its exchange),
    method and arguments; none of our code (no serializer, a dict for the context)."""
    import oslo_messaging
    from oslo_config import cfg

    if url not in _transports:
        # As the workers declare them: the test's exchanges are deleted after use.
        from supervisor import rpc

        cfg.CONF.register_opts(rpc.rabbit_opts(), group=rpc.RABBIT_GROUP)
        cfg.CONF.set_override("amqp_auto_delete", True, group=rpc.RABBIT_GROUP)
        cfg.CONF.set_override("rabbit_transient_queues_ttl", 60, group=rpc.RABBIT_GROUP)
        _transports[url] = oslo_messaging.get_rpc_transport(cfg.CONF, url=url)
    target = oslo_messaging.Target(exchange=topic, topic=topic, server=server)
    return oslo_messaging.get_rpc_client(_transports[url], target, timeout=timeout)


def kombu_connection(url: str) -> Any:
    """A kombu connection to the broker of `url` (kombu's amqp:// for oslo's rabbit://),
    for what a test does below oslo.messaging."""
    import kombu

    return kombu.Connection("amqp://" + url.partition("://")[2], connect_timeout=CONNECT_TIMEOUT)


def delete_exchanges(url: str, exchange: str, topics: list[str]) -> None:
    """A test's exchanges: an auto-delete exchange that never had a binding stays."""

    with kombu_connection(url) as connection:
        channel = connection.channel()
        for name in (exchange, *(f"{topic}_fanout" for topic in topics)):
            channel.exchange_delete(name)
