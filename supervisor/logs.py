"""Whose line it is: logging set-up for the parent and the workers (docs/architecture.md, "Logs").

oslo.log does the work (handlers, formats, JSON); this module only decides what every line
says about where it comes from:

- each process has a name (`master`, `recorder`, `demo worker(0)`), set as its
  `multiprocessing.current_process().name`, so every record's `processName` carries it,
  whatever the handler; the project's default text formats show it after the pid;
- a worker's records also carry `manager` and `worker_id`, which oslo.log's JSONFormatter
  writes under `extra` (and a custom format string may use as `%(manager)s`);
- `[manager:NAME] log_file` is `[DEFAULT] log_file` for that manager's workers only;
- each periodic run and each reset gets a fresh admin request context (a new `req-…` id),
  stored where oslo.log looks for the context of a line logged without one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os

from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_log import log as oslo_log

LOG = logging.getLogger(__name__)

# oslo.log's own defaults, with the process's name after its pid.
CONTEXT_FORMAT = (
    "%(asctime)s.%(msecs)03d %(process)d %(processName)s %(levelname)s %(name)s "
    "[%(global_request_id)s %(request_id)s %(user_identity)s] %(instance)s%(message)s"
)
DEFAULT_FORMAT = (
    "%(asctime)s.%(msecs)03d %(process)d %(processName)s %(levelname)s %(name)s "
    "[-] %(instance)s%(message)s"
)
EXCEPTION_PREFIX = "%(asctime)s.%(msecs)03d %(process)d %(processName)s ERROR %(name)s %(instance)s"
PARENT_NAME = "master"


def set_process_name(name: str) -> None:
    """What `%(processName)s` (and JSON's `process_name`) says for every line of this process."""
    multiprocessing.current_process().name = name


def setup(conf: cfg.ConfigOpts, project: str) -> None:
    """The parent's logging: oslo.log with our default formats; the config at DEBUG.

    `conf` has oslo.log's options registered (config.load did it).
    """
    conf.set_default("logging_context_format_string", CONTEXT_FORMAT)
    conf.set_default("logging_default_format_string", DEFAULT_FORMAT)
    conf.set_default("logging_exception_prefix", EXCEPTION_PREFIX)
    # alembic says about ten INFO lines whenever it creates or upgrades the schema.
    oslo_log.set_defaults(default_log_levels=[*oslo_log.get_default_log_levels(), "alembic=WARN"])
    set_process_name(PARENT_NAME)
    oslo_log.setup(conf, project)
    if LOG.isEnabledFor(logging.DEBUG):  # reading every option costs, even if not logged
        # oslo.config writes a secret option's value as ****.
        conf.log_opt_values(LOG, logging.DEBUG)


def manager_log_file(conf: cfg.ConfigOpts, section: str) -> str | None:
    """Where `[manager:NAME] log_file` puts that manager's lines (under log_dir, as oslo.log
    joins `[DEFAULT] log_file`); None when its lines go where the parent's go."""
    path = conf[section].log_file
    if not path or conf.log_config_append:  # that file decides every handler
        return None
    return os.path.join(conf.log_dir, path) if conf.log_dir else path


def unwritable(path: str) -> str | None:
    """Why a worker could not open `path` for appending, or None if it can."""
    if os.path.isdir(path):
        return "is a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else "not writable"
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return f"directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"directory {directory} not writable"
    return None


def setup_worker(
    conf: cfg.ConfigOpts, project: str, section: str, manager: str, worker_id: int
) -> None:
    """Right after fork: name the process, tag its records, open the manager's log_file.

    Raises OSError when the manager's log_file cannot be opened (the lines said so go to
    the main log, still in place).
    """
    set_process_name(f"{manager} worker({worker_id})")
    path = manager_log_file(conf, section)
    if path is not None:
        _reopen(conf, project, path)
    fields = WorkerFields(manager, worker_id)
    for handler in logging.getLogger().handlers:
        handler.addFilter(fields)


def _reopen(conf: cfg.ConfigOpts, project: str, path: str) -> None:
    """oslo.log's set-up again, with this manager's file as `[DEFAULT] log_file`; the
    inherited handlers (the main log's file among them) are closed, in this process only."""
    root = logging.getLogger()
    inherited = list(root.handlers)
    conf.set_override("log_file", path)
    if conf.rate_limit_burst >= 1 and conf.rate_limit_interval >= 1:
        from oslo_log import rate_limit  # installed by the parent's set-up: once per process

        rate_limit.uninstall_filter()
    try:
        oslo_log.setup(conf, project)
    except OSError:
        conf.clear_override("log_file")
        for handler in inherited:
            if handler not in root.handlers:
                root.addHandler(handler)
        raise
    for handler in inherited:
        if handler not in root.handlers:
            handler.close()


class WorkerFields(logging.Filter):
    """Adds `manager` and `worker_id` to each record a handler emits, as JSON fields.

    A handler filter, not a record factory: a caller's own `extra={"manager": ...}` wins
    instead of making `makeRecord` raise.
    """

    def __init__(self, manager: str, worker_id: int) -> None:
        super().__init__()
        self.values = {"manager": manager, "worker_id": worker_id}

    def filter(self, record: logging.LogRecord) -> bool:
        added = [key for key in self.values if key not in record.__dict__]
        if added:
            for key in added:
                setattr(record, key, self.values[key])
            # oslo.log's JSONFormatter writes the attributes named here under "extra".
            record.extra_keys = [*getattr(record, "extra_keys", ()), *added]
        return True


def fresh_context() -> oslo_context.RequestContext:
    """A new admin request context, made the current one of this thread: lines logged
    without a context of their own (oslo.log's lookup) show its `req-…` id."""
    ctx = oslo_context.get_admin_context()
    ctx.update_store()
    return ctx
