"""The data layer of service records (the default `db_driver`): module-level functions.

Every function is safe in many forked processes: the engine (oslo.db's enginefacade over
SQLAlchemy) is built lazily in the process that uses it, with that process's pid; a child
that inherited its parent's engine drops it without touching the parent's connections and
builds its own. The parent calls `dispose()` before it forks, so it hands over no connection.

Times are naive datetimes in UTC (`oslo_utils.timeutils.utcnow()`). Rows are
`supervisor.db.models` objects, detached from their session (`row["host"]`, `row.get()`,
`dict(row.items())`).

Failures: an unreachable database raises oslo.db's `DBConnectionError` to the caller, which
decides what an outage means. Calls that are safe to repeat are retried once, half a second
later, on a lost connection (`_retry_on_disconnect`); nothing here sleeps longer than that or
logs above DEBUG: callers log an outage once. SQLite runs in WAL mode with a 10 s busy
timeout and takes its write lock when a write transaction begins (BEGIN IMMEDIATE), so many
processes neither see "database is locked" nor lose an update. PostgreSQL connections get a
connect timeout and TCP keepalives, so a dead network fails a call in seconds, never hangs it.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import enginefacade, exc_filters
from oslo_utils import timeutils
from sqlalchemy import orm

from supervisor import db as _db
from supervisor.db import models

LOG = logging.getLogger(__name__)

register_opts = _db.register_opts

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
# One retry, 0.5 s later, for calls that are safe to repeat.
RETRY_MAX = 1
RETRY_INTERVAL = 0.5
# host_resources_add keeps this many samples per host by default.
HOST_RESOURCES_KEEP = 100

# [database] options handed to enginefacade.configure(); the others do not apply here.
_ENGINE_OPTIONS = (
    "connection",
    "slave_connection",
    "sqlite_synchronous",
    "mysql_sql_mode",
    "mysql_wsrep_sync_wait",
    "connection_recycle_time",
    "connection_debug",
    "max_pool_size",
    "max_overflow",
    "pool_timeout",
    "connection_trace",
    "connection_parameters",
    "synchronous_reader",
)
# An execution option on a connection that begins a write transaction (SQLite: IMMEDIATE).
_WRITE = "mgr_supervisor_write"

_HOST_RESOURCES_FIELDS = frozenset(
    {
        "sampled_at",
        "driver",
        "cpu_count",
        "load_1",
        "load_5",
        "load_15",
        "memory_total",
        "memory_available",
        "disks",
    }
)


class NotConfigured(RuntimeError):
    """A database call before `configure(conf)` in this process or its parent."""


class InvalidConnection(ValueError):
    """`[database] connection` cannot be used: not a URL, unknown dialect, driver missing.

    The message never contains the URL (it may hold a password), only its scheme.
    """


class SchemaError(Exception):
    """The database's schema is not the one this code needs."""


class SchemaTooOld(SchemaError):
    """The database has an older revision than head: `mgr-supervisor-manage db sync`."""


class SchemaTooNew(SchemaError):
    """The database has a revision this code does not know (a newer release wrote it)."""


class _Facade:
    """One process's enginefacade, and the pid it was built in."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.pid = os.getpid()
        self.manager = enginefacade.transaction_context()
        # Values given to configure() take precedence over oslo's global cfg.CONF.
        self.manager.configure(**settings)
        self.manager.append_on_engine_create(_on_engine_create)

    def engines(self) -> list[sa.Engine]:
        if not self.manager.is_started:
            return []
        writer = self.manager.writer.get_engine()
        reader = self.manager.reader.get_engine()
        return [writer] if reader is writer else [writer, reader]

    def dispose(self) -> None:
        for engine in self.engines():
            # In a child the pooled connections are the parent's: drop them, never close
            # them (closing would end the parent's sessions on the server).
            engine.dispose(close=self.pid == os.getpid())


_lock = threading.Lock()
_settings: dict[str, Any] | None = None
_facade: _Facade | None = None
_schema_at_head: str | None = None  # the head revision ensure_schema() found in force


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def configure(conf: cfg.ConfigOpts) -> None:
    """Use `conf.database` from now on (registers the options if needed).

    Cheap and lazy: nothing connects here. Call it again after a reload (a changed
    `[database]` closes this process's connections); unchanged settings change nothing, so
    a forked child keeps the engines and the schema check it inherited. Raises
    `InvalidConnection` when the connection URL cannot be used.
    """
    global _settings, _facade, _schema_at_head
    register_opts(conf)
    settings = {key: conf.database[key] for key in _ENGINE_OPTIONS}
    settings["connection"] = connection_url(settings["connection"])
    if settings.get("slave_connection"):
        settings["slave_connection"] = connection_url(settings["slave_connection"])
    # oslo.db would try `max_retries` times, `retry_interval` seconds apart (100 s by
    # default), to connect when the engine is built; we never block that long: the first
    # call fails with DBConnectionError instead and the caller decides.
    settings["max_retries"] = 0
    with _lock:
        if settings == _settings:
            return
        if _facade is not None:
            _facade.dispose()
        _settings = settings
        _facade = None
        _schema_at_head = None


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


def dispose() -> None:
    """Close this process's database connections (the parent calls it before it forks).

    The next call builds a new engine from the configured settings.
    """
    global _facade
    with _lock:
        if _facade is not None:
            _facade.dispose()
        _facade = None


def prepare_for_fork() -> None:
    """In the parent before it forks workers: close its connections, keep its engines.

    Children then reuse the engines, their compiled statements and configured mappers
    (shared pages, and ~20 ms less per worker on its first call) and open their own
    connections.
    """
    orm.configure_mappers()
    if _schema_at_head is not None:  # reachable: compile the first query workers make
        with contextlib.suppress(db_exc.DBError):
            services_get("", [("", -1)])
    with _lock:
        if _facade is not None:
            _facade.dispose()


def _current() -> _Facade:
    global _facade
    facade = _facade
    if facade is not None and facade.pid == os.getpid():
        return facade
    with _lock:
        if _facade is not None and _facade.pid != os.getpid():
            # Inherited over a fork: its engines (and the pages they live in) are reused,
            # the parent's pooled connections dropped without being closed.
            _facade.dispose()
            _facade.pid = os.getpid()
            return _facade
        if _facade is None:
            if _settings is None:
                raise NotConfigured("supervisor.db.api.configure(conf) was not called")
            _facade = _Facade(_settings)
        return _facade


def _on_engine_create(engine: sa.Engine) -> None:
    sa.event.remove(engine, "handle_error", exc_filters.handler)
    sa.event.listen(engine, "handle_error", _handle_error, retval=True)
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "do_connect")
    def _sqlite_private_file(dialect: Any, record: Any, cargs: list[Any], cparams: Any) -> None:
        _create_private_file(cargs[0] if cargs else cparams.get("database"))

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
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
        if opts.get(_WRITE) and not conn.in_transaction() and "in_transaction" not in conn.info:
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
            conn.info["in_transaction"] = True


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


def _handle_error(context: sa.engine.ExceptionContext) -> BaseException | None:
    """oslo.db's exception filters, and a failure to connect is a DBConnectionError.

    oslo.db recognises PostgreSQL's refused connections by libpq's wording before
    version 14 ("could not connect to server"); libpq 14 and later say "connection to
    server at ... failed", which oslo.db passes on as a plain OperationalError. Any
    OperationalError raised while opening a connection (no connection exists yet, and it is
    not the pool's pre-ping, which oslo.db handles) means the database cannot be reached:
    PostgreSQL refusing or timing out, SQLite unable to open its file.
    """
    if (
        context.connection is None
        and not getattr(context, "is_pre_ping", False)
        and isinstance(context.sqlalchemy_exception, sa.exc.OperationalError)
    ):
        context.is_disconnect = True
        return db_exc.DBConnectionError(context.sqlalchemy_exception)
    return exc_filters.handler(context)


class _Context:
    """What enginefacade keeps a transaction's state on: a fresh one per call."""


@contextlib.contextmanager
def _writer() -> Iterator[orm.Session]:
    with _current().manager.writer.using(_Context()) as session:
        session.connection(execution_options={_WRITE: True})
        yield session


@contextlib.contextmanager
def _reader() -> Iterator[orm.Session]:
    with _current().manager.reader.using(_Context()) as session:
        yield session


@contextlib.contextmanager
def _write_connection() -> Iterator[sa.Connection]:
    """A connection in a write transaction, committed at the end (for alembic)."""
    with _current().manager.writer.get_engine().connect() as conn:
        conn = conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


_F = TypeVar("_F", bound=Callable[..., Any])
Key = tuple[str, int]  # a worker's (manager, worker id) on a host


def _retry_on_disconnect(fn: _F) -> _F:
    """Retry a call that is safe to repeat once, RETRY_INTERVAL later, on a lost connection.

    Not `oslo_db.api.wrap_db_retry`: when its retries run out it logs "DB exceeded retry
    limit." with a traceback at ERROR, on every call, so an outage would log a traceback for
    each report of each worker (and on mgr-supervisorctl's stderr); our callers log an outage
    once. The semantics are the same as `wrap_db_retry(retry_on_disconnect=True,
    max_retries=RETRY_MAX, retry_interval=RETRY_INTERVAL, inc_retry_interval=False)`.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        remaining = RETRY_MAX
        while True:
            try:
                return fn(*args, **kwargs)
            except db_exc.DBConnectionError:
                if remaining <= 0:
                    raise
                remaining -= 1
                LOG.debug("%s: database connection lost; retrying once", fn.__name__)
                time.sleep(RETRY_INTERVAL)

    return wrapper  # type: ignore[return-value]


# --- schema -------------------------------------------------------------------------------


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


def schema_version() -> str | None:
    """The revision the database is at; None when it has none (an empty database).

    Plain SQL on alembic's version table: no alembic import, nothing logged.
    """
    with _current().manager.reader.get_engine().connect() as conn:
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


def sync() -> None:
    """Upgrade the database to head (create it when empty); a no-op when it is at head.

    Raises SchemaTooNew for a revision this code does not know.
    """
    _check_known(schema_version())
    from alembic import command

    config = _alembic_config()
    with _write_connection() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def ensure_schema() -> None:
    """Create the schema in an empty database; refuse any other revision than head.

    SchemaTooOld names the command that upgrades it; SchemaTooNew says a newer release
    wrote the database. Supervisors starting at once on an empty database create it once.
    """
    current = schema_version()
    head = head_version()
    if current == head:
        return
    if current is None:
        sync()
        return
    _check_known(current)
    raise SchemaTooOld(
        f"the database schema is at revision {current}, this mgr-supervisor needs {head}: "
        f"run `{SYNC_COMMAND}`"
    )


def ensure_schema_once() -> None:
    """`ensure_schema()` once per process, and not again in the processes forked after it.

    Workers call it before their first record: after a start with the database down,
    the first of them to reach it creates the schema; otherwise it costs nothing.
    """
    global _schema_at_head
    head = head_version()
    if _schema_at_head != head:
        ensure_schema()
        _schema_at_head = head


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


# --- services -----------------------------------------------------------------------------


def _service_query(host: str, topic: str, worker_id: int) -> sa.Select[Any]:
    return sa.select(models.Service).where(
        models.Service.host == host,
        models.Service.topic == topic,
        models.Service.worker_id == worker_id,
    )


@_retry_on_disconnect
def service_get(host: str, topic: str, worker_id: int) -> models.Service | None:
    """The record of (host, manager, worker id), or None."""
    with _reader() as session:
        return session.scalars(_service_query(host, topic, worker_id)).one_or_none()


def _services_of(session: orm.Session, host: str, keys: Collection[Key]) -> dict[Key, Any]:
    query = sa.select(models.Service).where(
        models.Service.host == host, models.Service.topic.in_({topic for topic, _ in keys})
    )
    rows = session.scalars(query.execution_options(populate_existing=True))
    return {key: row for row in rows if (key := (row.topic, row.worker_id)) in keys}


@_retry_on_disconnect
def services_get(host: str, keys: Collection[Key]) -> dict[Key, models.Service]:
    """The records of `host` for these (manager, worker id) keys, in one query; a key
    without a record is left out."""
    if not keys:
        return {}
    with _reader() as session:
        return _services_of(session, host, keys)


@_retry_on_disconnect
def services_start(host: str, pids: Mapping[Key, int]) -> dict[Key, models.Service]:
    """The records of starting workers, `{(manager, worker id): pid}`, in one transaction.

    One row per (host, manager, worker id), never per pid: an existing row gets the new
    pid, stopped=False and last_seen_up=now (starting is a sign of life); report_count,
    disabled and its reason are kept. Returns every row, keyed as given.
    """
    if not pids:
        return {}
    now = timeutils.utcnow()
    with _writer() as session:
        for (topic, worker_id), pid in pids.items():
            values = {"pid": pid, "stopped": False, "last_seen_up": now}
            where = (
                models.Service.host == host,
                models.Service.topic == topic,
                models.Service.worker_id == worker_id,
            )
            if _update(session, where, values):
                continue
            try:
                with session.begin_nested():
                    session.add(
                        models.Service(
                            host=host, topic=topic, worker_id=worker_id, created_at=now, **values
                        )
                    )
            except db_exc.DBDuplicateEntry:
                # Another supervisor created it since our UPDATE (PostgreSQL; SQLite's
                # IMMEDIATE transaction rules that out): update theirs.
                LOG.debug(
                    "service %s/%s(%s) created meanwhile: updating it", host, topic, worker_id
                )
                _update(session, where, values)
        return _services_of(session, host, pids.keys())


def _update(session: orm.Session, where: tuple[Any, ...], values: dict[str, Any]) -> int:
    result = session.execute(
        sa.update(models.Service)
        .where(*where)
        .values(updated_at=timeutils.utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def services_report(counts: Mapping[int, int]) -> dict[int, models.Service]:
    """Heartbeats, `{service id: reports}`, in one transaction: report_count + reports (in
    SQL, so no report is lost) and last_seen_up = now.

    Returns the rows by id; a row that no longer exists (deleted by an operator) is left
    out. Not retried: reports that committed before the connection broke would count twice.
    """
    if not counts:
        return {}
    now = timeutils.utcnow()
    by_count: dict[int, list[int]] = {}
    for service_id, reports in counts.items():
        by_count.setdefault(reports, []).append(service_id)
    with _writer() as session:
        for reports, ids in by_count.items():
            session.execute(
                sa.update(models.Service)
                .where(models.Service.id.in_(ids))
                .values(
                    report_count=models.Service.report_count + reports,
                    last_seen_up=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        query = sa.select(models.Service).where(models.Service.id.in_(counts))
        rows = session.scalars(query.execution_options(populate_existing=True))
        return {row.id: row for row in rows}


@_retry_on_disconnect
def services_mark_stopped(pids: Mapping[int, int]) -> None:
    """Stops the supervisor asked for, `{service id: pid}`: each record says stopped (until
    the next start), unless a newer worker with another pid has taken it already."""
    if not pids:
        return
    now = timeutils.utcnow()
    with _writer() as session:
        for service_id, pid in pids.items():
            session.execute(
                sa.update(models.Service)
                .where(models.Service.id == service_id, models.Service.pid == pid)
                .values(stopped=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )


@_retry_on_disconnect
def service_get_all(host: str | None = None, topic: str | None = None) -> list[models.Service]:
    """Every record (of a host, of a manager), ordered by host, topic and worker id."""
    query = sa.select(models.Service)
    if host is not None:
        query = query.where(models.Service.host == host)
    if topic is not None:
        query = query.where(models.Service.topic == topic)
    query = query.order_by(models.Service.host, models.Service.topic, models.Service.worker_id)
    with _reader() as session:
        return list(session.scalars(query))


@_retry_on_disconnect
def service_set_disabled(host: str, topic: str, disabled: bool, reason: str | None = None) -> int:
    """Disable or enable every worker record of a manager on a host; returns rows matched.

    Enabling clears the reason (as nova does).
    """
    values = {"disabled": disabled, "disabled_reason": reason if disabled else None}
    with _writer() as session:
        return _update(
            session, (models.Service.host == host, models.Service.topic == topic), values
        )


@_retry_on_disconnect
def service_delete(host: str, topic: str | None = None) -> int:
    """Delete the records of a host (of one of its managers); returns rows deleted."""
    query = sa.delete(models.Service).where(models.Service.host == host)
    if topic is not None:
        query = query.where(models.Service.topic == topic)
    with _writer() as session:
        return session.execute(query.execution_options(synchronize_session=False)).rowcount


def service_state(row: Any, service_down_time: float, now: datetime.datetime | None = None) -> str:
    """The state a record shows: stopped, disabled, up (reported within
    service_down_time of now) or down.

    As nova's servicegroup db driver, a report in the future (another host's clock ahead of
    ours) is up while it is within service_down_time.
    """
    if row["stopped"]:
        return "stopped"
    if row["disabled"]:
        return "disabled"
    last = row["last_seen_up"]
    if last is None:
        return "down"
    if now is None:
        now = timeutils.utcnow()
    elapsed = abs(timeutils.delta_seconds(last, now))
    return "up" if elapsed <= service_down_time else "down"


# --- host resources -----------------------------------------------------------------------


def host_resources_add(
    host: str, sample: dict[str, Any], keep: int | None = HOST_RESOURCES_KEEP
) -> models.HostResources:
    """Store a sample of `host`'s resources; returns its row.

    `sample` keys: sampled_at (default now), driver, cpu_count, load_1, load_5, load_15,
    memory_total, memory_available (bytes), disks (a list of {"mount", "total", "used"},
    stored as JSON). Older samples of the host beyond the latest `keep` are deleted (None
    keeps all). Not retried (it inserts).
    """
    unknown = set(sample) - _HOST_RESOURCES_FIELDS
    if unknown:
        raise ValueError(f"unknown host resources fields: {', '.join(sorted(unknown))}")
    values = dict(sample)
    values.setdefault("sampled_at", timeutils.utcnow())
    if values.get("disks") is not None and not isinstance(values["disks"], str):
        values["disks"] = json.dumps(values["disks"])
    with _writer() as session:
        row = models.HostResources(host=host, **values)
        session.add(row)
        session.flush()
        if keep is not None:
            newest = (
                sa.select(models.HostResources.id)
                .where(models.HostResources.host == host)
                .order_by(models.HostResources.sampled_at.desc(), models.HostResources.id.desc())
                .limit(max(keep, 1))
                .subquery()
            )
            session.execute(
                sa.delete(models.HostResources)
                .where(
                    models.HostResources.host == host,
                    models.HostResources.id.not_in(sa.select(newest.c.id)),
                )
                .execution_options(synchronize_session=False)
            )
        return row


@_retry_on_disconnect
def host_resources_get(host: str) -> models.HostResources | None:
    """The latest sample of `host`, or None."""
    query = (
        sa.select(models.HostResources)
        .where(models.HostResources.host == host)
        .order_by(models.HostResources.sampled_at.desc(), models.HostResources.id.desc())
        .limit(1)
    )
    with _reader() as session:
        return session.scalars(query).first()
