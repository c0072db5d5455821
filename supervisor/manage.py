"""`mgr-supervisor-manage`: the operator's database commands (nova-manage's habit).

    mgr-supervisor-manage [--config-file FILE ...] [--config-dir DIR] db sync
    mgr-supervisor-manage [--config-file FILE ...] [--config-dir DIR] db version

It reads the supervisor's own config files (`[database] connection`). Every expected failure
is one line on stderr: exit 1 when the database cannot be reached or its schema cannot be
used, 78 for a configuration error, 2 for a usage error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg
from oslo_db import exception as db_exc

from supervisor import config, opts
from supervisor.db import api as db_api
from supervisor.db import schema
from supervisor.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

PROG = "mgr-supervisor-manage"


def _add_commands(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="the database schema")
    actions = db.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser(
        "sync", help="create the schema in an empty database, or upgrade it to this release's"
    )
    actions.add_parser("version", help="print the database's schema revision and this release's")


def main(argv: Sequence[str] | None = None) -> int:
    conf = cfg.ConfigOpts()
    conf.register_opts(opts.default_opts)  # state_path, for the default connection
    db_api.register_opts(conf)
    conf.register_cli_opt(cfg.SubCommandOpt("category", title="commands", handler=_add_commands))
    try:
        config.parse_args(conf, list(sys.argv[1:] if argv is None else argv), program=PROG)
        if not (conf.config_file or conf.config_dir):
            raise config.ConfigError(
                "no config file found: pass --config-file FILE (or --config-dir DIR); "
                f"searched oslo.config's default paths for {opts.PROJECT}.conf"
            )
        config.validate_database(conf)
        db_api.configure(conf)
    except config.ConfigError as exc:
        print(f"{PROG}: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    action = conf.category.action
    try:
        if action == "sync":
            return _sync()
        return _version()
    except db_exc.DBConnectionError as exc:
        reason = _reason(exc) + _sqlite_hint(conf.database.connection)
        print(f"{PROG}: db {action}: cannot reach the database: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    except schema.SchemaError as exc:
        print(f"{PROG}: db {action}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except db_exc.DBError as exc:
        print(f"{PROG}: db {action}: database error: {_reason(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        db_api.dispose()


def _sync() -> int:
    before = db_api.schema_version()
    db_api.sync()
    after = db_api.schema_version()
    if before == after:
        print(f"{PROG}: db sync: the schema is already at {after} (head)")
    else:
        print(f"{PROG}: db sync: the schema was upgraded from {before or 'none'} to {after}")
    return EXIT_OK


def _version() -> int:
    print(f"current: {db_api.schema_version() or 'none'}")
    print(f"head: {schema.head_version()}")
    return EXIT_OK


def _sqlite_hint(connection: str) -> str:
    """Why SQLite could not open its file, when it is a missing directory."""
    url = sa.engine.make_url(connection)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return ""
    directory = os.path.dirname(os.path.abspath(url.database))
    if os.path.isdir(directory):
        return ""
    return f" (directory {directory} does not exist; mgr-supervisor creates its state_path)"


def _reason(exc: db_exc.DBError) -> str:
    """The driver's own first line (no URL, no password), else the exception's name."""
    inner = getattr(exc, "inner_exception", None)
    cause = getattr(inner, "orig", None) or inner or exc
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


if __name__ == "__main__":
    sys.exit(main())
