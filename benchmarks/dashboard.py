"""Issue 13: the picture in doc/source/operations/metrics.md: what `/metrics` shows of a
chaos run, scraped once a second as Prometheus would.

    python benchmarks/dashboard.py collect [--seconds 60] [--seed N] [--output run.json]
    PYTHON_WITH_MATPLOTLIB benchmarks/dashboard.py plot run.json docs/http-dashboard.png

`collect` starts mgr-supervisor with three managers of `BenchManager` and `http_listen` on,
then for --seconds SIGKILLs a random worker every 0.5-1.5 s (so some die before start_secs:
failed starts, BACKOFF) and sends SIGHUP at half time, while it scrapes `/metrics` every
second and keeps, per scrape, each manager's state, restarts and ready workers, each worker's
RSS and the parent's. `plot` draws them with matplotlib, which is no dependency of the project:
install it anywhere (`python3 -m venv /tmp/plot && /tmp/plot/bin/pip install matplotlib`); it
reads only the JSON. Every process `collect` started is gone before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MANAGERS = {"api": 4, "conductor": 3, "scheduler": 2}
STATES = ("RUNNING", "STARTING", "BACKOFF", "FATAL", "STOPPING", "STOPPED")
COLOURS = {
    "RUNNING": "#4caf50",
    "STARTING": "#ffc107",
    "BACKOFF": "#ff7043",
    "FATAL": "#b71c1c",
    "STOPPING": "#9e9e9e",
    "STOPPED": "#616161",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    collect = commands.add_parser("collect", help="run the chaos and scrape /metrics")
    collect.add_argument("--seconds", type=float, default=60.0)
    collect.add_argument("--seed", type=int, default=13)
    collect.add_argument("--output", type=Path, default=Path("http-dashboard-run.json"))
    plot = commands.add_parser("plot", help="draw a collected run (needs matplotlib)")
    plot.add_argument("run", type=Path)
    plot.add_argument("picture", type=Path)
    args = parser.parse_args(argv)
    if args.command == "plot":
        return draw(json.loads(args.run.read_text()), args.picture)
    from benchmarks import procs

    return procs.run_harness(lambda: _collect(args))


def _collect(args: argparse.Namespace) -> int:
    from benchmarks import procs
    from benchmarks.http_endpoint import HttpSupervisor, get
    from benchmarks.probe import Probe, first_by_pid, nth

    class ChaosSupervisor(HttpSupervisor):
        def command(self, workers: int, probe: str) -> list[str]:
            config = self.workdir / "mgr-supervisor.conf"
            sections = "".join(
                textwrap.dedent(
                    f"""
                    [manager:{name}]
                    manager = benchmarks.bench_manager.BenchManager
                    workers = {count}
                    probe = {probe}
                    periodic_interval_max = 60
                    start_secs = {3 if name == "scheduler" else 1}
                    restart_backoff_initial = 2
                    start_retries = -1
                    """
                )
                for name, count in MANAGERS.items()
            )
            config.write_text(
                textwrap.dedent(
                    f"""\
                    [DEFAULT]
                    use_stderr = true
                    state_path = {self.workdir}/state

                    [supervisor]
                    enabled_managers = {", ".join(MANAGERS)}
                    http_listen = 127.0.0.1:{self.port}
                    """
                )
                + sections
            )
            return [str(self.script()), "--config-file", str(config)]

    rng = random.Random(args.seed)
    probe = Probe()
    samples: list[dict[str, Any]] = []
    events: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory(prefix="mgr-dashboard-") as tmp:
        target = ChaosSupervisor(Path(tmp))
        try:
            since = probe.mark()
            target.start(0, probe.address)
            total = sum(MANAGERS.values())
            met, _ = probe.wait(
                since, lambda evs: nth(first_by_pid(evs, "ready", (target.pid,)), total), 60
            )
            if met is None:
                raise RuntimeError("not every worker ready within 60 s")
            started = time.monotonic()
            next_scrape = next_kill = started
            reloaded = False
            while (now := time.monotonic()) - started < args.seconds:
                if now >= next_scrape:
                    body = get(target.port, "/metrics").decode()
                    samples.append({"t": now - started, **_sample(body)})
                    next_scrape += 1.0
                if now >= next_kill:
                    victim = rng.choice([p.pid for p in target.workers()])
                    os.kill(victim, signal.SIGKILL)
                    events.append((now - started, "SIGKILL"))
                    next_kill = now + rng.uniform(0.5, 1.5)
                if not reloaded and now - started >= args.seconds / 2:
                    target.reload()
                    events.append((now - started, "SIGHUP"))
                    reloaded = True
                time.sleep(max(0.0, min(next_scrape, next_kill) - time.monotonic()))
        finally:
            if target.process is not None and target.process.poll() is None:
                target.stop()
                procs.wait_exit(target.pidfd, 30)
            target.close()
            procs.kill_all()
            probe.close()
    args.output.write_text(json.dumps({"samples": samples, "events": events}, indent=1))
    print(f"{len(samples)} scrapes, {len(events)} signals: {args.output}")
    return 0


def _sample(text: str) -> dict[str, Any]:
    """What the picture shows, from one scrape, through prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    sample: dict[str, Any] = {"state": {}, "restarts": {}, "ready": {}, "rss": {}, "parent": 0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if s.name == "mgr_supervisor_manager_state" and s.value == 1:
                sample["state"][labels["manager"]] = labels["state"]
            elif s.name == "mgr_supervisor_manager_restarts_total":
                sample["restarts"][labels["manager"]] = s.value
            elif s.name == "mgr_supervisor_manager_workers_ready":
                sample["ready"][labels["manager"]] = s.value
            elif s.name == "mgr_supervisor_worker_resident_memory_bytes":
                sample["rss"][f"{labels['manager']}({labels['worker']})"] = s.value
            elif s.name == "mgr_supervisor_process_resident_memory_bytes":
                sample["parent"] = s.value
    return sample


def draw(run: dict[str, Any], picture: Path) -> int:
    """Three panels over time: each manager's state, restarts, and the RSS of every process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = run["samples"]
    times = [s["t"] for s in samples]
    managers = list(samples[0]["state"])
    figure, (states, restarts, rss) = plt.subplots(
        3, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [1, 1.4, 1.6]}
    )
    figure.suptitle(
        "mgr-supervisor /metrics, scraped every second: a worker SIGKILLed every 0.5-1.5 s",
        fontsize=11,
    )
    for row, name in enumerate(managers):
        for i, s in enumerate(samples):
            end = times[i + 1] if i + 1 < len(samples) else times[i] + 1
            state = s["state"].get(name, "STOPPED")
            states.broken_barh([(s["t"], end - s["t"])], (row - 0.4, 0.8), color=COLOURS[state])
    states.set_yticks(range(len(managers)), managers)
    states.set_title("mgr_supervisor_manager_state", fontsize=9, loc="left")
    states.legend(
        handles=[
            matplotlib.patches.Patch(color=COLOURS[s], label=s)
            for s in ("RUNNING", "STARTING", "BACKOFF")
        ],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        ncols=3,
        frameon=False,
    )
    for name in managers:
        restarts.step(
            times, [s["restarts"].get(name, 0) for s in samples], where="post", label=name
        )
    restarts.set_title("mgr_supervisor_manager_restarts_total", fontsize=9, loc="left")
    restarts.legend(fontsize=8, loc="upper left")
    for at, what in run["events"]:
        if what == "SIGHUP":
            for axis in (states, restarts, rss):
                axis.axvline(at, color="#1565c0", linestyle="--", linewidth=1)
            restarts.annotate(
                "SIGHUP",
                (at, 0),
                fontsize=8,
                color="#1565c0",
                xytext=(3, 3),
                textcoords="offset points",
            )
    workers = sorted({w for s in samples for w in s["rss"]})
    for worker in workers:
        values = [s["rss"].get(worker, float("nan")) / 2**20 for s in samples]
        rss.plot(times, values, linewidth=0.8, color="#90a4ae")
    rss.plot(
        times,
        [s["parent"] / 2**20 for s in samples],
        linewidth=2,
        color="#1565c0",
        label="parent (mgr_supervisor_process_resident_memory_bytes)",
    )
    rss.plot(
        [],
        [],
        linewidth=0.8,
        color="#90a4ae",
        label="each worker (mgr_supervisor_worker_resident_memory_bytes)",
    )
    rss.set_ylabel("MiB")
    rss.set_title("resident memory", fontsize=9, loc="left")
    rss.legend(fontsize=8, loc="lower right")
    rss.set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(picture, dpi=90)
    print(f"wrote {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
