"""The database of service records: oslo.db's `[database]` options, models, api, migrations.

This module imports nothing heavy (only `oslo_db.options`), so the config code can declare
and list the `[database]` options without paying for SQLAlchemy; `supervisor.db.api` is the
data layer (the default `db_driver`), `supervisor.db.models` the tables and
`supervisor.db.migrations` the alembic scripts shipped in the package.
"""

from __future__ import annotations

import copy

from oslo_config import cfg
from oslo_db import options as db_options

DATABASE_GROUP = "database"
# In state_path, beside the lock and the control socket: nothing to install for one host.
DEFAULT_CONNECTION = "sqlite:///$state_path/mgr-supervisor.sqlite"
# alembic's version table. Ours, not alembic's default `alembic_version`: a manager keeping
# its own tables (and its own alembic history) in the same database must not take our
# revision for its own.
VERSION_TABLE = "mgr_supervisor_alembic_version"
# PostgreSQL advisory lock held while migrating: any 64-bit constant, the same on every host.
ADVISORY_LOCK_KEY = 0x6D67_7273_7570_6462  # "mgrsupdb"


class UnusableDatabase(Exception):
    """The URL or the schema cannot be used: a configuration error, not an outage.

    Here, not in `schema`, so the recorder's loop can tell it apart without the parent that
    imports the recorder's module importing SQLAlchemy.
    """


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register oslo.db's `[database]` options on `conf`, with our default connection.

    Idempotent. `[database] connection` stays `secret=True` (oslo.db declares it so).
    """
    db_options.set_defaults(conf, connection=DEFAULT_CONNECTION)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The `[database]` options as the sample shows them: oslo.db's, with our default.

    `set_defaults` changes a `ConfigOpts`' default, not the option objects the generator
    reads, so the sample gets copies whose default is ours.
    """
    opts = []
    for opt in db_options.database_opts:
        if opt.dest == "connection":
            opt = copy.deepcopy(opt)
            opt.default = DEFAULT_CONNECTION
        opts.append(opt)
    return [(DATABASE_GROUP, opts)]
