"""Issue 11: what serving RPC through mgr-supervisor workers costs against a bare server.

    python benchmarks/rpc.py [--workers 1,2] [--calls 2000] [--seconds 10] [--window 1]
                             [--callers 8] [--rounds 3] [--transport-url rabbit://guest:guest@127.0.0.1:5672/]

Two targets serve the same method, `echo(context, value)`, on the same RabbitMQ:

- **mgr-supervisor**: N workers of `benchmarks.rpc.EchoManager` (one RPC server each, as
  every manager's worker runs it);
- **bare**: N processes of a plain oslo.messaging RPC server (`get_rpc_server`, threading
  executor, the same Target), the least a service can run.

Both targets serve at once, each on an exchange and topic of its own, and are measured in
the same stretch of time, so the machine's drift hits both alike (issue 11: "one run side by
side"). In each round and for each worker count, a plain `RPCClient`, after 100 calls to
warm up each target:

- makes `--calls` sequential calls to each, alternating call by call (round trip p50, p99);
- runs `--callers` threads against one target for `--window` seconds, then against the
  other, pair after pair, until each had `--seconds` (calls/s);
- takes each target's server CPU (schedstat, every thread of its serving processes) over its
  own calls.

The table pools every round's calls and gives mgr-supervisor's figure over bare's with a 95 %
bootstrap interval. Every process it started is gone before it exits (killed by pid
otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
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
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="throughput time per target and round"
    )
    parser.add_argument("--window", type=float, default=1.0, help="one throughput window")
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
            with contextlib.ExitStack() as stack:
                stack.callback(procs.kill_all)
                clients, servers = {}, {}
                # Both serve at once, each on its own exchange; which starts first alternates.
                for target in TARGETS if round_number % 2 else reversed(TARGETS):
                    exchange = f"mgrbench_{secrets.token_hex(4)}"
                    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mgr-rpc-")))
                    stop, servers[target] = _start(
                        target, tmp, args.transport_url, exchange, workers
                    )
                    stack.callback(stop)
                    clients[target] = oslo_messaging.get_rpc_client(
                        transport,
                        oslo_messaging.Target(exchange=exchange, topic=exchange),
                        timeout=30,
                    )
                for client in clients.values():
                    _wait_answering(client)
                figures = _run_side_by_side(clients, servers, args)
            for target in TARGETS:
                figures[target].update(target=target, workers=workers, round=round_number)
                results.append(figures[target])
                print(
                    f"round {round_number} {target} N={workers}: "
                    f"p50 {figures[target]['p50_ms']:.3f} ms, "
                    f"p99 {figures[target]['p99_ms']:.3f} ms, "
                    f"{figures[target]['calls_per_s']:.0f} calls/s, "
                    f"server CPU {figures[target]['server_cpu_us']:.0f} µs/call",
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


def _run_side_by_side(
    clients: dict[str, Any], servers: dict[str, Any], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Both targets measured in one stretch of time, so the machine's drift hits both alike.

    Latency: one caller alternates between the targets call by call (the first of each pair
    alternates too). Throughput: `--callers` threads on one target for `--window` seconds,
    then on the other, pair after pair, until each had `--seconds`. A target's server CPU is
    taken over its own throughput windows and the whole latency phase (its calls there).
    """
    for _ in range(WARM_UP_CALLS):
        for client in clients.values():
            client.call({}, "echo", value=1)
    latencies: dict[str, list[float]] = {target: [] for target in TARGETS}
    cpu_ns = dict.fromkeys(TARGETS, 0)
    calls = dict.fromkeys(TARGETS, 0)
    before = {target: _cpu(servers[target]) for target in TARGETS}
    for i in range(args.calls):
        for target in TARGETS if i % 2 else reversed(TARGETS):
            started = time.perf_counter()
            clients[target].call({}, "echo", value=i)
            latencies[target].append(time.perf_counter() - started)
    for target in TARGETS:
        cpu_ns[target] += _cpu(servers[target]) - before[target]
        calls[target] += args.calls
    windows: dict[str, list[float]] = {target: [] for target in TARGETS}
    for pair in range(max(1, round(args.seconds / args.window))):
        for target in TARGETS if pair % 2 else reversed(TARGETS):
            cpu_before = _cpu(servers[target])
            done = _window(clients[target], args.callers, args.window)
            cpu_ns[target] += _cpu(servers[target]) - cpu_before
            calls[target] += done
            windows[target].append(done / args.window)
    figures = {}
    for target in TARGETS:
        ordered = sorted(latencies[target])
        figures[target] = {
            "server_cpu_us": cpu_ns[target] / calls[target] / 1000,
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": _percentile(ordered, 0.99) * 1000,
            "calls_per_s": statistics.fmean(windows[target]),
            "latencies_ms": [x * 1000 for x in latencies[target]],
            "windows_calls_per_s": windows[target],
        }
    return figures


def _cpu(servers: Any) -> int:
    return sum(procs.runtime_ns(pid) for pid in servers())


def _window(client: Any, callers: int, seconds: float) -> int:
    """Calls answered by `callers` threads calling as fast as they can for `seconds`."""
    done = [0] * callers
    deadline = time.monotonic() + seconds

    def caller(index: int) -> None:
        while time.monotonic() < deadline:
            client.call({}, "echo", value=index)
            done[index] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[max(0, int(len(ordered) * fraction) - 1)]


def render(results: list[dict[str, Any]], sizes: list[int]) -> str:
    """A markdown table per worker count: every round's calls pooled, mgr-supervisor against
    bare with a 95 % bootstrap interval of the ratio."""
    rng = random.Random(11)
    lines = [
        "| workers | figure | mgr-supervisor | bare | ratio (95 % interval) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for workers in sizes:
        rows = {
            target: [r for r in results if r["target"] == target and r["workers"] == workers]
            for target in TARGETS
        }
        ours, bare = ([x for r in rows[target] for x in r["latencies_ms"]] for target in TARGETS)
        for name, fraction in (("p50", 0.50), ("p99", 0.99)):
            figure = functools.partial(_quantile, fraction=fraction)
            lines.append(_row(workers, f"{name} (ms)", ours, bare, figure, rng, "{:.3f}"))
        pairs = [
            (a, b)
            for mine, theirs in zip(rows["mgr-supervisor"], rows["bare"], strict=True)
            for a, b in zip(mine["windows_calls_per_s"], theirs["windows_calls_per_s"], strict=True)
        ]
        lines.append(
            _row(
                workers,
                f"calls/s ({len(pairs)} window pairs)",
                [a for a, _ in pairs],
                [b for _, b in pairs],
                statistics.fmean,
                rng,
                "{:.0f}",
            )
        )
        cpu = {t: statistics.median(r["server_cpu_us"] for r in rows[t]) for t in TARGETS}
        lines.append(
            f"| {workers} | server CPU per call (µs, median of rounds) "
            f"| {cpu['mgr-supervisor']:.0f} | {cpu['bare']:.0f} "
            f"| ×{cpu['mgr-supervisor'] / cpu['bare']:.3f} |"
        )
    return "\n".join(lines)


def _quantile(values: Sequence[float], fraction: float) -> float:
    return _percentile(sorted(values), fraction)


def _row(
    workers: int,
    name: str,
    ours: Sequence[float],
    bare: Sequence[float],
    figure: Any,
    rng: random.Random,
    fmt: str,
) -> str:
    """One table row: the figure of each target, their ratio, and the ratio's interval
    from 400 resamples of each target's values."""
    ratio = figure(ours) / figure(bare)
    resampled = sorted(
        figure(rng.choices(ours, k=len(ours))) / figure(rng.choices(bare, k=len(bare)))
        for _ in range(400)
    )
    low, high = resampled[10], resampled[389]
    return (
        f"| {workers} | {name} | {fmt.format(figure(ours))} | {fmt.format(figure(bare))} "
        f"| ×{ratio:.3f} ({low:.3f}–{high:.3f}) |"
    )


if __name__ == "__main__":
    sys.exit(main())
