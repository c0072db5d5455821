"""Real databases for the tests: a SQLite file, or PostgreSQL from `MGR_TEST_DB_URL`.

PostgreSQL: the test run creates its own database (`mgrtest_<pid>_<random>`) on the server
that `MGR_TEST_DB_URL` names (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) and
drops it at the end (WITH (FORCE)); each test gets a fresh schema of its own in it, chosen
through the URL (`options=-csearch_path=...`), so a test never sees another's tables. Without
`MGR_TEST_DB_URL`, or with a server that does not answer, PostgreSQL tests are skipped; under
`CI=true` they fail instead.

`tests/conftest.py` exposes these as fixtures: `db_url` (parametrized over `BACKENDS`) and
`db_conf` (a ConfigOpts whose `[database] connection` is `db_url`, with the api configured).
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.pool import NullPool

from supervisor.db import api

ENV_URL = "MGR_TEST_DB_URL"
BACKENDS = ("sqlite", "postgresql")
CONNECT_TIMEOUT = 3


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str, server: str = "PostgreSQL") -> NoReturn:
    """Skip a test that needs a real server; under CI=true fail it instead."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: {server} is required)", pytrace=False)
    pytest.skip(reason)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory}/mgr-supervisor.sqlite"


class PostgresDatabase:
    """This test run's database on the server of MGR_TEST_DB_URL; one schema per test."""

    def __init__(self, server_url: str) -> None:
        self.server_url = sa.engine.make_url(server_url)
        self.name = f"mgrtest_{os.getpid()}_{secrets.token_hex(4)}"
        self.url = self.server_url.set(database=self.name)
        self._schemas = 0
        self._server = _autocommit_engine(self.server_url)
        with self._server.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self._engine = _autocommit_engine(self.url)

    @classmethod
    def from_env(cls) -> PostgresDatabase:
        """Skips (fails under CI=true) when MGR_TEST_DB_URL is unset or does not answer."""
        url = os.environ.get(ENV_URL)
        if not url:
            unavailable(
                f"PostgreSQL tests need {ENV_URL}, e.g. "
                "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            )
        try:
            return cls(url)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            first_line = str(exc.orig or exc).strip().splitlines()[0]
            unavailable(f"PostgreSQL at {ENV_URL} does not answer: {first_line}")

    def new_schema_url(self) -> str:
        """A URL whose connections see only a schema of their own (created empty)."""
        self._schemas += 1
        schema = f"t{self._schemas:04d}_{secrets.token_hex(2)}"
        with self._engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def sessions(self) -> int:
        """How many server sessions are connected to this run's database (not ours)."""
        with self._engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.name},
            ).scalar_one()

    def drop(self) -> None:
        self._engine.dispose()
        with self._server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._server.dispose()


def _autocommit_engine(url: sa.URL) -> sa.Engine:
    return sa.create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )


def make_conf(url: str, state_path: str | None = None) -> cfg.ConfigOpts:
    """A parsed ConfigOpts (no files) whose `[database] connection` is `url`."""
    conf = cfg.ConfigOpts()
    api.register_opts(conf)
    conf([], project="mgr-supervisor-tests", default_config_files=[])
    conf.set_override("connection", url, group="database")
    return conf


def write_config(path: Path, url: str, **default: object) -> Path:
    """An INI file with `[database] connection = url` (and [DEFAULT] values)."""
    lines = ["[DEFAULT]"] + [f"{k} = {v}" for k, v in default.items()]
    lines += ["[database]", f"connection = {url}", ""]
    path.write_text("\n".join(lines))
    return path


def run_in_children(
    count: int, target: Callable[[int], None], timeout: float = 60.0
) -> list[str | None]:
    """Fork `count` processes that call `target(i)` at the same moment; wait for them all.

    Returns, per child, None if `target` returned, else its traceback (or how it died).
    Children leave with os._exit: no pytest teardown runs in them.
    """
    start_r, start_w = os.pipe()
    children: list[tuple[int, int]] = []
    for i in range(count):
        result_r, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                os.close(start_w)
                os.close(result_r)
                os.read(start_r, 1)  # all start together
                target(i)
                status = 0
            except BaseException:
                os.write(result_w, traceback.format_exc().encode()[-4000:])
            finally:
                os._exit(status)
        os.close(result_w)
        children.append((pid, result_r))
    os.close(start_r)
    os.write(start_w, b"x" * count)
    os.close(start_w)
    deadline = time.monotonic() + timeout
    results: list[str | None] = []
    for pid, result_r in children:
        output = b""
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([result_r], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                output += b"timed out"
                break
            chunk = os.read(result_r, 65536)
            if not chunk:
                break
            output += chunk
        os.close(result_r)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0 and not output:
            results.append(None)
        else:
            results.append(output.decode(errors="replace") or f"exit status {status}")
    return results


def assert_each_fails_fast(calls: Iterable[Callable[[], object]]) -> None:
    """Each call against an unreachable database raises DBConnectionError after one retry
    (RETRY_INTERVAL later) at most, never after a long wait."""
    from oslo_db import exception as db_exc

    from supervisor.db import api

    for call in calls:
        started = time.monotonic()
        with pytest.raises(db_exc.DBConnectionError):
            call()
        assert time.monotonic() - started < api.RETRY_INTERVAL * (api.RETRY_MAX + 1) + 1.5
