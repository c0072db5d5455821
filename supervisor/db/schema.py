"""The schema and the connection URL, on SQLAlchemy Core alone.

The URL checked (and our PostgreSQL parameters added), the schema created in an empty
database, refused when older or newer than the code. The recorder runs these as it begins,
before it answers any worker; `mgr-supervisor-manage` and `--check-config` call them directly.
The supervisor parent imports none of it (docs/architecture.md, "Service records").

Alembic is imported only to create or upgrade a schema; the head revision is read from the
migration files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from supervisor import db as _db

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
SYNC_COMMAND = "mgr-supervisor-manage db sync"

SQLITE_BUSY_TIMEOUT_MS = 10_000
# libpq parameters added to a PostgreSQL URL that does not set them itself.
POSTGRESQL_CONNECT_ARGS = {
    "application_name": "mgr-supervisor",  # pg_stat_activity tells our sessions apart
    "connect_timeout": "3",  # seconds (libpq advises 2 at least)
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",  # ms an unacknowledged write may wait
}
# An execution option on a connection that begins a write transaction (SQLite: IMMEDIATE).
WRITE = "mgr_supervisor_write"


class InvalidConnection(_db.UnusableDatabase, ValueError):
    """`[database] connection` cannot be used: not a URL, unknown dialect, driver missing.

    The message never contains the URL (it may hold a password), only its scheme.
    """


class SchemaError(_db.UnusableDatabase):
    """The database's schema is not the one this code needs."""


class SchemaTooOld(SchemaError):
    """The database has an older revision than head: `mgr-supervisor-manage db sync`."""


class SchemaTooNew(SchemaError):
    """The database has a revision this code does not know (a newer release wrote it)."""


def missing_sqlite_file(raw: str) -> str | None:
    """The path of the SQLite file `raw` names when that file does not exist (SQLite would
    create it empty at the first connection); None otherwise."""
    url = sa.engine.make_url(raw)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return None if os.path.exists(url.database) else url.database


def connection_url(raw: str | None) -> str:
    """The URL the engine uses: checked, with our PostgreSQL connection parameters added.

    Raises `InvalidConnection` (without the URL in the message) when it is unusable.
    """
    if not raw:
        raise InvalidConnection("no database connection URL is set")
    try:
        url = sa.engine.make_url(raw)
    except sa.exc.ArgumentError:
        raise InvalidConnection("not a database URL (dialect+driver://...)") from None
    except ValueError:  # the only number a URL has
        raise InvalidConnection("its port is not a number from 1 to 65535") from None
    scheme = url.drivername
    try:
        dialect = url.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise InvalidConnection(f"unknown database dialect or driver {scheme!r}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = ""
        if url.get_backend_name() == "postgresql":
            hint = ": pip install 'mgr-supervisor[postgresql]' and use postgresql+psycopg://"
        raise InvalidConnection(
            f"the driver of {scheme!r} is not installed ({exc.name or exc}){hint}"
        ) from None
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        missing = {k: v for k, v in POSTGRESQL_CONNECT_ARGS.items() if k not in url.query}
        url = url.update_query_dict(missing)
    return url.render_as_string(hide_password=False)


def install_engine_events(engine: sa.Engine) -> None:
    """SQLite: the file created 0600, WAL with a busy timeout, IMMEDIATE write transactions."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "do_connect")
    def _sqlite_private_file(dialect: Any, record: Any, cargs: list[Any], cparams: Any) -> None:
        _create_private_file(cargs[0] if cargs else cparams.get("database"))

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(dbapi_connection)
        # In WAL mode NORMAL never corrupts the database; a power cut may lose the last
        # heartbeats. FULL would fsync every report and every record a stop marks.
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @sa.event.listens_for(engine, "set_connection_execution_options")
    def _sqlite_begin_immediate(conn: sa.Connection, opts: dict[str, Any]) -> None:
        # A write transaction takes the write lock as it begins, waiting up to the busy
        # timeout for it. With oslo.db's deferred BEGIN a transaction that reads and then
        # writes fails at once with SQLITE_BUSY when another process wrote in between (the
        # busy timeout does not apply). The session sets the option before it begins; the
        # marker is the one oslo.db's "begin" listener checks before it emits its BEGIN, and
        # that its commit and rollback listeners clear.
        if opts.get(WRITE) and not conn.in_transaction() and "in_transaction" not in conn.info:
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
            conn.info["in_transaction"] = True


def _switch_to_wal(dbapi_connection: Any) -> None:
    """`PRAGMA journal_mode = WAL`, retried: while another process switches a new database
    to WAL, SQLite answers "database is locked" at once, without its busy handler."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _create_private_file(path: object) -> None:
    """Create a missing SQLite file 0600 (as every file in state_path); SQLite gives its
    -wal and -shm files the database file's mode."""
    if not isinstance(path, str) or path in ("", ":memory:") or path.startswith("file:"):
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o600))
    except OSError:
        pass  # it exists (or cannot be made: SQLite says why when it opens it)


@contextlib.contextmanager
def write_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a write transaction, committed at the end (for alembic)."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE: True})
        with conn.begin():
            yield conn


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_version() -> str:
    """The newest revision this code ships (alembic's head).

    Read once per process (and inherited over a fork): the shipped files do not change.
    """
    return _head(MIGRATIONS_DIR)


_REVISION_LINE = re.compile(r"""^(down_revision|revision)\s*=\s*["']?([^"'\s]+?)["']?\s*$""")


@functools.lru_cache(maxsize=4)
def _head(directory: Path) -> str:
    """The revision no other revises, read from the migration files' own lines.

    Not through alembic, whose import (about 75 ms, 145 modules) every start would pay;
    alembic is loaded only to create or upgrade a schema. The history is linear.
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((directory / "versions").glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _REVISION_LINE.match(line)
            if match and match.group(2) != "None":
                (revisions if match.group(1) == "revision" else revised).add(match.group(2))
    heads = revisions - revised
    assert len(heads) == 1, f"the shipped migrations must have one head, not {sorted(heads)}"
    return heads.pop()


def schema_version(engine: sa.Engine) -> str | None:
    """The revision the database is at; None when it has none (an empty database).

    Plain SQL on alembic's version table: no alembic import, nothing logged.
    """
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(_db.VERSION_TABLE):
            return None
        table = sa.table(_db.VERSION_TABLE, sa.column("version_num"))
        versions = conn.execute(sa.select(table.c.version_num)).scalars().all()
    if len(versions) > 1:  # branches: never in our linear history
        raise SchemaTooNew(
            f"the database schema has several revisions ({', '.join(sorted(versions))}), "
            "unknown to this mgr-supervisor"
        )
    return versions[0] if versions else None


def sync(engine: sa.Engine) -> None:
    """Upgrade the database to head (create it when empty); a no-op when it is at head.

    Raises SchemaTooNew for a revision this code does not know.
    """
    _check_known(schema_version(engine))
    from alembic import command

    config = _alembic_config()
    with write_connection(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def ensure(engine: sa.Engine, create: Callable[[sa.Engine], None]) -> None:
    """Create the schema in an empty database with `create` (`sync`, or a caller's way to run
    it); refuse any other revision than head.

    SchemaTooOld names the command that upgrades it; SchemaTooNew says a newer release
    wrote the database. Supervisors starting at once on an empty database create it once.
    """
    current = schema_version(engine)
    head = head_version()
    if current == head:
        return
    if current is None:
        create(engine)
        return
    _check_known(current)
    raise SchemaTooOld(
        f"the database schema is at revision {current}, this mgr-supervisor needs {head}: "
        f"run `{SYNC_COMMAND}`"
    )


def _check_known(current: str | None) -> None:
    from alembic.util import CommandError

    if current is None:
        return
    try:
        known = _script().get_revision(current)
    except CommandError:
        known = None
    if known is None:
        raise SchemaTooNew(
            f"the database schema is at revision {current}, unknown to this mgr-supervisor "
            f"(its newest is {head_version()}): a newer release upgraded it; upgrade "
            "mgr-supervisor"
        )
