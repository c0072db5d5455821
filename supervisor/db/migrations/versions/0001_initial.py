"""The initial schema: services (the service records) and host_resources.

Revision ID: 0001
Revises:
Create Date: 2025-11-27

Upgrades only, as in OpenStack: a schema is never migrated down.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(255), nullable=False, server_default="mgr-supervisor"),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("worker_id", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("report_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("stopped", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_seen_up", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="services_pkey"),
        sa.UniqueConstraint(
            "host", "topic", "worker_id", name="uniq_services0host0topic0worker_id"
        ),
    )
    op.create_table(
        "host_resources",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("sampled_at", sa.DateTime, nullable=False),
        sa.Column("driver", sa.String(64), nullable=True),
        sa.Column("cpu_count", sa.Integer, nullable=True),
        sa.Column("load_1", sa.Float, nullable=True),
        sa.Column("load_5", sa.Float, nullable=True),
        sa.Column("load_15", sa.Float, nullable=True),
        sa.Column("memory_total", sa.BigInteger, nullable=True),
        sa.Column("memory_available", sa.BigInteger, nullable=True),
        sa.Column("disks", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="host_resources_pkey"),
    )
    op.create_index("host_resources_host_sampled_at_idx", "host_resources", ["host", "sampled_at"])
