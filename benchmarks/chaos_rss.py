"""Issue 14, item 1: does the supervisor parent's memory grow under churn?

    python benchmarks/chaos_rss.py [--minutes 10] [--workers 8] [--seed N]

Starts mgr-supervisor with three managers of `benchmarks.bench_manager.BenchManager`
(--workers each) in a temporary state_path, its records in SQLite there. Once every worker
reported `ready`, for --minutes: SIGKILLs a random worker every 0.5-1 s, SIGHUPs the parent
every ~5 s, and every ~15 s rewrites the config with another worker count for one manager (a
resize) before its SIGHUP. The parent's RSS and USS (psutil) are sampled every 10 s; the
first sample after a 30 s warm-up is the baseline. Prints a markdown table and exits 0 if the
parent stayed up. Then SIGTERM; every process the run started is gone before it exits
(killed by pid otherwise), Ctrl-C included.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import procs, targets
from benchmarks.probe import Probe, first_by_pid, nth
from benchmarks.targets import MgrSupervisor

MANAGERS = ("chaos_a", "chaos_b", "chaos_c")
KILL_EVERY = (0.5, 1.0)  # seconds between two SIGKILLs, uniform
RELOAD_EVERY = (4.0, 6.0)
RESIZE_EVERY = (13.0, 17.0)
SAMPLE_EVERY = 10.0
WARMUP_SECONDS = 30.0
READY_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0  # after the chaos, for every manager to be RUNNING at its size again
STOP_TIMEOUT = 60.0


class ChaosSupervisor(MgrSupervisor):
    """mgr-supervisor with three BenchManager managers whose sizes the run changes."""

    name = "chaos-rss"

    def __init__(self, workdir: Path, counts: dict[str, int]) -> None:
        super().__init__(workdir)
        self.counts = counts
        self.config = workdir / "mgr-supervisor.conf"
        self.probe = ""

    def command(self, workers: int, probe: str) -> list[str]:
        script = Path(sys.executable).with_name("mgr-supervisor")
        if not script.exists():
            raise RuntimeError(f"{script} missing: pip install -e {targets.REPO} here")
        self.probe = probe
        self.write_config()
        return [str(script), "--config-file", str(self.config)]

    def write_config(self) -> None:
        """The config for `self.counts`; written whole, then renamed over the old one."""
        text = textwrap.dedent(
            f"""\
            [DEFAULT]
            use_stderr = true
            state_path = {self.workdir}/state

            [supervisor]
            enabled_managers = {", ".join(self.counts)}
            """
        )
        for name, count in self.counts.items():
            text += textwrap.dedent(
                f"""
                [manager:{name}]
                manager = benchmarks.bench_manager.BenchManager
                workers = {count}
                probe = {self.probe}
                """
            )
        staged = self.config.with_suffix(".new")
        staged.write_text(text)
        staged.replace(self.config)


@dataclasses.dataclass
class Sample:
    at: float  # seconds since the chaos began
    rss: int
    uss: int
    fds: int
    workers: int


@dataclasses.dataclass
class Figures:
    minutes: float
    workers: int
    seed: int
    samples: list[Sample] = dataclasses.field(default_factory=list)
    kills: int = 0
    reloads: int = 0  # SIGHUP with the config unchanged
    resizes: int = 0  # config rewritten, then SIGHUP
    parent_up: bool = False
    parent_exit_status: int | None = None  # if it died during the chaos
    settled: str = "—"
    stop_exit_status: int | None = None
    left_after_stop: int | None = None
    errors_in_log: int = 0
    log_kept_at: str | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def baseline(self) -> Sample | None:
        return next((s for s in self.samples if s.at >= WARMUP_SECONDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    return procs.run_harness(lambda: _run_chaos(args))


def _run_chaos(args: argparse.Namespace) -> int:
    targets.compile_sources()
    figures = Figures(args.minutes, args.workers, args.seed)
    with tempfile.TemporaryDirectory(prefix="mgr-chaos-") as tmp:
        run(Path(tmp), figures)
    from benchmarks.run import describe_machine

    print(describe_machine())
    print(render(figures))
    return 0 if figures.parent_up else 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the chaos")
    parser.add_argument("--workers", type=int, default=8, help="workers per manager, at first")
    parser.add_argument("--seed", type=int, default=None, help="for the random choices")
    args = parser.parse_args(argv)
    if args.minutes * 60 <= WARMUP_SECONDS:
        parser.error(f"--minutes must exceed the {WARMUP_SECONDS:.0f} s warm-up")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    return args


def run(workdir: Path, figures: Figures) -> None:
    counts = dict.fromkeys(MANAGERS, figures.workers)
    target = ChaosSupervisor(workdir, counts)
    probe = Probe()
    try:
        since = probe.mark()
        target.start(figures.workers, probe.address)
        total = len(MANAGERS) * figures.workers
        met, events = probe.wait(
            since, lambda evs: nth(first_by_pid(evs, "ready", (target.pid,)), total), READY_TIMEOUT
        )
        if met is None:
            ready = len(first_by_pid(events, "ready", (target.pid,)))
            figures.problems.append(f"startup: {ready}/{total} workers ready")
            figures.parent_up = target.process is not None and target.process.poll() is None
            return
        _chaos(target, figures, random.Random(figures.seed))
        if figures.parent_up:
            figures.settled = _settled(target)
            _stop(target, figures)
    finally:
        if target.process is not None and target.process.poll() is None:
            target.kill()
        target.close()
        figures.left_after_stop = len(procs.descendants())
        procs.kill_all()
        probe.close()
        _check_log(target, figures)


def _chaos(target: ChaosSupervisor, figures: Figures, rng: random.Random) -> None:
    """Kill, reload and resize until the time is up or the parent is gone; sample meanwhile."""
    parent = psutil.Process(target.pid)
    began = time.monotonic()
    end = began + figures.minutes * 60
    next_kill = began + rng.uniform(*KILL_EVERY)
    next_reload = began + rng.uniform(*RELOAD_EVERY)
    next_resize = began + rng.uniform(*RESIZE_EVERY)
    next_sample = began + SAMPLE_EVERY
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_kill:
            workers = target.workers()
            if workers:
                _kill(rng.choice(workers))
                figures.kills += 1
            next_kill = now + rng.uniform(*KILL_EVERY)
        if now >= next_resize:
            name = rng.choice(MANAGERS)
            sizes = [n for n in range(1, 2 * figures.workers + 1) if n != target.counts[name]]
            target.counts[name] = rng.choice(sizes or [1])
            target.write_config()
            target.reload()
            figures.resizes += 1
            next_resize = now + rng.uniform(*RESIZE_EVERY)
            next_reload = now + rng.uniform(*RELOAD_EVERY)
        elif now >= next_reload:
            target.reload()
            figures.reloads += 1
            next_reload = now + rng.uniform(*RELOAD_EVERY)
        if now >= next_sample:
            figures.samples.append(_sample(target, parent, now - began))
            next_sample += SAMPLE_EVERY
        wake = min(next_kill, next_reload, next_resize, next_sample, end)
        # Sleeps on the parent's pidfd: its death ends the chaos at once.
        if procs.wait_exit(target.pidfd, wake - time.monotonic()) is not None:
            figures.parent_exit_status = target.process.wait() if target.process else None
            figures.problems.append(
                f"the parent exited {time.monotonic() - began:.1f} s into the chaos "
                f"(status {figures.parent_exit_status})"
            )
            return
    figures.parent_up = parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE
    if figures.parent_up:
        figures.samples.append(_sample(target, parent, time.monotonic() - began))


def _kill(worker: psutil.Process) -> None:
    """SIGKILL by pid; psutil first checks the pid is still that process."""
    try:
        worker.send_signal(signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass


def _sample(target: ChaosSupervisor, parent: psutil.Process, at: float) -> Sample:
    info = parent.memory_full_info()
    return Sample(at, info.rss, info.uss, parent.num_fds(), len(target.workers()))


def _settled(target: ChaosSupervisor) -> str:
    """After the chaos: whether every manager gets back to RUNNING at its last size."""
    from benchmarks.reports import ctl

    wanted = dict(target.counts)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last = "no answer from mgr-supervisorctl status"
    while time.monotonic() < deadline:
        status, answer = ctl(target.config, "status")
        if status == 0 and answer is not None:
            # Per manager: its state, its workers ready and not stopping, all its workers.
            shown = {
                m["name"]: (
                    m["state"],
                    sum(1 for w in m["workers"] if w["ready"] and not w["stopping"]),
                    len(m["workers"]),
                )
                for m in answer["managers"]
            }
            last = ", ".join(
                f"{name} {state} {ready}/{wanted.get(name, '?')} ready"
                for name, (state, ready, _) in shown.items()
            )
            if shown == {name: ("RUNNING", n, n) for name, n in wanted.items()}:
                return f"yes, {time.monotonic() - deadline + SETTLE_TIMEOUT:.1f} s after: {last}"
        time.sleep(0.5)
    return f"NO, after {SETTLE_TIMEOUT:.0f} s: {last}"


def _stop(target: ChaosSupervisor, figures: Figures) -> None:
    target.stop()
    if procs.wait_exit(target.pidfd, STOP_TIMEOUT) is None:
        figures.problems.append(f"the parent still ran {STOP_TIMEOUT:.0f} s after SIGTERM")
        return
    figures.stop_exit_status = target.close()


def _check_log(target: ChaosSupervisor, figures: Figures) -> None:
    """Count the log's errors and tracebacks; keep the log if there are any."""
    try:
        lines = target.log.read_text(errors="replace").splitlines()
    except OSError:
        return
    bad = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
    figures.errors_in_log = len(bad)
    figures.problems += bad[:5]
    if bad or not figures.parent_up:
        figures.log_kept_at = str(target.keep_log())


def render(figures: Figures) -> str:
    """The summary table, then every sample."""
    base = figures.baseline
    final = figures.samples[-1] if figures.parent_up and figures.samples else None
    after = [s for s in figures.samples if base is not None and s.at >= base.at]

    def mib(value: int | None) -> str:
        return "—" if value is None else f"{value / 2**20:.1f} MiB"

    def diff(a: int | None, b: int | None) -> str:
        return "—" if a is None or b is None else f"{(a - b) / 2**20:+.1f} MiB"

    def get(sample: Sample | None, field: str) -> int | None:
        return None if sample is None else getattr(sample, field)

    rss_max = max((s.rss for s in after), default=None)
    uss_max = max((s.uss for s in after), default=None)
    rows = [
        f"chaos for {figures.minutes:g} min, {len(MANAGERS)} managers of "
        f"{figures.workers} workers at first, seed {figures.seed}",
        "",
        "| parent | RSS | USS |",
        "| --- | --- | --- |",
        f"| baseline ({WARMUP_SECONDS:.0f} s in, at {get(base, 'at') or 0:.0f} s) "
        f"| {mib(get(base, 'rss'))} | {mib(get(base, 'uss'))} |",
        f"| final (at {get(final, 'at') or 0:.0f} s) "
        f"| {mib(get(final, 'rss'))} | {mib(get(final, 'uss'))} |",
        f"| max from the baseline on | {mib(rss_max)} | {mib(uss_max)} |",
        f"| final − baseline | {diff(get(final, 'rss'), get(base, 'rss'))} "
        f"| {diff(get(final, 'uss'), get(base, 'uss'))} |",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| workers SIGKILLed | {figures.kills} |",
        f"| reloads (SIGHUP, config unchanged) | {figures.reloads} |",
        f"| resizes (config rewritten, then SIGHUP) | {figures.resizes} |",
        f"| parent stayed up | {'yes' if figures.parent_up else 'NO'} |",
        f"| parent fds, baseline → final | {get(base, 'fds')} → {get(final, 'fds')} |",
        f"| managers RUNNING at their size after the chaos | {figures.settled} |",
        f"| exit status after SIGTERM | {figures.stop_exit_status} |",
        f"| processes left after stop | {figures.left_after_stop} |",
        f"| ERROR lines and tracebacks in the log | {figures.errors_in_log} |",
    ]
    if figures.log_kept_at:
        rows.append(f"| log kept at | {figures.log_kept_at} |")
    for problem in figures.problems:
        rows.append(f"| problem | {problem} |")
    rows += ["", "| at | RSS | USS | fds | workers |", "| --- | --- | --- | --- | --- |"]
    for s in figures.samples:
        mark = " (baseline)" if s is base else ""
        rows.append(f"| {s.at:.0f} s{mark} | {mib(s.rss)} | {mib(s.uss)} | {s.fds} | {s.workers} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
