"""Issue 13: what `[supervisor] http_listen` costs the parent, and whether scraping delays
supervision.

    python benchmarks/http_endpoint.py [--workers 256] [--scrapes 200] [--rounds 3]
                                       [--rate 20] [--window 1000] [--idle 10]

Each round starts mgr-supervisor with --workers workers of `BenchManager` and the endpoint
on, waits until every worker reported `ready`, then measures, on the parent only (schedstat:
every nanosecond it ran, not psutil's 10 ms ticks):

1. the first `/metrics` (it imports prometheus_client): the parent's CPU and the wall time;
2. --scrapes `/metrics` one after another, then as many `/healthz`: the parent's CPU per
   request, the wall time (p50) and the size of the answer;
3. --idle seconds with the endpoint on and no client: the parent's CPU;
4. restart (SIGKILL one worker → its replacement `ready`) and reload (SIGHUP with a changed
   mutable value → every worker `reset`) latencies, one after the other, in --blocks blocks
   that alternate between scraping and not: while a scraper scrapes `/metrics` --rate times
   a second (--window scrapes over all its blocks), and for as long without a scraper. The
   blocks alternate (and which comes first, with the rounds) because a launch's latencies
   drift over its minutes, which would otherwise read as the scraper's doing. The scraper is
   a process of its own: as a thread it would hold the GIL the probe's thread needs to
   timestamp the workers' datagrams, and delay them.

Prints a markdown table of medians over the rounds. Every process it started is gone before it
exits (killed by pid otherwise), Ctrl-C included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import procs, scenarios, targets
from benchmarks.probe import Probe, first_by_pid, nth
from benchmarks.run import describe_machine
from benchmarks.targets import MgrSupervisor

READY_TIMEOUT = 180.0
OPERATION_TIMEOUT = 30.0
PAUSE_SECONDS = 0.5  # between two operations: the tail of one does not overlap the next


class HttpSupervisor(MgrSupervisor):
    """mgr-supervisor with `[supervisor] http_listen` on a free loopback port."""

    name = "mgr-supervisor-http"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def extra_config(self) -> str:
        return f"\n[supervisor]\nhttp_listen = 127.0.0.1:{self.port}\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.scrape_port:
        return _scrape(args.scrape_port, args.rate, args.window)
    return procs.run_harness(lambda: _measure(args))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=256)
    parser.add_argument("--scrapes", type=int, default=200, help="sequential requests of each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="scrapes per second")
    parser.add_argument("--window", type=int, default=1000, help="scrapes while timing")
    parser.add_argument("--blocks", type=int, default=4, help="alternations of the window")
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    parser.add_argument("--output", type=Path, default=targets.CACHE / "http-last-run.json")
    parser.add_argument("--scrape-port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _measure(args: argparse.Namespace) -> int:
    targets.compile_sources()
    results = []
    probe = Probe()
    try:
        for round_number in range(1, args.rounds + 1):
            with tempfile.TemporaryDirectory(prefix="mgr-http-bench-") as tmp:
                target = HttpSupervisor(Path(tmp))
                try:
                    figures = _round(target, probe, args, first=round_number % 2 == 0)
                finally:
                    if target.process is not None and target.process.poll() is None:
                        target.kill()
                    target.close()
                    procs.kill_all()
            figures["round"] = round_number
            results.append(figures)
            print(f"round {round_number}: {json.dumps(figures)}", flush=True)
    finally:
        probe.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"raw results: {args.output}")
    print(describe_machine())
    print(render(results, args))
    return 0


def _round(
    target: HttpSupervisor, probe: Probe, args: argparse.Namespace, first: bool
) -> dict[str, Any]:
    since = probe.mark()
    target.start(args.workers, probe.address)
    met, _ = probe.wait(
        since,
        lambda evs: nth(first_by_pid(evs, "ready", (target.pid,)), args.workers),
        READY_TIMEOUT,
    )
    if met is None:
        raise RuntimeError(f"not every worker ready within {READY_TIMEOUT:.0f}s")
    time.sleep(2.0)  # the start's tail (the recorder's first writes) out of the figures
    figures: dict[str, Any] = {}
    cpu, wall, _ = _requests(target, "/metrics", 1)
    figures["first_scrape_cpu_ms"], figures["first_scrape_ms"] = cpu, wall[0]
    cpu, wall, size = _requests(target, "/metrics", args.scrapes)
    figures.update(metrics_cpu_ms=cpu, metrics_p50_ms=statistics.median(wall), metrics_bytes=size)
    cpu, wall, size = _requests(target, "/healthz", args.scrapes)
    figures.update(healthz_cpu_ms=cpu, healthz_p50_ms=statistics.median(wall))
    time.sleep(1.0)
    before = procs.runtime_ns(target.pid)
    time.sleep(args.idle)
    figures["idle_cpu_ms"] = (procs.runtime_ns(target.pid) - before) / 1e6

    timed: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    scrapes: list[dict[str, Any]] = []
    for block in range(2 * args.blocks):
        scraping = (block % 2 == 0) == first
        restarts, reloads = timed[scraping]
        scraped = _latencies(target, probe, args, scraping, restarts, reloads)
        if scraped:
            scrapes.append(scraped)
    for scraping, (restarts, reloads) in timed.items():
        key = "with" if scraping else "without"
        figures[f"restart_{key}_ms"] = statistics.median(restarts) * 1000
        figures[f"reload_{key}_ms"] = statistics.median(reloads) * 1000
        figures[f"operations_{key}"] = len(restarts) + len(reloads)
    figures["scrapes_during"] = sum(s["count"] for s in scrapes)
    figures["scrape_p50_during_ms"] = statistics.median(s["p50_ms"] for s in scrapes)
    figures["scrape_max_during_ms"] = max(s["max_ms"] for s in scrapes)
    return figures


def get(port: int, path: str) -> bytes:
    """One GET's body; 200 and 503 are answers, anything else an error."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status not in (200, 503):
            raise RuntimeError(f"GET {path}: {response.status}")
        return body
    finally:
        connection.close()


def _requests(target: HttpSupervisor, path: str, count: int) -> tuple[float, list[float], int]:
    """The parent's CPU per request (ms), each request's wall time (ms), the answer's size."""
    walls = []
    size = 0
    before = procs.runtime_ns(target.pid)
    for _ in range(count):
        started = time.perf_counter()
        size = len(get(target.port, path))
        walls.append((time.perf_counter() - started) * 1000)
    return (procs.runtime_ns(target.pid) - before) / 1e6 / count, walls, size


def _latencies(
    target: HttpSupervisor,
    probe: Probe,
    args: argparse.Namespace,
    scraping: bool,
    restarts: list[float],
    reloads: list[float],
) -> dict[str, Any]:
    """One block: a restart, then a reload, again and again, while a scraper makes its share
    of the window's scrapes (scraping), or for as long as that takes (not scraping). Adds to
    `restarts` and `reloads`; returns what the scraper saw ({} without one)."""
    count = args.window // args.blocks
    seconds = count / args.rate
    scraped: dict[str, Any] = {}
    scraper = None
    if scraping:
        command = [sys.executable, __file__, "--scrape-port", str(target.port)]
        command += ["--rate", str(args.rate), "--window", str(count)]
        scraper = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    started = time.monotonic()

    def more() -> bool:
        if scraper is not None:
            return scraper.poll() is None
        return time.monotonic() - started < seconds

    try:
        while more():
            restarts.append(_restart(target, probe))
            time.sleep(PAUSE_SECONDS)
            reloads.append(_reload(target, probe, args.workers))
            time.sleep(PAUSE_SECONDS)
    finally:
        if scraper is not None:
            output, _ = scraper.communicate(timeout=seconds + 60)
            scraped = json.loads(output)
    return scraped


def _scrape(port: int, rate: float, window: int) -> int:
    """The scraper process: `window` scrapes of /metrics, one every 1/`rate` s; prints how
    many, and their wall time (p50, max), as JSON."""
    walls = []
    next_at = time.monotonic()
    for _ in range(window):
        started = time.perf_counter()
        get(port, "/metrics")
        walls.append((time.perf_counter() - started) * 1000)
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(
        json.dumps({"count": len(walls), "p50_ms": statistics.median(walls), "max_ms": max(walls)})
    )
    return 0


def _restart(target: HttpSupervisor, probe: Probe) -> float:
    """SIGKILL a random worker: seconds until a new worker reports `ready`."""
    known = {p.pid for p in target.workers()}
    victim = random.choice(sorted(known))
    return scenarios.timed(
        probe,
        lambda: os.kill(victim, signal.SIGKILL),
        lambda evs: nth(first_by_pid(evs, "ready", (target.pid, *known)), 1),
        OPERATION_TIMEOUT,
        f"restart: not done within {OPERATION_TIMEOUT:.0f}s",
    )


def _reload(target: HttpSupervisor, probe: Probe, workers: int) -> float:
    """SIGHUP with a changed mutable value: seconds until every worker reported `reset`."""
    return scenarios.timed(
        probe,
        target.reload,
        lambda evs: nth(first_by_pid(evs, "reset", (target.pid,)), workers),
        OPERATION_TIMEOUT,
        f"reload: not done within {OPERATION_TIMEOUT:.0f}s",
    )


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Medians over the rounds (min–max)."""

    def cell(key: str, unit: str = "ms", digits: int = 2) -> str:
        values = [r[key] for r in results]
        text = f"{statistics.median(values):.{digits}f} {unit}"
        if len(values) > 1:
            text += f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
        return text

    rows = [
        ("first `/metrics` (imports prometheus_client): parent CPU", cell("first_scrape_cpu_ms")),
        (f"`/metrics`, {args.workers} workers: parent CPU per scrape", cell("metrics_cpu_ms")),
        (
            "`/metrics`: wall time p50, size",
            f"{cell('metrics_p50_ms')}, "
            f"{statistics.median(r['metrics_bytes'] for r in results) / 1024:.0f} KiB",
        ),
        ("`/healthz`: parent CPU per request", cell("healthz_cpu_ms")),
        (
            f"idle {args.idle:.0f} s, endpoint on, no client: parent CPU",
            cell("idle_cpu_ms", digits=3),
        ),
        (
            "restart (SIGKILL → replacement ready), no scraping",
            cell("restart_without_ms", digits=0),
        ),
        (f"restart, while scraping {args.rate:.0f}/s", cell("restart_with_ms", digits=0)),
        (
            f"reload (SIGHUP → {args.workers} resets), no scraping",
            cell("reload_without_ms", digits=0),
        ),
        (f"reload, while scraping {args.rate:.0f}/s", cell("reload_with_ms", digits=0)),
        (
            "scrapes during the timed window; their wall p50, max",
            f"{statistics.median(r['scrapes_during'] for r in results):.0f}; "
            f"{cell('scrape_p50_during_ms')}, {cell('scrape_max_during_ms', digits=0)}",
        ),
    ]
    lines = [
        f"| {args.workers} workers, {len(results)} rounds | median (min–max) |",
        "| --- | --- |",
    ]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
