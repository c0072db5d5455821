"""Drop host_resources: the schema holds the service records only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

The resources manager's samples moved out of the supervisor's schema into a table of that
manager's own db driver (`workers/resources_db.py`, table `host_resource_samples`), which it
creates itself when missing: one manager, many drivers. The samples 0001's table held (the
latest 100 per host, by default) are not carried over; the manager takes a new one at once.

Upgrades only, as in OpenStack: a schema is never migrated down.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Its index goes with it (PostgreSQL, SQLite and MySQL all drop a table's indexes).
    op.drop_table("host_resources")
