"""Issue 13: what `[supervisor] http_listen` costs the parent, and whether scraping delays
supervision.

    python benchmarks/http_endpoint.py [--workers 256] [--scrapes 200] [--rounds 3]
                                       [--rate 20] [--window 1000] [--idle 10] [--controls]

Each round starts mgr-supervisor with --workers workers of `BenchManager` and the endpoint
on, waits until every worker reported `ready`, then measures, on the parent only (schedstat:
every nanosecond it ran, not psutil's 10 ms ticks):

1. the first `/metrics` (it imports prometheus_client): the parent's CPU and the wall time;
2. --renders `/metrics` more than `metrics.MAX_REUSE` apart, so that each one is rendered
   afresh, by a child of the parent (`metrics.MetricsRenderer`): the parent's CPU per scrape
   (the fork, the pipe, the reaping) and the renderer's (the children's CPU the parent
   reaped); then --scrapes `/metrics` one after another (most of them get the last render
   again), then as many `/healthz`: the parent's CPU per request, the wall time (p50) and
   the size of the answer;
3. --idle seconds with the endpoint on and no client: the parent's CPU;
4. restart (SIGKILL one worker → its replacement `ready`) and reload (SIGHUP with a changed
   mutable value → every worker `reset`) latencies, one after the other, in --blocks turns
   of blocks: one while a scraper scrapes `/metrics` --rate times a second (--window
   scrapes over all its blocks), one as long without a scraper and, with --controls, two
   with the same scraper asking for `/livez` (the least the supervisor can answer) and
   asking a static file server (`python -m http.server`) for a copy of `/metrics` (the
   supervisor answers nothing): what the scraper's own load on the machine costs. The
   blocks take turns (the first one shifting with the rounds) because a launch's latencies
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
from supervisor.metrics import MAX_REUSE

READY_TIMEOUT = 180.0
OPERATION_TIMEOUT = 30.0
PAUSE_SECONDS = 0.5  # between two operations: the tail of one does not overlap the next


class HttpSupervisor(MgrSupervisor):
    """mgr-supervisor with `[supervisor] http_listen` on a free loopback port."""

    name = "mgr-supervisor-http"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()

    def extra_config(self) -> str:
        return f"\n[supervisor]\nhttp_listen = 127.0.0.1:{self.port}\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.scrape_port:
        return _scrape(args.scrape_port, args.scrape_path, args.rate, args.window)
    return procs.run_harness(lambda: _measure(args))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=256)
    parser.add_argument("--renders", type=int, default=20, help="/metrics rendered afresh")
    parser.add_argument("--scrapes", type=int, default=200, help="sequential requests of each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="scrapes per second")
    parser.add_argument(
        "--controls",
        action="store_true",
        help="also time the same scraper asking the supervisor for /livez, and asking a "
        "static file server for a copy of /metrics",
    )
    parser.add_argument("--window", type=int, default=1000, help="scrapes while timing")
    parser.add_argument("--scrape-path", default="/metrics", help=argparse.SUPPRESS)
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
                    figures = _round(target, probe, args, round_number)
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
    target: HttpSupervisor, probe: Probe, args: argparse.Namespace, round_number: int
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
    children_before = procs.reaped_children_cpu_ms(target.pid)
    cpu, wall, _ = _requests(target, "/metrics", args.renders, gap=MAX_REUSE + 0.05)
    renderers = (procs.reaped_children_cpu_ms(target.pid) - children_before) / args.renders
    figures.update(
        render_cpu_ms=cpu, renderer_cpu_ms=renderers, render_p50_ms=statistics.median(wall)
    )
    cpu, wall, size = _requests(target, "/metrics", args.scrapes)
    figures.update(metrics_cpu_ms=cpu, metrics_p50_ms=statistics.median(wall), metrics_bytes=size)
    cpu, wall, size = _requests(target, "/healthz", args.scrapes)
    figures.update(healthz_cpu_ms=cpu, healthz_p50_ms=statistics.median(wall))
    time.sleep(1.0)
    before = procs.runtime_ns(target.pid)
    time.sleep(args.idle)
    figures["idle_cpu_ms"] = (procs.runtime_ns(target.pid) - before) / 1e6

    # Which scraper runs in a block, if any: its port and path.
    scrapers = {"none": (0, ""), "metrics": (target.port, "/metrics")}
    if args.controls:
        scrapers["livez"] = (target.port, "/livez")
        static = _static_server(get(target.port, "/metrics"), target.workdir)
        scrapers["static"] = (static, "/metrics")
    modes = list(scrapers)
    timed: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in modes}
    scrapes: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for block in range(args.blocks):
        shift = (block + round_number) % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            restarts, reloads = timed[mode]
            port, path = scrapers[mode]
            scraped = _latencies(target, probe, args, port, path, restarts, reloads)
            if scraped:
                scrapes[mode].append(scraped)
    for mode, (restarts, reloads) in timed.items():
        figures[f"restart_{mode}_ms"] = statistics.median(restarts) * 1000
        figures[f"reload_{mode}_ms"] = statistics.median(reloads) * 1000
        figures[f"operations_{mode}"] = len(restarts) + len(reloads)
        if scrapes[mode]:
            figures[f"scrapes_{mode}"] = sum(s["count"] for s in scrapes[mode])
            figures[f"scrape_p50_{mode}_ms"] = statistics.median(s["p50_ms"] for s in scrapes[mode])
            figures[f"scrape_max_{mode}_ms"] = max(s["max_ms"] for s in scrapes[mode])
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


def _requests(
    target: HttpSupervisor, path: str, count: int, gap: float = 0.0
) -> tuple[float, list[float], int]:
    """The parent's CPU per request (ms), each request's wall time (ms), the answer's size;
    `gap` seconds between two requests (the parent is idle meanwhile)."""
    walls = []
    size = 0
    before = procs.runtime_ns(target.pid)
    for number in range(count):
        if number and gap:
            time.sleep(gap)
        started = time.perf_counter()
        size = len(get(target.port, path))
        walls.append((time.perf_counter() - started) * 1000)
    return (procs.runtime_ns(target.pid) - before) / 1e6 / count, walls, size


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _static_server(body: bytes, workdir: Path) -> int:
    """A control for the scraper: `python -m http.server` serving `body` as /metrics from
    the round's `workdir`, in a process of its own (killed with the round's other
    processes); its port."""
    directory = workdir / "static"
    directory.mkdir()
    (directory / "metrics").write_bytes(body)
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    subprocess.Popen(
        [*command, "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            get(port, "/metrics")
            return port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _latencies(
    target: HttpSupervisor,
    probe: Probe,
    args: argparse.Namespace,
    scrape_port: int,
    scrape_path: str,
    restarts: list[float],
    reloads: list[float],
) -> dict[str, Any]:
    """One block: a restart, then a reload, again and again, while a scraper makes its share
    of the window's scrapes of `scrape_path` from `scrape_port`, or for as long as that
    takes (port 0: no scraper). Adds to `restarts` and `reloads`; returns what the scraper
    saw ({} without one)."""
    count = args.window // args.blocks
    seconds = count / args.rate
    scraped: dict[str, Any] = {}
    scraper = None
    if scrape_port:
        command = [sys.executable, __file__, "--scrape-port", str(scrape_port)]
        command += ["--rate", str(args.rate), "--window", str(count)]
        command += ["--scrape-path", scrape_path]
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


def _scrape(port: int, path: str, rate: float, window: int) -> int:
    """The scraper process: `window` GETs of `path`, one every 1/`rate` s; prints how many,
    and their wall time (p50, max), as JSON."""
    walls = []
    next_at = time.monotonic()
    for _ in range(window):
        started = time.perf_counter()
        get(port, path)
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
        (
            f"`/metrics`, {args.workers} workers, rendered afresh: the parent's CPU per scrape",
            cell("render_cpu_ms"),
        ),
        (
            "`/metrics` rendered afresh: the renderer child's CPU (10 ms ticks, averaged)",
            cell("renderer_cpu_ms"),
        ),
        ("`/metrics` rendered afresh: wall time p50", cell("render_p50_ms")),
        (
            f"`/metrics`, {args.scrapes} back to back (the render reused): parent CPU per scrape",
            cell("metrics_cpu_ms"),
        ),
        (
            "`/metrics` back to back: wall time p50, size",
            f"{cell('metrics_p50_ms')}, "
            f"{statistics.median(r['metrics_bytes'] for r in results) / 1024:.0f} KiB",
        ),
        ("`/healthz`: parent CPU per request", cell("healthz_cpu_ms")),
        (
            f"idle {args.idle:.0f} s, endpoint on, no client: parent CPU",
            cell("idle_cpu_ms", digits=3),
        ),
    ]
    labels = {
        "none": "no scraping",
        "metrics": f"while scraping /metrics {args.rate:.0f}/s",
        "livez": f"while scraping /livez {args.rate:.0f}/s (control)",
        "static": f"while scraping a static copy of /metrics {args.rate:.0f}/s (control)",
    }
    modes = [mode for mode in labels if f"restart_{mode}_ms" in results[0]]
    for operation, what in (
        ("restart", "restart (SIGKILL → replacement ready)"),
        ("reload", f"reload (SIGHUP → {args.workers} resets)"),
    ):
        rows += [
            (f"{what}, {labels[mode]}", cell(f"{operation}_{mode}_ms", digits=0)) for mode in modes
        ]
    rows += [
        (
            f"scrapes {labels[mode]}; their wall p50, max",
            f"{statistics.median(r[f'scrapes_{mode}'] for r in results):.0f}; "
            f"{cell(f'scrape_p50_{mode}_ms')}, {cell(f'scrape_max_{mode}_ms', digits=0)}",
        )
        for mode in modes
        if mode != "none"
    ]
    lines = [
        f"| {args.workers} workers, {len(results)} rounds | median (min–max) |",
        "| --- | --- |",
    ]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
