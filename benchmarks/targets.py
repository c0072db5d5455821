"""The supervisors under test: one class per target, each knowing how to start it.

Every target is started in a session of its own (so cotyledon's `killpg(0, ...)` stays
inside it) with its output in a log file, and is signalled by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import psutil

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mgr-supervisor-bench"
SUPERVISORD_REQUIREMENT = "supervisor>=4.2,<5"
VENV_TIMEOUT_SECONDS = 600
PACKAGES = ("supervisor", "workers", "benchmarks")


def compile_sources() -> None:
    """Byte-compile the checkout's packages, as an install would.

    Under PYTHONDONTWRITEBYTECODE (tox sets it) every launch would otherwise compile
    supervisor/, workers/ and benchmarks/ from source again, ~25 ms a start that the
    peers, installed from wheels, do not pay. The pycs land in gitignored __pycache__/.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(REPO / p) for p in PACKAGES)],
        check=True,
        timeout=VENV_TIMEOUT_SECONDS,
    )


class Target:
    """One supervisor: start it with N workers, signal it, list its workers."""

    name: ClassVar[str]
    # True: SIGHUP resets each worker in place; False: the workers are replaced.
    reload_in_place: ClassVar[bool]

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pidfd = -1

    def command(self, workers: int, probe: str) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Our targets import `benchmarks.*` from the checkout."""
        return {**os.environ, "PYTHONPATH": str(REPO)}

    @property
    def pid(self) -> int:
        assert self.process is not None, "target not started"
        return self.process.pid

    def start(self, workers: int, probe: str) -> None:
        """Launch the parent; returns at once."""
        command = self.command(workers, probe)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfd = os.pidfd_open(self.process.pid)

    def workers(self) -> list[psutil.Process]:
        """The parent's live descendants."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [c for c in children if _running(c)]

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def reload(self) -> None:
        self.signal(signal.SIGHUP)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def close(self) -> int | None:
        """Forget the parent (killed by the caller); return its exit status if it exited."""
        status = None
        if self.process is not None:
            try:
                status = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                status = None
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        return status

    def keep_log(self) -> Path:
        """Copy the log out of the temporary directory, for a run that went wrong."""
        kept = CACHE / "logs" / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}-{self.pid}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.log, kept)
        return kept


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class MgrSupervisor(Target):
    """This repo: `mgr-supervisor --config-file F` running `BenchManager`."""

    name = "mgr-supervisor"
    reload_in_place = True

    def command(self, workers: int, probe: str) -> list[str]:
        script = Path(sys.executable).with_name("mgr-supervisor")
        if not script.exists():
            raise RuntimeError(f"{script} missing: pip install -e {REPO} into this virtualenv")
        config = self.workdir / "mgr-supervisor.conf"
        config.write_text(
            textwrap.dedent(
                f"""\
                [DEFAULT]
                use_stderr = true
                state_path = {self.workdir}/state

                [supervisor]
                enabled_managers = bench

                [manager:bench]
                manager = benchmarks.bench_manager.BenchManager
                workers = {workers}
                probe = {probe}
                """
            )
        )
        return [str(script), "--config-file", str(config)]


class Cotyledon(Target):
    """Raw `cotyledon.ServiceManager`: reloads each worker in place (`Service.reload`)."""

    name = "cotyledon"
    reload_in_place = True

    def command(self, workers: int, probe: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.peers", self.name, str(workers), probe]


class OsloEventlet(Cotyledon):
    """oslo.service `ProcessLauncher`, eventlet backend: SIGHUP restarts the workers."""

    name = "oslo-eventlet"
    reload_in_place = False


class OsloThreading(Cotyledon):
    """oslo.service `ProcessLauncher`, threading backend (cotyledon): SIGHUP restarts too."""

    name = "oslo-threading"
    reload_in_place = False


class Supervisord(Target):
    """supervisord 4 in a virtualenv of its own (its `supervisor` package clashes with ours)."""

    name = "supervisord"
    reload_in_place = False
    venv = CACHE / "supervisord"

    def environment(self) -> dict[str, str]:
        """supervisord must not see our `supervisor` package: PYTHONPATH only for programs."""
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        return env

    @classmethod
    def ensure_installed(cls) -> Path:
        """Create the virtualenv on first use; return supervisord's path."""
        supervisord = cls.venv / "bin" / "supervisord"
        if not supervisord.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", str(cls.venv)],
                check=True,
                timeout=VENV_TIMEOUT_SECONDS,
            )
            subprocess.run(
                [str(cls.venv / "bin" / "pip"), "install", "-q", SUPERVISORD_REQUIREMENT],
                check=True,
                timeout=VENV_TIMEOUT_SECONDS,
            )
        return supervisord

    def command(self, workers: int, probe: str) -> list[str]:
        config = self.workdir / "supervisord.conf"
        config.write_text(
            textwrap.dedent(
                f"""\
                [supervisord]
                nodaemon = true
                logfile = {self.workdir}/supervisord.log
                pidfile = {self.workdir}/supervisord.pid
                childlogdir = {self.workdir}

                [program:bench]
                command = {sys.executable} -m benchmarks.program {probe}
                environment = PYTHONPATH="{REPO}"
                process_name = %(program_name)s_%(process_num)03d
                numprocs = {workers}
                autorestart = true
                startsecs = 1
                stdout_logfile = NONE
                stderr_logfile = NONE
                """
            )
        )
        return [str(self.ensure_installed()), "-c", str(config)]


TARGETS: dict[str, type[Target]] = {
    cls.name: cls for cls in (MgrSupervisor, Cotyledon, OsloEventlet, OsloThreading, Supervisord)
}
