"""The resources manager's db driver (`db_driver = workers.resources_db`): its samples.

One manager, many drivers (the `nova.manager` model): `workers.resources.ResourcesManager`
holds the logic and reaches its data through `self.db`, this module. The samples are in a
table of this module's own, `host_resource_samples`, not in the supervisor's schema (its
alembic migrations hold the service records only). The table is in the same database,
`[database] connection`, reached through `supervisor.db.api`'s enginefacade: the same lazily
built engine and pool per process, SQLite's write lock taken as a write begins, one retry on
a lost connection, and oslo.db's `DBConnectionError` raised when the database is unreachable.

The table is created by the first call of a process that finds it missing: CREATE TABLE with
`checkfirst`, in a write transaction. Workers and hosts starting at once queue for it (SQLite's
write lock, a PostgreSQL advisory lock), so the first creates it and the others find it; on
a backend without such a lock, a create that loses the race finds the table there and goes
on. A call that fails makes the next one look for the table again, so a table dropped by hand
comes back.

Rows are `HostResources` objects detached from their session: `row["cpu_count"]`,
`dict(row.items())`, `row.disk_list()`. Times are naive datetimes in UTC.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from oslo_db import exception as db_exc
from oslo_db.sqlalchemy import models
from oslo_utils import timeutils
from sqlalchemy import orm

from supervisor.db import api as db_api
from supervisor.db import schema
from supervisor.db.models import NAMING_CONVENTION

TABLE = "host_resource_samples"
# PostgreSQL advisory lock held while creating the table: any 64-bit constant, the same on
# every host, not the supervisor's schema lock (`supervisor.db.ADVISORY_LOCK_KEY`).
ADVISORY_LOCK_KEY = 0x6D67_7272_6573_6462  # "mgrresdb"
# host_resources_add keeps this many samples per host by default.
KEEP = 100
FIELDS = frozenset(
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


class Base(orm.DeclarativeBase):
    """This module's tables: never the supervisor's schema, never in its migrations."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class HostResources(Base, models.ModelBase):
    """One sample of a host's resources, written by the resources manager."""

    __tablename__ = TABLE
    # The latest sample of a host is one index lookup; host alone uses the same index.
    __table_args__ = (sa.Index(None, "host", "sampled_at"),)

    id = sa.Column(sa.Integer, primary_key=True)
    host = sa.Column(sa.String(255), nullable=False)
    sampled_at = sa.Column(sa.DateTime, nullable=False)
    driver = sa.Column(sa.String(64), nullable=True)
    cpu_count = sa.Column(sa.Integer, nullable=True)
    load_1 = sa.Column(sa.Float, nullable=True)
    load_5 = sa.Column(sa.Float, nullable=True)
    load_15 = sa.Column(sa.Float, nullable=True)
    memory_total = sa.Column(sa.BigInteger, nullable=True)  # bytes
    memory_available = sa.Column(sa.BigInteger, nullable=True)  # bytes
    # JSON: a list of {"mount": str, "total": bytes, "used": bytes}.
    disks = sa.Column(sa.Text, nullable=True)

    def disk_list(self) -> list[dict[str, Any]]:
        """`disks` decoded: a list of {"mount", "total", "used"} (empty when none)."""
        return json.loads(self.disks) if self.disks else []

    def __repr__(self) -> str:
        return f"<HostResources {self.id} {self.host} at {self.sampled_at}>"


# The engine the table is known to exist on, in this process: a fork keeps the engine (and
# so this), a `configure()` with another database builds another.
_table_on: sa.Engine | None = None


def ensure_table() -> None:
    """Create the table if it is missing (once per engine in a process); idempotent."""
    global _table_on
    engine = db_api.writer_engine()
    if _table_on is engine:
        return
    try:
        with schema.write_connection(engine) as conn:  # SQLite: the write lock, first
            if conn.dialect.name == "postgresql":
                # Concurrent CREATEs would fail all but one (and oslo.db log a traceback).
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
            Base.metadata.create_all(conn, checkfirst=True)
    except db_exc.DBError:
        # Elsewhere another worker or host may create it between our check and our CREATE:
        # the table is there, which is all this asks.
        if not sa.inspect(engine).has_table(TABLE):
            raise
    _table_on = engine


@contextlib.contextmanager
def _on_table() -> Iterator[None]:
    global _table_on
    ensure_table()
    try:
        yield
    except db_exc.DBError:
        _table_on = None  # look for the table again next time (dropped meanwhile?)
        raise


def host_resources_add(host: str, sample: dict[str, Any], keep: int | None = KEEP) -> HostResources:
    """Store a sample of `host`'s resources; returns its row.

    `sample` keys: sampled_at (default now), driver, cpu_count, load_1, load_5, load_15,
    memory_total, memory_available (bytes), disks (a list of {"mount", "total", "used"},
    stored as JSON). Older samples of the host beyond the latest `keep` are deleted (None
    keeps all). Not retried (it inserts).
    """
    unknown = set(sample) - FIELDS
    if unknown:
        raise ValueError(f"unknown host resources fields: {', '.join(sorted(unknown))}")
    values = dict(sample)
    values.setdefault("sampled_at", timeutils.utcnow())
    if values.get("disks") is not None and not isinstance(values["disks"], str):
        values["disks"] = json.dumps(values["disks"])
    with _on_table(), db_api.writer() as session:
        row = HostResources(host=host, **values)
        session.add(row)
        session.flush()
        if keep is not None:
            newest = (
                sa.select(HostResources.id)
                .where(HostResources.host == host)
                .order_by(HostResources.sampled_at.desc(), HostResources.id.desc())
                .limit(max(keep, 1))
                .subquery()
            )
            session.execute(
                sa.delete(HostResources)
                .where(
                    HostResources.host == host,
                    HostResources.id.not_in(sa.select(newest.c.id)),
                )
                .execution_options(synchronize_session=False)
            )
        return row


@db_api.retry_on_disconnect
def host_resources_get(host: str) -> HostResources | None:
    """The latest sample of `host`, or None."""
    query = (
        sa.select(HostResources)
        .where(HostResources.host == host)
        .order_by(HostResources.sampled_at.desc(), HostResources.id.desc())
        .limit(1)
    )
    with _on_table(), db_api.reader() as session:
        return session.scalars(query).first()
