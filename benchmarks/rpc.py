"""Issue 11: what serving RPC through mgr-supervisor workers costs against a bare server.

    python benchmarks/rpc.py [--workers 1,2] [--calls 2000] [--seconds 10] [--callers 8]
                             [--rounds 3] [--transport-url rabbit://guest:guest@127.0.0.1:5672/]

Two targets serve the same method, `echo(context, value)`, on the same RabbitMQ:

- **mgr-supervisor**: N workers of `benchmarks.rpc.EchoManager` (one RPC server each, as
  every manager's worker runs it);
- **bare**: N processes of a plain oslo.messaging RPC server (`get_rpc_server`, threading
  executor, the same Target), the least a service can run.

For each round, worker count and target (interleaved, so the machine's drift hits both): a
plain `RPCClient` makes `--calls` calls one after another (round trip p50 and p99, after 100
to warm up), then `--callers` threads call for `--seconds` (calls/s). The servers' own CPU
per call (schedstat, every thread of the serving processes, over both phases) is the figure
the machine's noise blurs least. Each launch has its own
topic and exchange, deleted with their last consumer. Every process it started is gone
before it exits (killed by pid otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import procs, targets
from benchmarks.targets import REPO
from supervisor.manager import Manager

DEFAULT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
READY_TIMEOUT = 60.0
WARM_UP_CALLS = 100
TARGETS = ("mgr-supervisor", "bare")


class EchoManager(Manager):
    """mgr-supervisor's side: the manager whose workers serve `echo`."""

    def echo(self, context: object, value: object = None) -> object:
        return value


class EchoEndpoint:
    """The bare server's side: the same method."""

    def echo(self, context: object, value: object = None) -> object:
        return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.serve:
        return _serve(args.transport_url, *args.serve)
    return procs.run_harness(lambda: _measure(args))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls for latency")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput window")
    parser.add_argument("--callers", type=int, default=8, help="threads for throughput")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transport-url", default=os.environ.get("MGR_BENCH_TRANSPORT_URL"))
    parser.add_argument("--output", type=Path, default=targets.CACHE / "rpc-last-run.json")
    parser.add_argument("--serve", nargs=2, metavar=("EXCHANGE", "TOPIC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.transport_url = args.transport_url or DEFAULT_URL
    return args


def _serve(url: str, exchange: str, topic: str) -> int:
    """One bare oslo.messaging RPC server until SIGTERM (a child of the harness)."""
    import signal

    from oslo_config import cfg

    oslo_messaging = _messaging()
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=url)
    target = oslo_messaging.Target(exchange=exchange, topic=topic, server="bench")
    server = oslo_messaging.get_rpc_server(
        transport,
        target,
        [EchoEndpoint()],
        executor="threading",
        access_policy=oslo_messaging.DefaultRPCAccessPolicy,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop()
    server.wait()
    return 0


def _messaging() -> Any:
    """oslo.messaging, through `supervisor.rpc` (which silences eventlet's import warning),
    its rabbit options on oslo's global config with auto-delete, as the workers' config says."""
    from oslo_config import cfg

    from supervisor import rpc

    cfg.CONF.register_opts(rpc.rabbit_opts(), group=rpc.RABBIT_GROUP)
    cfg.CONF.set_override("amqp_auto_delete", True, group=rpc.RABBIT_GROUP)
    return rpc.messaging


def _measure(args: argparse.Namespace) -> int:
    targets.compile_sources()
    from oslo_config import cfg

    oslo_messaging = _messaging()
    transport = oslo_messaging.get_rpc_transport(cfg.CONF, url=args.transport_url)
    sizes = [int(n) for n in args.workers.split(",")]
    results: list[dict[str, Any]] = []
    for round_number in range(1, args.rounds + 1):
        for workers in sizes:
            order = TARGETS if round_number % 2 else tuple(reversed(TARGETS))
            for target in order:
                exchange = topic = f"mgrbench_{secrets.token_hex(4)}"
                with tempfile.TemporaryDirectory(prefix="mgr-rpc-bench-") as tmp:
                    stop, servers = _start(target, Path(tmp), args.transport_url, exchange, workers)
                    try:
                        client = oslo_messaging.get_rpc_client(
                            transport,
                            oslo_messaging.Target(exchange=exchange, topic=topic),
                            timeout=30,
                        )
                        _wait_answering(client)
                        figures = _run_calls(client, args, servers())
                    finally:
                        stop()
                        procs.kill_all()
                figures.update(target=target, workers=workers, round=round_number)
                results.append(figures)
                print(
                    f"round {round_number} {target} N={workers}: p50 {figures['p50_ms']:.2f} ms,"
                    f" p99 {figures['p99_ms']:.2f} ms, {figures['calls_per_s']:.0f} calls/s,"
                    f" server CPU {figures['server_cpu_us']:.0f} µs/call",
                    flush=True,
                )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"raw results: {args.output}")
    print(render(results, sizes))
    return 0


def _start(target: str, tmp: Path, url: str, exchange: str, workers: int) -> tuple[Any, Any]:
    """Start `target`'s servers; return what stops them and what lists their pids."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if target == "bare":
        servers = [
            subprocess.Popen(
                [sys.executable, __file__, "--transport-url", url, "--serve", exchange, exchange],
                env=env,
                stdin=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]

        def stop_bare() -> None:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)

        return stop_bare, lambda: [server.pid for server in servers]
    config = tmp / "mgr-supervisor.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            [DEFAULT]
            host = bench
            use_stderr = true
            state_path = {tmp}/state
            transport_url = {url}
            control_exchange = {exchange}

            [oslo_messaging_rabbit]
            amqp_auto_delete = true

            [supervisor]
            enabled_managers = echo

            [manager:echo]
            manager = benchmarks.rpc.EchoManager
            workers = {workers}
            topic = {exchange}
            """
        )
    )
    log = open(tmp / "mgr-supervisor.log", "wb")  # noqa: SIM115 (closed by stop_supervisor)
    supervisor = subprocess.Popen(
        [str(Path(sys.executable).with_name("mgr-supervisor")), "--config-file", str(config)],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop_supervisor() -> None:
        supervisor.terminate()
        supervisor.wait(30)
        log.close()

    def workers_of_supervisor() -> list[int]:
        children = psutil.Process(supervisor.pid).children()
        return [child.pid for child in children if not targets.is_recorder(child)]

    return stop_supervisor, workers_of_supervisor


def _wait_answering(client: Any) -> None:
    """Until a call is answered: the servers consume (the queue exists once one does)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            client.prepare(timeout=2, retry=0).call({}, "echo", value=0)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _run_calls(client: Any, args: argparse.Namespace, servers: list[int]) -> dict[str, Any]:
    for _ in range(WARM_UP_CALLS):
        client.call({}, "echo", value=1)
    cpu_before = sum(procs.runtime_ns(pid) for pid in servers)
    latencies = []
    for i in range(args.calls):
        started = time.perf_counter()
        client.call({}, "echo", value=i)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    done = [0] * args.callers
    deadline = time.monotonic() + args.seconds

    def caller(index: int) -> None:
        while time.monotonic() < deadline:
            client.call({}, "echo", value=index)
            done[index] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(args.callers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    calls = args.calls + sum(done)
    return {
        "server_cpu_us": (sum(procs.runtime_ns(pid) for pid in servers) - cpu_before)
        / calls
        / 1000,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "calls_per_s": sum(done) / elapsed,
    }


def render(results: list[dict[str, Any]], sizes: list[int]) -> str:
    """A markdown table: medians over the rounds, and mgr-supervisor against bare."""
    lines = [
        "| workers | target | p50 | p99 | calls/s | server CPU per call |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for workers in sizes:
        medians = {}
        for target in TARGETS:
            rows = [r for r in results if r["target"] == target and r["workers"] == workers]
            medians[target] = {
                key: statistics.median(r[key] for r in rows)
                for key in ("p50_ms", "p99_ms", "calls_per_s", "server_cpu_us")
            }
        for target in TARGETS:
            m, bare = medians[target], medians["bare"]
            ratio = "" if target == "bare" else " (×{:.3f})"
            lines.append(
                f"| {workers} | {target} "
                f"| {m['p50_ms']:.2f} ms{ratio.format(m['p50_ms'] / bare['p50_ms'])} "
                f"| {m['p99_ms']:.2f} ms{ratio.format(m['p99_ms'] / bare['p99_ms'])} "
                f"| {m['calls_per_s']:.0f}{ratio.format(m['calls_per_s'] / bare['calls_per_s'])} "
                f"| {m['server_cpu_us']:.0f} µs"
                f"{ratio.format(m['server_cpu_us'] / bare['server_cpu_us'])} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
