"""The data layer of service records (the default `db_driver`): module-level functions.

Its users are the host's recorder, which writes every service record, `mgr-supervisorctl
services`, `mgr-supervisor-manage` and managers through `self.db`; the supervisor parent never
imports it (`supervisor.db.schema` is its part). It configures itself from `cfg.CONF` on first
use unless `configure(conf)` was called. The engine (oslo.db's enginefacade over SQLAlchemy)
is built lazily in the process that uses it, with that process's pid; a child that inherited
its parent's engine drops it without touching the parent's connections and builds its own.

A manager's own db driver that keeps its own tables in the same database (the resources
manager's `workers/resources_db.py`) shares this process's engine through `writer()`,
`reader()`, `writer_engine()` and `retry_on_disconnect` rather than building one of its own;
its tables are never in this schema (`supervisor/db/migrations`: the service records only).

Times are naive datetimes in UTC (`oslo_utils.timeutils.utcnow()`). Rows are
`supervisor.db.models` objects, detached from their session (`row["host"]`, `row.get()`,
`dict(row.items())`).

Failures: an unreachable database raises oslo.db's `DBConnectionError` to the caller, which
decides what an outage means. Calls that are safe to repeat are retried once, half a second
later, on a lost connection (`retry_on_disconnect`); nothing here sleeps longer than that or
logs above DEBUG: callers log an outage once. SQLite runs in WAL mode with a 10 s busy
timeout and takes its write lock when a write transaction begins (BEGIN IMMEDIATE), so many
processes neither see "database is locked" nor lose an update. PostgreSQL connections get a
connect timeout and TCP keepalives, so a dead network fails a call in seconds, never hangs it.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import enginefacade, exc_filters
from oslo_utils import timeutils
from sqlalchemy import orm

from supervisor import children
from supervisor import db as _db
from supervisor.db import models, schema

LOG = logging.getLogger(__name__)

register_opts = _db.register_opts

# One retry, 0.5 s later, for calls that are safe to repeat.
RETRY_MAX = 1
RETRY_INTERVAL = 0.5

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
    `schema.InvalidConnection` when the connection URL cannot be used.
    """
    global _settings, _facade, _schema_at_head
    register_opts(conf)
    settings = {key: conf.database[key] for key in _ENGINE_OPTIONS}
    settings["connection"] = schema.connection_url(settings["connection"])
    if settings.get("slave_connection"):
        settings["slave_connection"] = schema.connection_url(settings["slave_connection"])
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


def dispose() -> None:
    """Close this process's database connections; the next call builds a new engine."""
    global _facade
    with _lock:
        if _facade is not None:
            _facade.dispose()
        _facade = None


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
    if _settings is None:  # a manager's first `self.db` call: the process's own config
        configure(cfg.CONF)
    with _lock:
        if _facade is None:
            assert _settings is not None
            _facade = _Facade(_settings)
        return _facade


def _on_engine_create(engine: sa.Engine) -> None:
    sa.event.remove(engine, "handle_error", exc_filters.handler)
    sa.event.listen(engine, "handle_error", _handle_error, retval=True)
    schema.install_engine_events(engine)


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
def writer() -> Iterator[orm.Session]:
    """A session in a write transaction, committed at the end (SQLite: IMMEDIATE)."""
    with _current().manager.writer.using(_Context()) as session:
        session.connection(execution_options={schema.WRITE: True})
        yield session


@contextlib.contextmanager
def reader() -> Iterator[orm.Session]:
    """A session that reads (the slave connection when one is set)."""
    with _current().manager.reader.using(_Context()) as session:
        yield session


def writer_engine() -> sa.Engine:
    """This process's engine for writes, built at its first use (for DDL: `schema.sync`,
    a db driver creating its own tables)."""
    return _current().manager.writer.get_engine()


_F = TypeVar("_F", bound=Callable[..., Any])
Key = tuple[str, int]  # a worker's (manager, worker id) on a host


def retry_on_disconnect(fn: _F) -> _F:
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


def schema_version() -> str | None:
    """The revision the database is at; None when it has none (an empty database)."""
    return schema.schema_version(_current().manager.reader.get_engine())


def sync() -> None:
    """Upgrade the database to head (create it when empty); see `schema.sync`."""
    schema.sync(writer_engine())


def ensure_schema() -> None:
    """Create the schema in an empty database; refuse any other revision than head.

    The schema is created by a child process: alembic and the migrations, imported for it,
    would otherwise stay in the recorder (~13 MiB) for as long as it runs.
    """
    schema.ensure(writer_engine(), create=_create_in_child)


class SchemaNotCreated(Exception):
    """The child creating the schema failed, and the database still has none."""


def _create_in_child(engine: sa.Engine) -> None:
    failure = children.run_in_child(sync, "creating the database schema")
    if failure is not None and schema.schema_version(engine) != schema.head_version():
        raise SchemaNotCreated(f"creating the database schema failed ({failure})")


def ensure_schema_once() -> None:
    """`ensure_schema()` once per process: the recorder calls it before it writes a record,
    for a database that was down when the supervisor began; otherwise it costs nothing."""
    global _schema_at_head
    head = schema.head_version()
    if _schema_at_head != head:
        ensure_schema()
        _schema_at_head = head


# --- services -----------------------------------------------------------------------------


def _service_query(host: str, manager: str, worker_id: int) -> sa.Select[Any]:
    return sa.select(models.Service).where(
        models.Service.host == host,
        models.Service.manager == manager,
        models.Service.worker_id == worker_id,
    )


@retry_on_disconnect
def service_get(host: str, manager: str, worker_id: int) -> models.Service | None:
    """The record of (host, manager, worker id), or None."""
    with reader() as session:
        return session.scalars(_service_query(host, manager, worker_id)).one_or_none()


def _services_of(session: orm.Session, host: str, keys: Collection[Key]) -> dict[Key, Any]:
    query = sa.select(models.Service).where(
        models.Service.host == host,
        models.Service.manager.in_({manager for manager, _ in keys}),
    )
    rows = session.scalars(query.execution_options(populate_existing=True))
    return {key: row for row in rows if (key := (row.manager, row.worker_id)) in keys}


@retry_on_disconnect
def services_get(host: str, keys: Collection[Key]) -> dict[Key, models.Service]:
    """The records of `host` for these (manager, worker id) keys, in one query; a key
    without a record is left out."""
    if not keys:
        return {}
    with reader() as session:
        return _services_of(session, host, keys)


@retry_on_disconnect
def services_start(host: str, pids: Mapping[Key, int]) -> dict[Key, models.Service]:
    """The records of starting workers, `{(manager, worker id): pid}`, in one transaction.

    One row per (host, manager, worker id), never per pid: an existing row gets the new
    pid, stopped=False and last_seen_up=now (starting is a sign of life); report_count,
    disabled and its reason are kept. Returns every row, keyed as given. The rows that
    exist are updated by one statement executed for all (executemany).
    """
    if not pids:
        return {}
    now = timeutils.utcnow()
    table = models.Service.__table__
    update = (
        sa.update(table)
        .where(
            table.c.host == host,
            models.Service.manager == sa.bindparam("b_manager"),
            table.c.worker_id == sa.bindparam("b_worker_id"),
        )
        .values(pid=sa.bindparam("b_pid"), stopped=False, last_seen_up=now, updated_at=now)
    )
    with writer() as session:
        session.execute(
            update,
            [{"b_manager": m, "b_worker_id": w, "b_pid": pid} for (m, w), pid in pids.items()],
        )
        rows = _services_of(session, host, pids.keys())
        for (manager, worker_id), pid in pids.items():
            if (manager, worker_id) in rows:
                continue
            values = {"pid": pid, "stopped": False, "last_seen_up": now}
            try:
                with session.begin_nested():
                    session.add(
                        models.Service(
                            host=host,
                            manager=manager,
                            worker_id=worker_id,
                            created_at=now,
                            **values,
                        )
                    )
            except db_exc.DBDuplicateEntry:
                # Another supervisor created it since our UPDATE (PostgreSQL; SQLite's
                # IMMEDIATE transaction rules that out): update theirs.
                LOG.debug(
                    "service %s/%s(%s) created meanwhile: updating it", host, manager, worker_id
                )
                where = (
                    models.Service.host == host,
                    models.Service.manager == manager,
                    models.Service.worker_id == worker_id,
                )
                _update(session, where, values)
        if len(rows) < len(pids):
            rows = _services_of(session, host, pids.keys())
        return rows


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
    with writer() as session:
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


@retry_on_disconnect
def services_mark_stopped(pids: Mapping[int, int]) -> int:
    """Stops the supervisor asked for, `{service id: pid}`, in one statement: each record
    says stopped (until the next start), unless a newer worker with another pid has taken
    it already. Returns how many records it marked."""
    if not pids:
        return 0
    pairs = sa.tuple_(models.Service.id, models.Service.pid).in_(list(pids.items()))
    with writer() as session:
        return _update(session, (pairs,), {"stopped": True})


@retry_on_disconnect
def service_get_all(host: str | None = None, manager: str | None = None) -> list[models.Service]:
    """Every record (of a host, of a manager), ordered by host, manager and worker id."""
    query = sa.select(models.Service)
    if host is not None:
        query = query.where(models.Service.host == host)
    if manager is not None:
        query = query.where(models.Service.manager == manager)
    query = query.order_by(models.Service.host, models.Service.manager, models.Service.worker_id)
    with reader() as session:
        return list(session.scalars(query))


@retry_on_disconnect
def service_set_disabled(host: str, manager: str, disabled: bool, reason: str | None = None) -> int:
    """Disable or enable every worker record of a manager on a host; returns rows matched.

    Enabling clears the reason (as nova does).
    """
    values = {"disabled": disabled, "disabled_reason": reason if disabled else None}
    with writer() as session:
        return _update(
            session, (models.Service.host == host, models.Service.manager == manager), values
        )


@retry_on_disconnect
def service_delete(host: str, manager: str | None = None) -> int:
    """Delete the records of a host (of one of its managers); returns rows deleted."""
    query = sa.delete(models.Service).where(models.Service.host == host)
    if manager is not None:
        query = query.where(models.Service.manager == manager)
    with writer() as session:
        return session.execute(query.execution_options(synchronize_session=False)).rowcount


# What a server says when it refuses a login or a database, as libpq reports it at connect.
_REFUSALS = ("does not exist", "authentication failed", "no pg_hba.conf entry")


def refusal(exc: BaseException) -> str | None:
    """Why the server refused us (a login, a database that does not exist), in its own
    words and without the URL; None when it is an outage (nothing answered).

    libpq reports these at connect time without a SQLSTATE: its FATAL line is the reason.
    """
    inner = getattr(exc, "inner_exception", None) or exc
    text = str(getattr(inner, "orig", None) or inner)
    fatal = text.partition("FATAL:")[2].strip().splitlines()
    if fatal and any(words in fatal[0] for words in _REFUSALS):
        return fatal[0]
    return None


def service_state(row: Any, service_down_time: float, now: datetime.datetime | None = None) -> str:
    """The state a record shows: stopped, disabled, up (reported within
    service_down_time of now) or down."""
    if row["disabled"] and not row["stopped"]:
        return "disabled"
    return service_liveness(row, service_down_time, now)


def service_liveness(
    row: Any, service_down_time: float, now: datetime.datetime | None = None
) -> str:
    """stopped, up (reported within service_down_time of now) or down, whether disabled or
    not (nova's State column, beside its Status).

    As nova's servicegroup db driver, a report in the future (another host's clock ahead of
    ours) is up while it is within service_down_time.
    """
    if row["stopped"]:
        return "stopped"
    last = row["last_seen_up"]
    if last is None:
        return "down"
    if now is None:
        now = timeutils.utcnow()
    elapsed = abs(timeutils.delta_seconds(last, now))
    return "up" if elapsed <= service_down_time else "down"
