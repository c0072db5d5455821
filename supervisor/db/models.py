"""The tables: nova's `services` (one row per host, manager and worker id) and the samples of
the resources manager. Times are naive datetimes in UTC (`oslo_utils.timeutils.utcnow()`).

Rows are oslo.db `ModelBase` objects: `row["host"]`, `row.get("pid")`, `dict(row.items())`.
A change here needs a new migration in `supervisor/db/migrations/versions/`; the unit tests
compare the migrated schema with these models on every backend.
"""

from __future__ import annotations

import json
from typing import Any

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


class HostResources(Base, models.ModelBase):
    """One sample of a host's resources, written by the resources manager."""

    __tablename__ = "host_resources"
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
