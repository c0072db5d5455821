"""Console scripts. `main()` turns every expected failure into one line and an exit status."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as oslo_log

from supervisor import config, control
from supervisor.arbiter import Arbiter

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NOT_RUNNING = 3  # as systemctl and LSB status scripts say "not running"
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h
CTL = "mgr-supervisorctl"


def main(argv: Sequence[str] | None = None) -> int:
    """`mgr-supervisor --config-file FILE [--config-dir DIR] [--check-config]`."""
    # A SIGHUP before the arbiter's handlers exist would kill us (its default action):
    # hold it until they do, then it is handled as a reload.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        conf, specs = config.load(args, conf=cfg.CONF)
    except config.ConfigError as exc:
        return _config_error(str(exc))
    if conf.check_config:
        summary = ", ".join(f"{spec.name} ({spec.workers})" for spec in specs)
        print(f"{config.PROJECT}: config OK: {len(specs)} manager(s): {summary}")
        return EXIT_OK
    oslo_log.setup(conf, config.PROJECT)
    # `kill -USR2` prints every thread's stack to stderr, in the parent and in any worker.
    faulthandler.register(signal.SIGUSR2, file=sys.stderr, all_threads=True)

    try:
        status = Arbiter(args, conf, specs).run()
    except config.ConfigError as exc:
        return _config_error(str(exc))
    except control.ControlError as exc:
        return _config_error(f"[supervisor] control_socket: {exc}")
    except Exception:
        LOG.exception("internal error, stopping")
        return EXIT_FAILURE
    # Skip the interpreter's finalization (25-45 ms with our imports): flush the logs and go.
    logging.shutdown()
    os._exit(status)


def _config_error(message: str, program: str = config.PROJECT) -> int:
    """One line on stderr, and the exit status that says "configuration error"."""
    print(f"{program}: config error: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _add_ctl_commands(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="what runs: managers, then workers")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    restart = subparsers.add_parser(
        "restart", help="clear FATAL and replace a manager's workers, one at a time"
    )
    restart.add_argument("manager", help="the manager's NAME")
    restart.add_argument(
        "--all-at-once", action="store_true", help="stop every worker at once (an outage)"
    )
    subparsers.add_parser("reload", help="as SIGHUP: validate the config and apply it")
    subparsers.add_parser("stop", help="as SIGTERM: stop every worker gracefully and exit")


def ctl_main(argv: Sequence[str] | None = None) -> int:
    """`mgr-supervisorctl --config-file FILE status|restart NAME|reload|stop`.

    Exit status: 0 all RUNNING (or the command was done), 1 some manager not RUNNING (or
    the command was refused), 3 the supervisor is not running or cannot be reached.
    """
    conf = cfg.ConfigOpts()
    conf.register_opts(config.default_opts)
    conf.register_opts(config.supervisor_opts, group=config.SUPERVISOR_GROUP)
    conf.register_cli_opt(cfg.SubCommandOpt("action", handler=_add_ctl_commands))
    try:
        config.parse_args(conf, list(sys.argv[1:] if argv is None else argv))
    except config.ConfigError as exc:
        return _config_error(str(exc), program=CTL)
    action = conf.action
    message: dict[str, Any] = {"command": action.name}
    if action.name == "restart":
        message["manager"] = action.manager
        message["all_at_once"] = action.all_at_once
    try:
        answer = control.request(conf.supervisor.control_socket, message)
    except control.ControlError as exc:
        print(f"{CTL}: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not answer.get("ok"):
        print(f"{CTL}: {action.name}: {answer.get('error')}", file=sys.stderr)
        return EXIT_FAILURE
    if action.name != "status":
        print(f"{CTL}: {action.name}: done")
        return EXIT_OK
    try:
        status = answer["status"]
        text = json.dumps(status, indent=2) if action.json else format_status(status)
        all_running = all(m["state"] == "RUNNING" for m in status["managers"])
    except (KeyError, TypeError, ValueError) as exc:
        print(f"{CTL}: status: unexpected answer from the supervisor: {exc!r}", file=sys.stderr)
        return EXIT_FAILURE
    print(text)
    return EXIT_OK if all_running else EXIT_FAILURE


def format_status(status: dict[str, Any]) -> str:
    """The status as two tables a person reads at a glance."""
    managers: list[tuple[str, ...]] = [("MANAGER", "STATE", "WORKERS", "RESTARTS", "LAST EXIT")]
    workers: list[tuple[str, ...]] = [("PID", "WORKER", "PHASE", "UPTIME", "RSS", "HEARTBEAT")]
    for m in status["managers"]:
        managers.append(
            (
                m["name"],
                m["state"],
                f"{m['running']}/{m['wanted']}",
                str(m["restarts"]),
                m["last_exit"],
            )
        )
        for w in m["workers"]:
            phase = w["phase"] + (f" (stopping: {w['stopping']})" if w["stopping"] else "")
            if w.get("process_state") == "stopped":
                phase += " (process stopped)"
            rss = "-" if w["rss_mb"] is None else f"{w['rss_mb']:.1f}M"
            workers.append(
                (
                    str(w["pid"]),
                    f"{m['name']}({w['worker_id']})",
                    phase,
                    _duration(w["uptime"]),
                    rss,
                    f"{w['heartbeat_age']:.1f}s ago",
                )
            )
    head = f"mgr-supervisor pid {status['pid']}, up {_duration(status['uptime'])}"
    return "\n\n".join([head, _table(managers), _table(workers)])


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


if __name__ == "__main__":
    sys.exit(main())
