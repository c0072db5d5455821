"""The table: nova's `services`, one row per host, manager and worker id (the service records,
nothing else: a manager keeps its own tables through its own db driver, as the resources
manager does in `workers/resources_db.py`). Times are naive datetimes in UTC
(`oslo_utils.timeutils.utcnow()`).

Rows are oslo.db `ModelBase` objects: `row["host"]`, `row.get("pid")`, `dict(row.items())`.
A change here needs a new migration in `supervisor/db/migrations/versions/`; the unit tests
compare the migrated schema with these models on every backend.
"""

from __future__ import annotations

import sqlalchemy as sa
from oslo_db.sqlalchemy import models
from sqlalchemy import orm

BINARY = "mgr-supervisor"

# Stable constraint and index names, so later migrations (batch mode on SQLite) can name them.
NAMING_CONVENTION = {
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    "uq": "uniq_%(table_name)s0%(column_0_N_name)s",
    "pk": "%(table_name)s_pkey",
}


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Service(Base, models.ModelBase, models.TimestampMixin):
    """A worker's service record; `manager` is the manager's NAME ([manager:NAME]).

    Its column keeps nova's name, `topic`: renaming it would take a migration that rebuilds
    the table on SQLite and breaks any SQL an operator wrote against it, for a name only the
    Python needs. The attribute says what the column holds, which is never the RPC topic
    (`[manager:NAME] topic`).
    """

    __tablename__ = "services"
    __table_args__ = (
        sa.UniqueConstraint(
            "host", "topic", "worker_id", name="uniq_services0host0topic0worker_id"
        ),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    host = sa.Column(sa.String(255), nullable=False)
    binary = sa.Column(sa.String(255), nullable=False, default=BINARY, server_default=BINARY)
    manager = sa.Column("topic", sa.String(255), nullable=False)
    worker_id = sa.Column(sa.Integer, nullable=False)
    pid = sa.Column(sa.Integer, nullable=True)
    report_count = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    disabled = sa.Column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    disabled_reason = sa.Column(sa.String(255), nullable=True)
    stopped = sa.Column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    last_seen_up = sa.Column(sa.DateTime, nullable=True)

    def __repr__(self) -> str:
        return (
            f"<Service {self.id} {self.host}/{self.manager}({self.worker_id}) pid {self.pid} "
            f"reports {self.report_count}>"
        )
