"""`mgr-supervisorctl`: talks to a running supervisor, or reads the service records.

`status`, `restart`, `reload`, `stop` and `start` go through the supervisor's control socket
(`--socket PATH`, else `[supervisor] control_socket` of the config files, oslo.config's
default ones when no `--config-file` is given, else the built-in default);
`services` reads (and `services disable|enable|delete` change) the records straight from
`[database] connection`, so they work while this host's supervisor is down; `call` sends an
RPC to a manager's workers on any host through `[DEFAULT] transport_url`.

Exit status: 0 done (every manager shown RUNNING or STOPPED, every record shown, the call
answered), 1 refused, a manager shown in another state (FATAL, BACKOFF, STARTING, STOPPING)
or the remote method raised, 2 a bad argument (an unknown manager NAME too), 3 the
supervisor, the database or the message broker cannot be reached (or no worker answered in
time), 4 the control socket refuses this user, 78 a configuration error.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from supervisor import config, control, notifications, opts, views
from supervisor.exits import (
    EXIT_DENIED,
    EXIT_FAILURE,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    config_error,
)

CTL = "mgr-supervisorctl"
# `stop NAME` waits this long, by default, for the workers to be gone (the default
# graceful_shutdown_timeout, and a little), asking every STOP_POLL seconds.
STOP_WAIT = 65.0
STOP_POLL = 0.1
# Connection attempts to the broker for a notification before the command gives up on it.
NOTIFY_RETRIES = 2
SERVICE_ACTIONS = ("list", "disable", "enable", "delete")
SOCKET_OPT = cfg.StrOpt(
    "socket",
    metavar="PATH",
    help="The supervisor's control socket: no config file is needed. Default: "
    "[supervisor] control_socket of --config-file, else of the default config files "
    "(~/.mgr-supervisor/, ~/, /etc/mgr-supervisor/, /etc/).",
)


def _add_commands(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="what runs: managers, then workers")
    status.add_argument("managers", nargs="*", metavar="NAME", help="only these managers")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    restart = subparsers.add_parser(
        "restart", help="clear FATAL and replace a manager's workers, one at a time"
    )
    restart.add_argument("manager", help="the manager's NAME")
    restart.add_argument(
        "--all-at-once", action="store_true", help="stop every worker at once (an outage)"
    )
    subparsers.add_parser(
        "reload",
        help="as SIGHUP: validate the config and apply it; exits 1 with the reason when the "
        "supervisor rejects it",
    )
    stop = subparsers.add_parser(
        "stop",
        help="stop NAME ...: stop those managers' workers gracefully, STOPPED until start; "
        "stop (no NAME): as SIGTERM, stop every worker gracefully and exit",
    )
    stop.add_argument("managers", nargs="*", metavar="NAME", help="the managers to stop")
    stop.add_argument(
        "--no-wait",
        action="store_true",
        help="stop NAME: return once asked, without waiting for the workers to be gone",
    )
    stop.add_argument(
        "--timeout",
        type=float,
        default=STOP_WAIT,
        help=f"stop NAME: seconds to wait for the workers to be gone (default {STOP_WAIT:g})",
    )
    start = subparsers.add_parser(
        "start", help="start the workers of STOPPED (or FATAL) managers, with a fresh count"
    )
    start.add_argument("managers", nargs="+", metavar="NAME", help="the managers to start")
    services = subparsers.add_parser(
        "services",
        help="the service records of every host sharing the database: "
        "services [list] [--host H] [--manager M] [--json] | disable HOST MANAGER [--reason R] "
        "| enable HOST MANAGER | delete HOST [MANAGER]",
    )
    services.add_argument("verb", nargs="?", default="list", choices=SERVICE_ACTIONS)
    services.add_argument("target_host", nargs="?", metavar="HOST")
    services.add_argument("target_manager", nargs="?", metavar="MANAGER")
    services.add_argument("--host", dest="filter_host", help="only this host's records")
    services.add_argument("--manager", dest="filter_manager", help="only this manager's")
    services.add_argument("--reason", help="why it is disabled (with disable)")
    services.add_argument("--json", action="store_true", help="print the records as JSON")
    call = subparsers.add_parser(
        "call",
        help="RPC to a manager's workers: call MANAGER METHOD [key=JSON ...] [--host H] "
        "[--version X.Y] [--namespace NS] [--cast | --fanout] [--timeout S]; prints the "
        "result as JSON",
    )
    call.add_argument("manager", help="the manager's NAME (its topic unless [manager:NAME] topic)")
    call.add_argument("method", help="the manager's method")
    call.add_argument("arguments", nargs="*", metavar="key=JSON", help="keyword arguments")
    call.add_argument(
        "--host",
        "--server",
        dest="call_host",
        help="only the workers of this host (the topic.host queue; oslo.messaging's server)",
    )
    call.add_argument(
        "--version",
        dest="call_version",
        help="the RPC version to ask for (default: the manager class's target.version, else 1.0)",
    )
    call.add_argument("--namespace", dest="call_namespace", help="the endpoint's target namespace")
    mode = call.add_mutually_exclusive_group()
    mode.add_argument("--cast", action="store_true", help="send, expect no answer")
    mode.add_argument("--fanout", action="store_true", help="cast to every worker of the topic")
    call.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")


def main(argv: Sequence[str] | None = None) -> int:
    # Every failure is one line of ours: no library's log record (with its traceback) on stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    # oslo's global config: oslo.messaging registers some of its options only there.
    conf = cfg.CONF
    config.register_static_opts(conf)
    conf.register_cli_opt(SOCKET_OPT)
    conf.register_cli_opt(cfg.SubCommandOpt("action", handler=_add_commands))
    try:
        config.parse_args(conf, list(sys.argv[1:] if argv is None else argv), program=CTL)
    except config.ConfigError as exc:
        return config_error(str(exc), program=CTL)
    action = conf.action
    if action.name == "services":
        return _services(conf, action)
    if action.name == "call":
        return _call(conf, action)
    return _control(conf.socket or conf.supervisor.control_socket, action)


def _control(path: str, action: Any) -> int:
    """`status`, `restart`, `reload`, `stop`, `start`: one request to the control socket."""
    message: dict[str, Any] = {"command": action.name}
    what = action.name
    if action.name == "restart":
        message["manager"] = action.manager
        message["all_at_once"] = action.all_at_once
    elif action.name in ("status", "stop", "start") and action.managers:
        message["managers"] = action.managers
        what = " ".join([action.name, *action.managers])
    try:
        answer = control.request(path, message)
    except control.ControlError as exc:
        print(f"{CTL}: {exc}", file=sys.stderr)
        return EXIT_DENIED if isinstance(exc, control.ControlDenied) else EXIT_NOT_RUNNING
    if not answer.get("ok"):
        print(f"{CTL}: {action.name}: {answer.get('error')}", file=sys.stderr)
        return EXIT_USAGE if answer.get("unknown") else EXIT_FAILURE
    if action.name == "stop" and action.managers and not action.no_wait:
        if not _wait_stopped(path, action.managers, action.timeout):
            late = f"{CTL}: {what}: workers still stopping after {action.timeout:g}s"
            print(late, file=sys.stderr)
            return EXIT_FAILURE
    if action.name != "status":
        print(f"{CTL}: {what}: done")
        return EXIT_OK
    try:
        status = answer["status"]
        text = json.dumps(status, indent=2) if action.json else views.format_status(status)
        all_fine = all(m["state"] in views.FINE_STATES for m in status["managers"])
    except (KeyError, TypeError, ValueError) as exc:
        print(f"{CTL}: status: unexpected answer from the supervisor: {exc!r}", file=sys.stderr)
        return EXIT_FAILURE
    print(text)
    return EXIT_OK if all_fine else EXIT_FAILURE


def _wait_stopped(path: str, names: list[str], timeout: float) -> bool:
    """Whether those managers' workers are all gone within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = control.request(path, {"command": "status", "managers": names})
            managers = answer["status"]["managers"]
        except (control.ControlError, KeyError, TypeError):
            return False  # the supervisor went away, or answers oddly: not known to be done
        if all(not m["workers"] for m in managers):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(STOP_POLL)


def _services(conf: cfg.ConfigOpts, action: Any) -> int:
    """`services`: read or change the records in the shared database."""
    verb = action.verb
    if verb != "list" and not action.target_host:
        print(f"{CTL}: services {verb}: HOST is required", file=sys.stderr)
        return EXIT_USAGE
    if verb in ("disable", "enable") and not action.target_manager:
        print(f"{CTL}: services {verb}: MANAGER is required", file=sys.stderr)
        return EXIT_USAGE
    # Here only: SQLAlchemy and oslo.db are a quarter of a second that `status` and the
    # other control commands never pay.
    from supervisor.db import api as db_api
    from supervisor.db import schema

    try:
        config.validate_database(conf)
    except config.ConfigError as exc:
        return config_error(str(exc), program=CTL)
    if (path := schema.missing_sqlite_file(conf.database.connection)) is not None:
        print(
            f"{CTL}: services: no database at {path} yet (the supervisor creates it at its "
            "first start)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    db_api.configure(conf)
    try:
        if db_api.schema_version() is None:
            print(
                f"{CTL}: services: the database has no service records yet (no schema; "
                "mgr-supervisor-manage db sync creates it)",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        if verb == "list":
            rows = db_api.service_get_all(host=action.filter_host, manager=action.filter_manager)
            down_time = conf.service_down_time
            records = [_record(row, db_api.service_state(row, down_time)) for row in rows]
            print(json.dumps(records, indent=2) if action.json else views.format_services(records))
            return EXIT_OK
        if verb == "delete":
            changed = db_api.service_delete(action.target_host, action.target_manager)
        else:
            changed = db_api.service_set_disabled(
                action.target_host, action.target_manager, verb == "disable", action.reason
            )
    except Exception as exc:
        refused = db_api.refusal(exc)
        why = (
            f"the database refused the connection: {refused}"
            if refused is not None
            else f"cannot reach the database: {type(exc).__name__}"
        )
        print(f"{CTL}: services: {why}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    what = " ".join(filter(None, [action.target_host, action.target_manager]))
    if not changed:
        print(f"{CTL}: services {verb}: no record of {what}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{CTL}: services {verb}: {changed} record(s) of {what}")
    if verb in ("disable", "enable"):
        _announce(conf, action, db_api)
    return EXIT_OK


def _announce(conf: cfg.ConfigOpts, action: Any, db_api: Any) -> None:
    """`service.update` for each record disabled or enabled, when `[oslo_messaging_
    notifications] driver` is set: a broker that does not take them is said on stderr; the
    change is made either way."""
    notifier = notifications.get_notifier(opts.PROJECT, conf.host, conf)
    if not notifier.is_enabled():
        return
    try:
        rows = db_api.service_get_all(host=action.target_host, manager=action.target_manager)
        notifications.announce_disabled(
            notifier.prepare(retry=NOTIFY_RETRIES),
            rows,
            action.verb == "disable",
            conf.service_down_time,
            db_api.service_liveness,
        )
    except Exception as exc:
        print(f"{CTL}: services {action.verb}: not notified: {type(exc).__name__}", file=sys.stderr)
    finally:
        notifier.transport.cleanup()


def _call(conf: cfg.ConfigOpts, action: Any) -> int:
    """`call`: one RPC, its JSON result on stdout; every failure one line on stderr."""
    if not action.timeout > 0:
        print(f"{CTL}: call: --timeout {action.timeout:g}: must be more than 0", file=sys.stderr)
        return EXIT_USAGE
    arguments = {}
    for item in action.arguments:
        key, sep, text = item.partition("=")
        try:
            if not sep or not key.isidentifier():
                raise ValueError("not key=JSON")
            arguments[key] = json.loads(text)
        except ValueError as exc:
            print(f"{CTL}: call: argument {item!r}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        config.validate_transport(conf)
    except config.ConfigError as exc:
        return config_error(str(exc), program=CTL)
    if not config.rpc_enabled(conf):
        return config_error("[DEFAULT] transport_url: not set: RPC is off", program=CTL)
    from supervisor import rpc  # imported by validate_transport: RPC is on

    config.register_manager_opts(conf, action.manager)
    section = conf[config.MANAGER_SECTION_PREFIX + action.manager]
    topic = section.topic or action.manager
    mode = "fanout" if action.fanout else "cast" if action.cast else "call"
    version = action.call_version or _target_version(section.manager, action.call_namespace)
    try:
        result = rpc.invoke(
            topic,
            action.method,
            arguments,
            server=action.call_host,
            version=version,
            namespace=action.call_namespace,
            mode=mode,
            timeout=action.timeout,
            conf=conf,
        )
    except (rpc.CallFailed, rpc.NoAnswer) as exc:
        print(f"{CTL}: call {action.manager} {action.method}: {exc}", file=sys.stderr)
        return EXIT_FAILURE if isinstance(exc, rpc.CallFailed) else EXIT_NOT_RUNNING
    if mode == "call":
        print(json.dumps(result, indent=2, sort_keys=True))
    return EXIT_OK


def _target_version(path: str | None, namespace: str | None) -> str | None:
    """The version a versioned manager serves (`target.version`, as nova's managers declare
    it) in `namespace`, when the class the config names can be imported here; else None,
    oslo.messaging's 1.0 (another namespace is another endpoint's)."""
    if not path:
        return None
    try:
        cls = config.import_manager_class(path)
    except ValueError:
        return None
    target = getattr(cls, "target", None)
    if getattr(target, "namespace", None) != namespace:
        return None
    return getattr(target, "version", None)


def _record(row: Any, state: str) -> dict[str, Any]:
    last_seen = row["last_seen_up"]
    return {
        "host": row["host"],
        "manager": row["manager"],
        "worker_id": row["worker_id"],
        "pid": row["pid"],
        "state": state,
        "report_count": row["report_count"],
        "last_seen": None if last_seen is None else last_seen.isoformat() + "Z",
        "disabled": bool(row["disabled"]),
        "disabled_reason": row["disabled_reason"],
    }
