"""Benchmark mgr-supervisor against its peers and print the tables of docs/benchmarks.md.

    python benchmarks/run.py [--sizes 8,32,128] [--repeats N] [--targets a,b] [--quick]
    python benchmarks/run.py --scale     # item 4: 256 demo workers start, reload, stop
    MGR_BENCH_DB_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        python benchmarks/run.py --targets mgr-supervisor,mgr-supervisor-pg,cotyledon

Targets run round-robin within each repeat (the starting target rotates), so machine noise
falls on all of them alike. Every process started is killed by pid before the harness exits,
Ctrl-C included. Raw results go to a JSON file under the cache directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import procs, scale, targets
from benchmarks.probe import Probe
from benchmarks.scenarios import Result, measure
from benchmarks.targets import CACHE, DEFAULT_TARGETS, REPO, TARGETS, Supervisord

BASELINE = "cotyledon"
# (field, heading, unit, aggregate): how each Result field is tabulated.
METRICS = [
    ("startup", "Startup: launch → N workers ready", "s", "median"),
    ("restart", "Restart: SIGKILL one worker → its replacement ready", "s", "median"),
    ("reload", "Reload: SIGHUP → every worker reset (or replaced and ready)", "s", "median"),
    ("stop", "Stop: SIGTERM → parent exited and every worker cleaned up", "s", "median"),
    ("orphans", "Orphans after stop (max over repeats)", "", "max"),
    ("idle_cpu", "Idle: parent CPU over 10 s (psutil cpu_times, 10 ms ticks)", "s", "median"),
    ("idle_runtime", "Idle: parent CPU over 10 s (schedstat, ns)", "s", "median"),
    ("pss_mib", "Memory: PSS of parent + workers, fresh", "MiB", "median"),
    (
        "pss_steady_mib",
        "Memory: PSS of parent + workers, after one full collection in each worker",
        "MiB",
        "median",
    ),
    (
        "helpers_pss_steady_mib",
        "Memory: of which helpers (mgr-supervisor's service recorder), after the collections",
        "MiB",
        "median",
    ),
    ("uss_mib", "Memory: USS per worker (median), fresh", "MiB", "median"),
    (
        "uss_steady_mib",
        "Memory: USS per worker (median), after one full collection",
        "MiB",
        "median",
    ),
    ("survivors", "Parent SIGKILLed: workers alive 2 s later (max)", "", "max"),
]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    return procs.run_harness(lambda: _benchmark(args))


def _benchmark(args: argparse.Namespace) -> int:
    targets.compile_sources()
    if args.scale:
        print(describe_machine())
        print(scale.render(scale.check(args.scale_workers)))
        return 0
    results = _run(args)
    procs.kill_leftovers()
    print(describe_machine())
    print(render(results, args.sizes))
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,32,128", help="worker counts (default 8,32,128)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per target and size")
    parser.add_argument(
        "--large-repeats", type=int, default=2, help="runs per target for sizes of 100 and more"
    )
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma-separated, of {', '.join(TARGETS)} (default {','.join(DEFAULT_TARGETS)}); "
        "mgr-supervisor-pg needs MGR_BENCH_DB_URL",
    )
    parser.add_argument("--quick", action="store_true", help="N=8, one repeat")
    parser.add_argument("--scale", action="store_true", help="run the 256-worker scale check")
    parser.add_argument("--scale-workers", type=int, default=256)
    parser.add_argument("--output", type=Path, default=CACHE / "last-run.json")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.targets = [t.strip() for t in args.targets.split(",")]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}; known: {', '.join(TARGETS)}")
    if args.quick:
        args.sizes, args.repeats, args.large_repeats = [8], 1, 1
    if not args.scale:
        for name in list(args.targets):
            reason = TARGETS[name].unavailable()
            if reason is not None:
                print(f"skipping target {name}: {reason}", file=sys.stderr)
                args.targets.remove(name)
        if not args.targets:
            parser.error("no target left to run")
    return args


def _run(args: argparse.Namespace) -> dict[str, dict[int, list[Result]]]:
    results: dict[str, dict[int, list[Result]]] = {
        t: {n: [] for n in args.sizes} for t in args.targets
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mgr-bench-") as tmp:
        workdir = Path(tmp)
        probe = Probe()
        try:
            for size in args.sizes:
                repeats = args.large_repeats if size >= 100 else args.repeats
                for repeat in range(repeats):
                    shift = repeat % len(args.targets)
                    for name in args.targets[shift:] + args.targets[:shift]:
                        result = measure(TARGETS[name], size, probe, workdir)
                        results[name][size].append(result)
                        _progress(name, size, repeat, result, time.monotonic() - started)
        finally:
            if probe.dropped():
                print(f"WARNING: the probe dropped {probe.dropped()} datagram(s)", file=sys.stderr)
            probe.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                t: {n: [dataclasses.asdict(r) for r in rs] for n, rs in by.items()}
                for t, by in results.items()
            },
            indent=1,
        )
    )
    print(f"raw results: {args.output}", file=sys.stderr)
    return results


def _progress(name: str, size: int, repeat: int, result: Result, elapsed: float) -> None:
    figures = ", ".join(
        f"{field} {_fmt(getattr(result, field), unit)}" for field, _, unit, _ in METRICS
    )
    print(f"[{elapsed:6.0f}s] {name} N={size} #{repeat + 1}: {figures}", file=sys.stderr)
    for note in result.notes:
        print(f"    {note}", file=sys.stderr)


def _fmt(value: float | None, unit: str = "s") -> str:
    """Seconds as ms below one second; counts as they are."""
    if value is None:
        return "—"
    if isinstance(value, int) or not unit:
        return str(value)
    if unit != "s":
        return f"{value:.1f} {unit}"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.1f} ms" if value < 0.01 else f"{value * 1000:.0f} ms"


def render(results: dict[str, dict[int, list[Result]]], sizes: list[int]) -> str:
    """Markdown tables: median (min–max) per target and size, and the ratio to cotyledon."""
    out = []
    for field, heading, unit, aggregate in METRICS:
        out.append(f"\n### {heading}\n")
        out.append("| target | " + " | ".join(f"N={n}" for n in sizes) + " |")
        out.append("| --- |" + " --- |" * len(sizes))
        for name, by_size in results.items():
            cells = []
            for size in sizes:
                values = [getattr(r, field) for r in by_size[size]]
                base = [getattr(r, field) for r in results.get(BASELINE, {}).get(size, [])]
                cells.append(_cell(values, base, unit, aggregate, name == BASELINE))
            label = name
            if field == "reload":
                label += " (in place)" if TARGETS[name].reload_in_place else " (restarts)"
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _cell(values: list, base: list, unit: str, aggregate: str, is_base: bool) -> str:
    done = [v for v in values if v is not None]
    missing = len(values) - len(done)
    if not done:
        return "—"
    if aggregate == "max":
        text = str(max(done))
    else:
        median = statistics.median(done)
        text = _fmt(median, unit)
        if len(done) > 1:
            text += f" ({_fmt(min(done), unit)}–{_fmt(max(done), unit)})"
        base_done = [v for v in base if v is not None]
        if base_done and not is_base and statistics.median(base_done) > 0:
            text += f" ×{median / statistics.median(base_done):.2f}"
    if missing:
        text += f" [{len(done)}/{len(values)} runs]"
    return text


def describe_machine() -> str:
    """What the figures were measured on and with, for the doc."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if "model name" in line),
        "?",
    )
    versions = []
    for package in (
        "mgr-supervisor",
        "cotyledon",
        "oslo.service",
        "oslo.config",
        "eventlet",
        "oslo.db",
        "SQLAlchemy",
        "alembic",
        "psycopg",
    ):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    supervisord = Supervisord.venv / "bin" / "supervisord"
    if supervisord.exists():
        versions.append(f"supervisord {_output([str(supervisord), '--version'])}")
    commit = _output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _output(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "supervisor", "workers"]
    )
    return "\n".join(
        [
            f"- machine: {os.cpu_count()} CPUs (nproc), {cpu}, Linux {platform.release()}",
            f"- Python {platform.python_version()}; {', '.join(versions)}",
            f"- mgr-supervisor at commit {commit}"
            + (" with uncommitted changes in supervisor/ or workers/" if dirty else ""),
        ]
    )


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
