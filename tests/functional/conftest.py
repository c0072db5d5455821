"""Runs the real `mgr-supervisor` console script and cleans up every process it made, by pid."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from tests import rpcfixtures

TESTS_DIR = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("mgr-supervisor")
CTL = Path(sys.executable).with_name("mgr-supervisorctl")
RECORDER_TITLE = "mgr-supervisor: recorder"
LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


def render_config(
    event_file: Path,
    managers: dict[str, dict[str, object]],
    default: dict[str, object] | None = None,
    supervisor: dict[str, object] | None = None,
    state_path: str = "/nonexistent",
    database: dict[str, object] | None = None,
    oslo_messaging_rabbit: dict[str, object] | None = None,
    extra: dict[str, dict[str, object]] | None = None,
) -> str:
    """An INI text: EventManager sections writing to `event_file`, unless told otherwise;
    `extra` holds any other sections."""
    sections = {
        "DEFAULT": {
            "graceful_shutdown_timeout": 5,
            "use_stderr": "true",
            "state_path": state_path,
            **(default or {}),
        },
        "supervisor": {"enabled_managers": ", ".join(managers), **(supervisor or {})},
        "database": database or {},
        "oslo_messaging_rabbit": oslo_messaging_rabbit or {},
    }
    sections.update(extra or {})
    for name, options in managers.items():
        sections[f"manager:{name}"] = {
            "manager": "tests.functional.managers.EventManager",
            "event_file": event_file,
            "periodic_interval_max": 1,
            **options,
        }
    return "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in options.items()) + "\n"
        for section, options in sections.items()
    )


class Supervisor:
    """One mgr-supervisor run: its config, its event file, its processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.config_file = tmp_path / "mgr-supervisor.conf"
        self.event_file = tmp_path / "events"
        self.log_file = tmp_path / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seen_pids: set[int] = set()
        # Short: a Unix socket path must fit in 107 bytes.
        self.state_path = tempfile.mkdtemp(prefix="mgrs-")

    def configure(self, managers: dict[str, dict[str, object]], **sections: object) -> None:
        text = render_config(self.event_file, managers, state_path=self.state_path, **sections)
        # Atomically, as configuration management tools write: a reader never sees half.
        staged = self.config_file.with_suffix(".staged")
        staged.write_text(text)
        os.replace(staged, self.config_file)

    def start(self, *args: str, env: dict[str, str] | None = None) -> None:
        """Run it; `env`'s variables come first in its environment, as systemd puts its own
        (NOTIFY_SOCKET among them) before those of the unit."""
        env = {**(env or {}), **os.environ, "PYTHONPATH": str(TESTS_DIR.parent), **(env or {})}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SCRIPT), "--config-file", str(self.config_file), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.tmp_path,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def level_of(self, text: str) -> str:
        """The level of the first log line that says `text` (oslo.log's default format:
        date, time, pid, process name, then the level)."""
        line = next(line for line in self.log().splitlines() if text in line)
        return next(word for word in line.split() if word in LEVELS)

    def events(self) -> list[list[str]]:
        if not self.event_file.exists():
            return []
        lines = [line.split() for line in self.event_file.read_text().splitlines() if line]
        self.seen_pids.update(int(words[0]) for words in lines)
        self.seen_pids.update(int(words[2]) for words in lines if words[1] == "child")
        return lines

    def pids_with(self, event: str) -> list[int]:
        return [int(words[0]) for words in self.events() if words[1] == event]

    def count(self, event: str) -> int:
        return len(self.pids_with(event))

    def wait_for(
        self,
        predicate: Callable[[], object],
        timeout: float = 10,
        what: str = "",
        parent_alive: bool = True,
    ) -> None:
        """Poll `predicate`; give up early if the parent died and `parent_alive` is expected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if parent_alive and self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if predicate():
            return
        pytest.fail(
            f"timed out after {timeout}s waiting for {what or predicate}\n"
            f"events: {self.events()}\nlog:\n{self.log()[-4000:]}"
        )

    def children(self) -> list[psutil.Process]:
        """Every child: the workers and the service recorder."""
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        self.seen_pids.update(child.pid for child in children)
        return children

    def workers(self) -> list[psutil.Process]:
        return [child for child in self.children() if not _is_recorder(child)]

    def recorder(self) -> psutil.Process | None:
        return next((child for child in self.children() if _is_recorder(child)), None)

    def worker_titles(self) -> dict[str, int]:
        titles = {}
        for child in self.workers():
            try:
                titles[" ".join(child.cmdline()).strip()] = child.pid
            except psutil.NoSuchProcess:
                continue
        return titles

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"supervisor still running {timeout}s later\nlog:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 10) -> int:
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def leftovers(self, grace: float = 3.0) -> list[int]:
        """Tracked processes still alive `grace` seconds after the parent is gone."""
        deadline = time.monotonic() + grace
        while True:
            alive = [pid for pid in sorted(self.seen_pids) if _alive(pid)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.05)

    def kill_everything(self) -> None:
        pids = set(self.seen_pids)
        if self.proc is not None:
            pids.add(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc is not None:
            self.proc.wait(5)


def ctl(
    supervisor: Supervisor, *args: str, timeout: float = 40
) -> subprocess.CompletedProcess[str]:
    """`mgr-supervisorctl` as an operator runs it: beside the supervisor's config, so the
    managers it names import (the tests' own, through PYTHONPATH)."""
    return subprocess.run(
        [str(CTL), "--config-file", str(supervisor.config_file), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
    )


T = TypeVar("T")


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Independent calls run together (each ctl is a new interpreter: ~0.5-1 s), their
    results in the order given."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    """A Supervisor whose processes are all gone when the test ends, or the test fails."""
    run = Supervisor(tmp_path)
    yield run
    run.events()
    try:
        if run.proc is not None and run.proc.poll() is None:
            run.workers()
            run.signal(signal.SIGTERM)
            try:
                run.proc.wait(15)
            except subprocess.TimeoutExpired:
                # Where is it stuck? Its stacks land in the log the failure prints.
                run.signal(signal.SIGUSR2)
                time.sleep(0.5)
        left = run.leftovers()
    finally:
        run.kill_everything()
        shutil.rmtree(run.state_path, ignore_errors=True)
    assert not left, f"processes left behind: {left}\nlog:\n{run.log()[-4000:]}"


def _is_recorder(process: psutil.Process) -> bool:
    try:
        return " ".join(process.cmdline()).strip() == RECORDER_TITLE
    except psutil.Error:
        return False


@pytest.fixture
def broker() -> str:
    """The RabbitMQ of `MGR_TEST_TRANSPORT_URL` (skips, or fails under CI=true, without it)."""
    return rpcfixtures.broker_url(dict(os.environ))


@pytest.fixture
def topic(broker: str) -> Iterator[str]:
    """A topic (and exchange) of this test's own, deleted at its end."""
    name = rpcfixtures.unique_topic()
    yield name
    rpcfixtures.delete_exchanges(broker, name, [name])
