"""RPC consumers per manager, against a real RabbitMQ (`MGR_TEST_TRANSPORT_URL`).

Callers are what an operator or another service would use: a plain oslo.messaging
`RPCClient` (none of our code) and `mgr-supervisorctl call`. Outages go through a TCP proxy
the test owns, never through the machine's broker.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import time

import pytest

from tests import rpcfixtures
from tests.functional.conftest import TESTS_DIR, Supervisor, at_once, ctl
from tests.tcpproxy import TcpProxy

RPC_MANAGER = "tests.functional.managers.RpcManager"
GROUP_NOTIFICATIONS = "oslo_messaging_notifications"


@pytest.fixture
def proxied_broker(broker, request) -> tuple[TcpProxy, str]:
    """The broker reached through a proxy the test can cut."""
    proxy = TcpProxy(rpcfixtures.broker_address(broker))
    request.addfinalizer(proxy.close)
    return proxy, rpcfixtures.through(broker, proxy.port)


def configure(
    supervisor: Supervisor,
    url: str,
    topic: str,
    workers: int = 2,
    host: str | None = None,
    **options: object,
) -> None:
    sections = rpcfixtures.rpc_sections(url, topic)
    default = {**sections["default"], **({"host": host} if host else {})}
    supervisor.configure(
        {"alpha": {"manager": RPC_MANAGER, "workers": workers, "topic": topic, **options}},
        default=default,
        oslo_messaging_rabbit=sections["oslo_messaging_rabbit"],
    )


def ready(supervisor: Supervisor, workers: int = 2, timeout: float = 20) -> list[int]:
    supervisor.wait_for(
        lambda: supervisor.count("post_start_hook") >= workers, timeout=timeout, what="ready"
    )
    return sorted(supervisor.pids_with("post_start_hook"))


def ctl_all(supervisor: Supervisor, *calls: tuple[str, ...]) -> list:
    """Several independent `ctl(supervisor, *call)` at once (each is a new interpreter that
    imports oslo.messaging and connects): their results, in the order given."""
    return at_once(*(functools.partial(ctl, supervisor, *args) for args in calls))


def run_caller(script: str, *args: str) -> dict:
    """Run `script` as another service's process would (a fresh interpreter, the tests'
    modules importable); the JSON object its last line prints."""
    import subprocess

    caller = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
    )
    assert caller.returncode == 0, caller.stderr[-3000:]
    return json.loads(caller.stdout.splitlines()[-1])


def status(supervisor: Supervisor) -> dict:
    """`ctl status --json`; no managers while the control socket is not up yet (exit 3)."""
    result = ctl(supervisor, "status", "--json")
    return json.loads(result.stdout) if result.stdout.strip() else {"managers": []}


def rpc_events(supervisor: Supervisor, *words: str) -> list[int]:
    """The pids that recorded `rpc <words>`."""
    return [int(e[0]) for e in supervisor.events() if e[1:] == ["rpc", *words]]


def test_consumers_run_before_post_start_hook(supervisor, broker, topic):
    """post_start_hook() calls its own worker (the only consumer) over RPC: answered, so the
    consumers ran before it, after pre_start_hook()."""
    configure(supervisor, broker, topic, workers=1, call_self_in_post_start="true")
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    words = [e[1:] for e in supervisor.events()]
    assert words.index(["pre_start_hook"]) < words.index(["rpc", "echo"])
    assert ["post_start_hook-self-call", str(pid)] in words


def test_a_plain_client_calls_casts_and_fans_out(supervisor, broker, topic):
    """Calls shared between the workers, a cast to one, a fanout cast to each; the method
    gets an oslo.context RequestContext; status counts what each worker served."""
    configure(supervisor, broker, topic)
    supervisor.start()
    pids = ready(supervisor)

    client = rpcfixtures.plain_client(broker, topic)
    answers = [client.call({}, "echo", value=i) for i in range(20)]
    assert [a["value"] for a in answers] == list(range(20))
    assert {a["context"] for a in answers} == {"RequestContext"}
    assert {a["pid"] for a in answers} == set(pids), "calls are shared between the workers"

    client.cast({}, "note", word="cast")
    supervisor.wait_for(lambda: len(rpc_events(supervisor, "note", "cast")) == 1, what="cast")
    client.prepare(fanout=True).cast({}, "note", word="fanout")
    supervisor.wait_for(
        lambda: sorted(rpc_events(supervisor, "note", "fanout")) == pids, what="fanout"
    )
    time.sleep(0.5)  # a second delivery of the cast would show by now
    assert len(rpc_events(supervisor, "note", "cast")) == 1

    workers = status(supervisor)["managers"][0]["workers"]
    assert {w["rpc"] for w in workers} == {"consuming"}
    # 20 calls, 1 cast, 2 fanout deliveries; none failed.
    assert sum(w["rpc_served"] for w in workers) == 23
    assert sum(w["rpc_failed"] for w in workers) == 0


def test_mgr_supervisorctl_call(supervisor, broker, topic):
    configure(supervisor, broker, topic, host="node-a")
    supervisor.start()
    pids = ready(supervisor)

    result, to_host, failed, hook, late, nobody, cast, fanout, bad = ctl_all(
        supervisor,
        ("call", "alpha", "echo", 'value={"a": [1, 2]}'),
        ("call", "alpha", "echo", "--host", "node-a"),
        ("call", "alpha", "fail"),
        ("call", "alpha", "cleanup_host"),
        ("call", "alpha", "slow", "seconds=2", "--timeout", "1"),
        ("call", "alpha", "echo", "--host", "node-z", "--timeout", "1"),
        ("call", "alpha", "note", 'word="by-ctl"', "--cast"),
        ("call", "alpha", "note", 'word="to-all"', "--fanout"),
        ("call", "alpha", "echo", "value=not-json"),
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["value"] == {"a": [1, 2]} and answer["pid"] in pids
    assert answer["request_id"].startswith("req-")
    assert to_host.returncode == 0, to_host.stderr

    assert failed.returncode == 1
    assert failed.stderr == (
        "mgr-supervisorctl: call alpha fail: ValueError: failed on purpose\n"
    ), failed.stderr
    assert hook.returncode == 1 and "NoSuchMethod" in hook.stderr, hook.stderr
    assert supervisor.count("cleanup_host") == 0, "a lifecycle hook is not an RPC method"

    assert late.returncode == 3 and "no answer within 1.0s" in late.stderr, late.stderr
    assert nobody.returncode == 3, nobody.stderr

    assert (cast.returncode, cast.stdout) == (0, ""), cast.stderr
    assert fanout.returncode == 0, fanout.stderr
    supervisor.wait_for(
        lambda: sorted(rpc_events(supervisor, "note", "to-all")) == pids, what="fanout"
    )
    assert len(rpc_events(supervisor, "note", "by-ctl")) == 1

    assert bad.returncode == 2 and "argument 'value=not-json'" in bad.stderr


def test_rpc_exposes_only_the_managers_own_methods(supervisor, broker, topic):
    """Every other name on the worker's manager answers NoSuchMethod and changes nothing:
    `conf` (cfg.CONF, which a call would clear), `set_periodic_spacing`, the hooks, the
    periodic task. The worker still takes a reload afterwards."""
    configure(supervisor, broker, topic, workers=1, label="first")
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    client = rpcfixtures.plain_client(broker, topic, timeout=5)
    own = {"announce", "echo", "fail", "names", "note", "quick", "slow"}  # RpcManager's
    refused = sorted(set(client.call({}, "names")) - own)
    assert {"conf", "set_periodic_spacing", "init_host", "tick", "reset"} <= set(refused)
    ticks = supervisor.count("tick")
    for name in refused:
        with pytest.raises(Exception, match="does not support RPC method"):
            client.call({}, name)
    assert supervisor.count("tick") <= ticks + 3, "ticks run on their own, about 1 a second"
    with pytest.raises(Exception, match="unexpected keyword argument 'colour'"):
        client.call({}, "echo", colour="red")
    (alpha,) = status(supervisor)["managers"]
    counts = (alpha["rpc_served"], alpha["rpc_failed"], alpha["rpc_rejected"])
    assert counts == (1, 0, len(refused) + 1), "names served; no failure; every refusal"
    assert [e[1] for e in supervisor.events() if e[1] in ("reset", "init_host")] == ["init_host"]
    configure(supervisor, broker, topic, workers=1, label="second")
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(
        lambda: [str(pid), "reset", "second"] in supervisor.events(), what="reset on the new config"
    )
    assert client.call({}, "echo", value="after")["pid"] == pid
    assert "changed after the supervisor validated" not in supervisor.log()


def test_mgr_supervisorctl_call_reaches_a_versioned_manager(supervisor, broker, topic):
    """The call's version defaults to the manager class's target.version; --version,
    --namespace and --server (oslo.messaging's word for --host) as a caller needs them."""
    configure(
        supervisor,
        broker,
        topic,
        workers=1,
        host="node-v",
        manager="tests.functional.versioned.VersionedManager",
    )
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    answer, older, newer, extra, missing, ping = ctl_all(
        supervisor,
        ("call", "alpha", "echo", "value=1"),
        ("call", "alpha", "echo", "--version", "6.0", "--server", "node-v"),
        ("call", "alpha", "echo", "--version", "7.0"),
        ("call", "alpha", "extra_echo", "value=2", "--namespace", "extra"),
        ("call", "alpha", "extra_echo", "--version", "6.2"),
        # nova's base API, as openstack-helm's probe calls it: on every worker.
        ("call", "alpha", "ping", 'arg="probe"', "--namespace", "baseapi"),
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["pid"] == pid
    assert older.returncode == 0, older.stderr
    assert newer.returncode == 1 and "UnsupportedVersion" in newer.stderr, newer.stderr
    assert extra.returncode == 0, extra.stderr
    assert json.loads(extra.stdout) == {"extra": 2}
    assert missing.returncode == 1 and "NoSuchMethod" in missing.stderr, missing.stderr
    assert ping.returncode == 0, ping.stderr
    assert json.loads(ping.stdout) == {"service": "alpha", "arg": "probe"}


# Another service's process, as nova's services make their clients: oslo's global config
# (oslo.messaging registers some options only there), the transport made once and reused.
NOVA_STYLE_CALLER = """\
import json, sys
from oslo_config import cfg
from supervisor import config, rpc
from tests.functional import versioned

config_file, topic = sys.argv[1:]
config.register_static_opts(cfg.CONF)
cfg.CONF(["--config-file", config_file], project="mgr-supervisor-caller")
seen = {}
cfg.CONF.set_override("allowed_rpc_exception_modules", [versioned.__name__])
transport = rpc.new_transport(cfg.CONF)
client = rpc.get_client(topic, version="6.0", transport=transport).prepare(timeout=10)
try:
    client.call(None, "find_instance", uuid="abc")
except Exception as exc:
    seen["typed"] = [isinstance(exc, versioned.InstanceNotFound), str(exc).splitlines()[0]]
cfg.CONF.register_opt(cfg.StrOpt(topic), group=rpc.UPGRADE_LEVELS_GROUP)
cfg.CONF.set_override(topic, "6.1", group=rpc.UPGRADE_LEVELS_GROUP)
capped = rpc.get_client(topic, transport=transport)
seen["can_send"] = [capped.can_send_version("6.1"), capped.can_send_version("6.2")]
seen["capped_call"] = capped.prepare(version="6.1", timeout=10).call(None, "echo", value=3)["value"]
try:
    capped.prepare(version="6.2").call(None, "echo")
except Exception as exc:
    seen["over_cap"] = type(exc).__name__
cfg.CONF.clear_override("allowed_rpc_exception_modules")
untyped = rpc.get_client(topic, version="6.0", transport=rpc.new_transport(cfg.CONF))
try:
    untyped.prepare(timeout=10).call(None, "find_instance", uuid="abc")
except Exception as exc:
    seen["untyped"] = isinstance(exc, versioned.InstanceNotFound)
transport.cleanup()
print(json.dumps(seen))
"""


def test_a_nova_style_client_caps_versions_and_catches_typed_exceptions(supervisor, broker, topic):
    """`rpc.get_client` as nova's: `[upgrade_levels] <topic>` caps what it sends, an
    exception of an allowed module arrives as its own type (else not), the transport is
    reused."""

    manager = "tests.functional.versioned.VersionedManager"
    configure(supervisor, broker, topic, workers=1, manager=manager)
    supervisor.start()
    ready(supervisor, 1)
    seen = run_caller(NOVA_STYLE_CALLER, str(supervisor.config_file), topic)
    assert seen["typed"] == [True, "instance abc could not be found"]
    assert seen["can_send"] == [True, False]
    assert seen["capped_call"] == 3
    assert seen["over_cap"] == "RPCVersionCapError"
    assert seen["untyped"] is False


def test_a_managers_notifier_publishes_on_the_broker(supervisor, broker, topic):
    """`self.notifier` with `[oslo_messaging_notifications] driver = messagingv2`: the
    notification lands in `<topics>.info`, publisher `<service_name>.<host>`."""

    notifications = f"{topic}_notifications"
    sections = rpcfixtures.rpc_sections(broker, topic)
    supervisor.configure(
        {"alpha": {"manager": RPC_MANAGER, "workers": 1, "topic": topic}},
        default={**sections["default"], "host": "node-n"},
        oslo_messaging_rabbit=sections["oslo_messaging_rabbit"],
        extra={GROUP_NOTIFICATIONS: {"driver": "messagingv2", "topics": notifications}},
    )
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    rpcfixtures.plain_client(broker, topic, timeout=10).call({}, "announce", value=7)
    queue = f"{notifications}.info"  # declared by the worker's notifier as it sends
    with rpcfixtures.kombu_connection(broker) as connection:
        channel = connection.channel()
        body = None  # the supervisor's own service.update notifications come too
        deadline = time.monotonic() + 10
        while body is None and time.monotonic() < deadline:
            try:
                message = channel.basic_get(queue=queue, no_ack=True)
            except connection.channel_errors:  # not declared yet: the channel was closed
                channel = connection.channel()
                message = None
            if message is None:
                time.sleep(0.05)
                continue
            sent = json.loads(json.loads(message.body)["oslo.message"])
            body = sent if sent["event_type"] == "test.announced" else None
        assert body is not None, f"no notification arrived\n{supervisor.log()[-3000:]}"
        channel.queue_delete(queue)
    assert body["publisher_id"] == "alpha.node-n"
    assert body["payload"] == {"value": 7, "pid": pid}


def test_a_malformed_message_is_skipped_and_no_lost_connection(supervisor, broker, topic):
    """The driver logs an ERROR for a message it cannot read, and skips it; the connection
    is fine, so the worker stays `consuming` and /healthz 200 while calls are served."""

    from tests.functional.test_http import answers, healthz
    from tests.ports import free_port

    port = free_port()
    sections = rpcfixtures.rpc_sections(broker, topic)
    supervisor.configure(
        {"alpha": {"manager": RPC_MANAGER, "workers": 1, "topic": topic}},
        default=sections["default"],
        oslo_messaging_rabbit=sections["oslo_messaging_rabbit"],
        supervisor={"http_listen": f"127.0.0.1:{port}"},
    )
    supervisor.start()
    ready(supervisor, 1)
    supervisor.wait_for(lambda: answers(port) and healthz(port)[0] == 200, what="/healthz 200")
    with rpcfixtures.kombu_connection(broker) as connection:
        connection.Producer().publish(
            "not an oslo.messaging envelope",
            exchange=topic,
            routing_key=topic,
            content_type="text/plain",
        )
    supervisor.wait_for(
        lambda: "Failed to process message" in supervisor.log(), what="the message skipped"
    )
    client = rpcfixtures.plain_client(broker, topic, timeout=5)
    assert client.call({}, "echo", value="after")["value"] == "after"
    assert status(supervisor)["managers"][0]["workers"][0]["rpc"] == "consuming"
    assert healthz(port)[0] == 200


def test_mgr_supervisorctl_call_without_rpc_or_broker(supervisor, topic, proxied_broker):
    proxy, url = proxied_broker
    supervisor.configure({"alpha": {}})  # no transport_url
    off = ctl(supervisor, "call", "alpha", "echo")
    assert off.returncode == 78
    assert off.stderr.startswith("mgr-supervisorctl: config error: [DEFAULT] transport_url:")
    configure(supervisor, url, topic)
    proxy.cut()
    started = time.monotonic()
    down = ctl(supervisor, "call", "alpha", "echo", "--timeout", "2")
    assert down.returncode == 3, down.stderr
    assert "message broker" in down.stderr
    assert time.monotonic() - started < 15
    assert "guest" not in down.stderr + down.stdout


def test_calls_are_routed_to_one_host_with_topic_host(supervisor, broker, topic, tmp_path):
    configure(supervisor, broker, topic, workers=1, host="node-a")
    other = Supervisor(tmp_path / "other")
    other.tmp_path.mkdir()
    configure(other, broker, topic, workers=1, host="node-b")
    try:
        supervisor.start()
        other.start()
        (pid_a,) = ready(supervisor, 1)
        (pid_b,) = ready(other, 1)
        for host, pid in (("node-a", pid_a), ("node-b", pid_b)):
            client = rpcfixtures.plain_client(broker, topic, server=host)
            assert {client.call({}, "echo")["pid"] for _ in range(6)} == {pid}
        shared = rpcfixtures.plain_client(broker, topic)
        assert {shared.call({}, "echo")["pid"] for _ in range(12)} == {pid_a, pid_b}
        shared.prepare(fanout=True).cast({}, "note", word="everyone")
        supervisor.wait_for(
            lambda: (
                rpc_events(supervisor, "note", "everyone") == [pid_a]
                and rpc_events(other, "note", "everyone") == [pid_b]
            ),
            what="the fanout cast on both hosts",
        )
    finally:
        other.signal(signal.SIGTERM)
        other.wait_exit()
        other.kill_everything()
    assert other.leftovers() == []


def test_a_call_in_flight_at_sigterm_is_answered_before_cleanup_host(supervisor, broker, topic):
    configure(supervisor, broker, topic, workers=1)
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    client = rpcfixtures.plain_client(broker, topic)
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["result"] = client.call({}, "slow", seconds=2)
        except Exception as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    supervisor.wait_for(lambda: rpc_events(supervisor, "slow-start"), what="the call taken")
    supervisor.signal(signal.SIGTERM)
    caller.join(15)
    assert outcome == {"result": pid}
    assert supervisor.wait_exit() == 0
    words = [e[1:] for e in supervisor.events() if int(e[0]) == pid]
    assert words.index(["rpc", "slow-done"]) < words.index(["cleanup_host"])
    # Nothing consumes any more: a call now is not answered (its queue and exchange went
    # with their last consumer).
    with pytest.raises(Exception, match="[Tt]imed out|no exchange"):
        client.prepare(timeout=1, retry=0).call({}, "echo")


def test_consumers_serve_while_reset_runs(supervisor, broker, topic):
    configure(supervisor, broker, topic, workers=1, slow_in="reset", slow_seconds=2)
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    client = rpcfixtures.plain_client(broker, topic)
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="reset running")
    answers = [client.call({}, "echo", value=i)["value"] for i in range(5)]
    assert answers == list(range(5))
    assert supervisor.count("reset-done") == 0, "answered while reset() still ran"
    supervisor.wait_for(lambda: supervisor.count("reset-done") == 1, what="reset done")


def test_a_broker_outage_is_survived(supervisor, broker, topic, proxied_broker):
    proxy, url = proxied_broker
    configure(supervisor, url, topic, workers=1)
    supervisor.start()
    (pid,) = ready(supervisor, 1)
    client = rpcfixtures.plain_client(broker, topic)  # not through the proxy
    assert client.call({}, "echo")["pid"] == pid
    proxy.cut()
    supervisor.wait_for(
        lambda: status(supervisor)["managers"][0]["workers"][0]["rpc"] == "reconnecting",
        what="reconnecting",
    )
    ticks = supervisor.count("tick")
    supervisor.wait_for(lambda: supervisor.count("tick") >= ticks + 2, what="ticks go on")
    proxy.restore()
    supervisor.wait_for(
        lambda: status(supervisor)["managers"][0]["workers"][0]["rpc"] == "consuming",
        timeout=30,
        what="consuming again",
    )
    assert client.call({}, "echo", value="after")["value"] == "after"
    assert supervisor.proc.poll() is None
    assert [int(e[0]) for e in supervisor.events() if e[1] == "init_host"] == [pid]


def test_a_broker_down_at_start_is_waited_for_not_a_failed_start(
    supervisor, broker, topic, proxied_broker, tmp_path
):
    from tests.functional.test_systemd import NotifyListener

    notify = NotifyListener(str(tmp_path / "notify.sock"))
    proxy, url = proxied_broker
    proxy.cut()
    configure(supervisor, url, topic, workers=2, start_timeout=2, start_retries=0)
    supervisor.start(env={"NOTIFY_SOCKET": notify.address})
    supervisor.wait_for(lambda: supervisor.count("pre_start_hook") == 2, what="pre_start_hook")
    supervisor.wait_for(
        lambda: notify.has(
            "STATUS", "0/2 workers ready: alpha 0/2; 2 waiting for the message broker"
        ),
        what="STATUS saying what it waits for",
    )
    time.sleep(3)  # past start_timeout: waiting for the broker is not a failed start
    manager = status(supervisor)["managers"][0]
    assert manager["state"] == "STARTING" and manager["restarts"] == 0, manager
    assert {w["phase"] for w in manager["workers"]} == {"waiting for the message broker"}
    assert supervisor.count("post_start_hook") == 0
    proxy.restore()
    pids = ready(supervisor, 2, timeout=30)
    assert rpcfixtures.plain_client(broker, topic).call({}, "echo")["pid"] in pids
    supervisor.wait_for(
        lambda: status(supervisor)["managers"][0]["state"] == "RUNNING", what="RUNNING"
    )
    assert len(supervisor.pids_with("init_host")) == 2, "no worker was replaced"
    assert "Traceback" not in supervisor.log()
    supervisor.wait_for(lambda: notify.has("READY"), what="READY=1")
    notify.close()


def test_the_shipped_managers_answer_over_rpc(supervisor, broker, topic):
    """The shipped config's managers, as the CLI reference shows them (doc/source/cli.md):
    `call demo greet` and `call resources get_host_resources --host H`."""
    sections = rpcfixtures.rpc_sections(broker, topic)
    topics = {"demo": f"{topic}.demo", "resources": f"{topic}.resources"}
    supervisor.configure(
        {
            "demo": {"manager": "workers.demo.DemoManager", "topic": topics["demo"]},
            "resources": {
                "manager": "workers.resources.ResourcesManager",
                "topic": topics["resources"],
            },
        },
        default={**sections["default"], "host": "node-r"},
        oslo_messaging_rabbit=sections["oslo_messaging_rabbit"],
    )
    try:
        supervisor.start()
        supervisor.wait_for(
            lambda: [m["state"] for m in status(supervisor)["managers"]] == ["RUNNING"] * 2,
            timeout=20,
            what="both managers RUNNING",
        )
        greeting = ctl(supervisor, "call", "demo", "greet", 'name="ops"')
        assert greeting.returncode == 0, greeting.stderr
        assert json.loads(greeting.stdout)["greeting"].endswith(", ops")

        def resources() -> dict | None:
            result = ctl(supervisor, "call", "resources", "get_host_resources", "--host", "node-r")
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        supervisor.wait_for(lambda: resources() is not None, timeout=20, what="a sample")
        sample = resources()
        assert sample["host"] == "node-r" and sample["cpu_count"] == os.cpu_count()
    finally:
        rpcfixtures.delete_exchanges(broker, topic, list(topics.values()))
