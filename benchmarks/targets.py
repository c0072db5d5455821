"""The supervisors under test: one class per target, each knowing how to start it.

Every target is started in a session of its own (so cotyledon's `killpg(0, ...)` stays
inside it) with its output in a log file, and is signalled by pid.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, ClassVar

import psutil

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mgr-supervisor-bench"
SUPERVISORD_REQUIREMENT = "supervisor>=4.2,<5"
VENV_TIMEOUT_SECONDS = 600
PACKAGES = ("supervisor", "workers", "benchmarks")
# A PostgreSQL URL the harness may create and drop databases through (CREATEDB), e.g.
# postgresql+psycopg://postgres@127.0.0.1:5432/test: enables the mgr-supervisor-pg target.
DB_URL_ENV = "MGR_BENCH_DB_URL"
BASELINE_ENV = "MGR_BENCH_BASELINE"
TRANSPORT_URL_ENV = "MGR_BENCH_TRANSPORT_URL"


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

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this target cannot run here (the run skips it), or None."""
        return None

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

    def descendants(self) -> list[psutil.Process]:
        """The parent's live descendants."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [c for c in children if _running(c)]

    def workers(self) -> list[psutil.Process]:
        """The live descendants that run a manager (not a helper such as a recorder)."""
        return [p for p in self.descendants() if not self.is_helper(p)]

    def is_helper(self, process: psutil.Process) -> bool:
        return False

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

    def discard(self) -> None:
        """Release what the launch holds outside its workdir; called once every process of
        the launch is gone."""

    def keep_log(self) -> Path:
        """Copy the log out of the temporary directory, for a run that went wrong."""
        kept = CACHE / "logs" / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}-{self.pid}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.log, kept)
        return kept


def is_recorder(process: psutil.Process) -> bool:
    """mgr-supervisor's service recorder: a child that writes the records, no worker."""
    try:
        return " ".join(process.cmdline()).strip() == "mgr-supervisor: recorder"
    except psutil.Error:
        return False


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class MgrSupervisor(Target):
    """This repo: `mgr-supervisor --config-file F` running `BenchManager`."""

    name = "mgr-supervisor"
    reload_in_place = True

    def script(self) -> Path:
        script = Path(sys.executable).with_name("mgr-supervisor")
        if not script.exists():
            raise RuntimeError(f"{script} missing: pip install -e {REPO} into this virtualenv")
        return script

    def command(self, workers: int, probe: str) -> list[str]:
        script = self.script()
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
                periodic_interval_max = 60
                """
            )
            + self.extra_config()
        )
        return [str(script), "--config-file", str(config)]

    def reload(self) -> None:
        """As an operator reloads: one mutable value changed in the file (written
        atomically), then SIGHUP, so every worker has something to apply."""
        config = self.workdir / "mgr-supervisor.conf"
        text = config.read_text()
        old, new = "periodic_interval_max = 60", "periodic_interval_max = 61"
        if old not in text:
            old, new = new, old
        staged = config.with_suffix(".staged")
        staged.write_text(text.replace(old, new))
        os.replace(staged, config)
        super().reload()

    def extra_config(self) -> str:
        """More sections for the config file; by default none (SQLite in state_path)."""
        return ""

    def is_helper(self, process: psutil.Process) -> bool:
        return is_recorder(process)


class MgrSupervisorRpc(MgrSupervisor):
    """The same with RPC on: each worker consumes its topic before it is ready. Needs
    MGR_BENCH_TRANSPORT_URL (a RabbitMQ); each launch has an exchange of its own, deleted
    with its queues after their last consumer."""

    name = "mgr-supervisor-rpc"

    @classmethod
    def unavailable(cls) -> str | None:
        if not os.environ.get(TRANSPORT_URL_ENV):
            return f"set {TRANSPORT_URL_ENV}, e.g. rabbit://guest:guest@127.0.0.1:5672/"
        return None

    def extra_config(self) -> str:
        return textwrap.dedent(
            f"""
            [DEFAULT]
            transport_url = {os.environ[TRANSPORT_URL_ENV]}
            control_exchange = mgrbench_{secrets.token_hex(4)}

            [oslo_messaging_rabbit]
            amqp_auto_delete = true
            """
        )


class MgrSupervisorBaseline(MgrSupervisor):
    """Another commit's mgr-supervisor in the same run, for a before/after that the
    machine's drift between two runs cannot blur: MGR_BENCH_BASELINE=VENV:CHECKOUT, a
    virtualenv with that commit installed and its checkout (for `benchmarks.*`)."""

    name = "mgr-supervisor-baseline"

    @classmethod
    def unavailable(cls) -> str | None:
        if not os.environ.get(BASELINE_ENV):
            return f"set {BASELINE_ENV}=VENV:CHECKOUT (another commit, installed in VENV)"
        return None

    def _baseline(self) -> tuple[Path, Path]:
        venv, _, checkout = os.environ[BASELINE_ENV].partition(":")
        return Path(venv), Path(checkout)

    def script(self) -> Path:
        return self._baseline()[0] / "bin" / "mgr-supervisor"

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self._baseline()[1])}


class MgrSupervisorPg(MgrSupervisor):
    """The same, with its service records on PostgreSQL: `[database] connection` in a
    database of its own per launch, created before the launch and dropped after it.

    Needs MGR_BENCH_DB_URL (any database of the server; the harness connects to it only to
    create and drop its own). The schema is created before the launch too (not timed), so
    startup is a start on an existing database, as the SQLite target's later launches are.
    """

    name = "mgr-supervisor-pg"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        # Before the launch, so that neither the CREATE DATABASE nor the schema is timed.
        self.database = ScratchDatabase(_bench_db_url())
        self.database.create()
        subprocess.run(
            [
                str(self.script().with_name("mgr-supervisor-manage")),
                "--config-file",
                str(self._database_config()),
                "db",
                "sync",
            ],
            check=True,
            capture_output=True,
            timeout=VENV_TIMEOUT_SECONDS,
        )

    def _database_config(self) -> Path:
        config = self.workdir / "database.conf"
        config.write_text(self.extra_config())
        return config

    @classmethod
    def unavailable(cls) -> str | None:
        url = os.environ.get(DB_URL_ENV)
        if not url:
            return (
                f"set {DB_URL_ENV} to a PostgreSQL URL, e.g. "
                "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            )
        return ScratchDatabase(url).unreachable()

    def extra_config(self) -> str:
        return f"\n[database]\nconnection = {self.database.url}\n"

    def discard(self) -> None:
        self.database.drop()


class MgrSupervisorPgBaseline(MgrSupervisorBaseline, MgrSupervisorPg):
    """The baseline commit with its records on PostgreSQL: a before/after of a change to
    the PostgreSQL start in one run (MGR_BENCH_BASELINE and MGR_BENCH_DB_URL)."""

    name = "mgr-supervisor-pg-baseline"

    @classmethod
    def unavailable(cls) -> str | None:
        return MgrSupervisorBaseline.unavailable() or MgrSupervisorPg.unavailable()


def _bench_db_url() -> str:
    url = os.environ.get(DB_URL_ENV)
    if not url:
        raise RuntimeError(f"{DB_URL_ENV} is not set")
    return url


class ScratchDatabase:
    """A PostgreSQL database of one launch, `mgrbench_<pid>_<n>`, so launches never meet.

    Created and dropped through an AUTOCOMMIT connection to the database of `admin_url`;
    the drop is `WITH (FORCE)`, so a connection a killed worker left cannot keep it.
    """

    _numbers = itertools.count(1)

    def __init__(self, admin_url: str) -> None:
        import sqlalchemy as sa  # only the PostgreSQL targets pay for it

        self._admin = sa.engine.make_url(admin_url)
        if self._admin.get_backend_name() != "postgresql":
            raise ValueError(f"{DB_URL_ENV}: a postgresql:// URL is needed")
        self.name = f"mgrbench_{os.getpid()}_{next(self._numbers)}"
        self.url = self._admin.set(database=self.name).render_as_string(hide_password=False)
        self._created = False

    def _execute(self, statement: str, **params: Any) -> Any:
        """Run one statement on the admin database; its first column of its first row."""
        import sqlalchemy as sa

        engine = sa.create_engine(
            self._admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        try:
            with engine.connect() as conn:
                result = conn.execute(sa.text(statement), params)
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()

    def backend_pids(self) -> list[int]:
        """The server processes of the sessions open on this database now (pg_stat_activity)."""
        pids = self._execute(
            "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE datname = :name",
            name=self.name,
        )
        return list(pids)

    def unreachable(self) -> str | None:
        """Why the server cannot be used (without the password), or None."""
        try:
            self._execute("SELECT 1")
        except Exception as exc:
            where = self._admin.render_as_string(hide_password=True)
            return f"cannot connect to {where}: {type(exc).__name__}: {_first_line(exc)}"
        return None

    def create(self) -> None:
        self._execute(f'CREATE DATABASE "{self.name}"')
        self._created = True

    def drop(self) -> None:
        if self._created:
            self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._created = False

    def __enter__(self) -> ScratchDatabase:
        self.create()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.drop()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


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
    cls.name: cls
    for cls in (
        MgrSupervisor,
        MgrSupervisorRpc,
        MgrSupervisorBaseline,
        MgrSupervisorPg,
        MgrSupervisorPgBaseline,
        Cotyledon,
        OsloEventlet,
        OsloThreading,
        Supervisord,
    )
}
# What runs without --targets: the peers of docs/benchmarks.md. The mgr-supervisor-* variants
# need a PostgreSQL server (MGR_BENCH_DB_URL) or another commit (MGR_BENCH_BASELINE) and are
# asked for by name.
DEFAULT_TARGETS = [name for name in TARGETS if not name.startswith("mgr-supervisor-")]
