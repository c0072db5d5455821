"""Every option of mgr-supervisor, declared here and nowhere else, so `list_opts()`
(oslo-config-generator, the docs' configuration reference) and the validation in
`supervisor/config.py` always agree.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from oslo_config import cfg

from supervisor import db
from supervisor.manager import DEFAULT_DB_DRIVER, MANAGER_SECTION_PREFIX

PROJECT = "mgr-supervisor"
SUPERVISOR_GROUP = "supervisor"


def _default_state_path() -> str:
    """root gets the FHS place; anyone else a directory of their own, never /tmp."""
    if os.geteuid() == 0:
        return "/var/lib/mgr-supervisor"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, PROJECT)


default_opts = [
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<this machine's hostname>",
        help="Name of this node, passed to every manager as its `host`.",
    ),
    cfg.StrOpt(
        "state_path",
        default=_default_state_path(),
        sample_default="/var/lib/mgr-supervisor (root) or ~/.local/state/mgr-supervisor",
        help="Directory for the supervisor's state: its lock, the control socket, the "
        "service recorder's socket and (by default) the SQLite database of service records. "
        "Created (mode 0700) if missing; refused if it is "
        "not owned by the supervisor's user or is writable by group or others.",
    ),
    cfg.IntOpt(
        "graceful_shutdown_timeout",
        default=60,
        min=0,
        mutable=True,
        help="Seconds a stopping worker gets to finish `cleanup_host()` before it is "
        "killed together with its descendants. 0 waits forever. Same name and meaning "
        "as oslo.service's option.",
    ),
    cfg.ListOpt(
        "allowed_rpc_exception_modules",
        default=[],
        help="Modules whose exceptions an RPC caller in this process rebuilds as their own "
        "type when a remote method raises them (oslo.messaging's allowed_remote_exmods, as "
        "nova's exception modules); any other arrives as RemoteError. Besides builtins and "
        "oslo.messaging's, which always travel.",
    ),
    cfg.IntOpt(
        "report_interval",
        default=10,
        min=1,
        help="Seconds between service record heartbeats: each worker adds one to its "
        "record's report_count and sets last_seen_up. Same name and meaning as nova's "
        "option.",
    ),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="Maximum seconds since a service record's last heartbeat for it to be "
        "considered up; must be greater than report_interval. Same name and meaning as "
        "nova's option.",
    ),
]

cli_opts = [
    cfg.BoolOpt(
        "check-config",
        default=False,
        help="Validate the configuration, print the result and exit: 0 if it is valid, "
        "78 if not. Nothing is started.",
    ),
]

supervisor_opts = [
    cfg.ListOpt(
        "enabled_managers",
        default=[],
        mutable=True,
        help="Names of the managers to run; each needs a [manager:NAME] section. On SIGHUP, "
        "added managers start and removed ones stop.",
    ),
    cfg.StrOpt(
        "control_socket",
        default="$state_path/control.sock",
        help="Unix socket (mode 0600) on which the supervisor answers mgr-supervisorctl: "
        "status, restart, reload, stop, start. Only root and the supervisor's own user may "
        "use it.",
    ),
    cfg.StrOpt(
        "http_listen",
        default="",
        help="HOST:PORT on which the supervisor serves /livez, /healthz, /healthz/NAME and "
        "/metrics (Prometheus) over HTTP, without authentication; IPv6 as [::1]:9292, all "
        "IPv4 interfaces as :9292. Empty (the default): off. Needs a restart to change.",
    ),
]

# sun_path is 108 bytes, with a terminating NUL.
MAX_SOCKET_PATH = 107


def http_address(value: str) -> tuple[int, tuple[Any, ...]]:
    """`[supervisor] http_listen` as (address family, socket address), or ValueError.

    `HOST:PORT`, `[IPV6]:PORT`, `:PORT` (every IPv4 interface); HOST may be a name, resolved
    here, once: validation and the bind see the same address.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ValueError("expected HOST:PORT (IPv6 as [::1]:9292)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("an IPv6 address needs brackets: [ADDRESS]:PORT")
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or "0.0.0.0", int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"cannot resolve {host!r}: {reason}") from None
    return family, address


def manager_common_opts() -> list[cfg.Opt]:
    """Options every [manager:NAME] section has; [supervisor] may set their defaults."""
    return [
        cfg.IntOpt(
            "workers",
            default=1,
            min=1,
            mutable=True,
            help="Number of worker processes of the manager. In [supervisor]: the default "
            "for every manager. On SIGHUP, missing worker ids start and the highest ones stop.",
        ),
        cfg.IntOpt(
            "periodic_interval_max",
            default=60,
            min=1,
            mutable=True,
            help="Longest sleep, in seconds, between two runs of the periodic tasks.",
        ),
        cfg.IntOpt(
            "periodic_fuzzy_delay",
            default=0,
            min=0,
            mutable=True,
            help="Random delay, up to this many seconds, before a worker's first periodic "
            "run, so that workers started together do not tick together.",
        ),
        cfg.FloatOpt(
            "start_secs",
            default=1.0,
            min=0,
            mutable=True,
            help="A worker that exits sooner than this after it was started (for any reason "
            "but a stop the supervisor asked for) is a failed start.",
        ),
        cfg.IntOpt(
            "start_retries",
            default=5,
            min=-1,
            mutable=True,
            help="Failed starts in a row after which the manager is FATAL (so start_retries "
            "+ 1 starts): no more restarts until a reload or mgr-supervisorctl start or "
            "restart. -1: never FATAL, restart forever with the backoff capped at "
            "restart_backoff_max (for a manager waiting for a database or broker that "
            "comes up later).",
        ),
        cfg.FloatOpt(
            "restart_backoff_initial",
            default=1.0,
            min=0,
            mutable=True,
            help="Delay, in seconds, before the next start after a failed start; it doubles "
            "with each further failed start in a row.",
        ),
        cfg.FloatOpt(
            "restart_backoff_max",
            default=60.0,
            min=0,
            mutable=True,
            help="Longest delay, in seconds, between failed starts.",
        ),
        cfg.FloatOpt(
            "start_timeout",
            default=0.0,
            min=0,
            mutable=True,
            help="A worker not ready (post_start_hook returned) this many seconds after it "
            "was started is stopped and restarted; counts as a failed start. 0 = off.",
        ),
        cfg.FloatOpt(
            "heartbeat_timeout",
            default=0.0,
            min=0,
            mutable=True,
            help="A ready worker stuck this many seconds in one hook or periodic task (or "
            "asleep that long past its wake-up time) is stopped and restarted. 0 = off.",
        ),
        cfg.IntOpt(
            "max_rss_mb",
            default=0,
            min=0,
            mutable=True,
            help="A worker whose resident memory exceeds this many MiB is stopped "
            "gracefully and restarted. Sampled about once a second. 0 = off.",
        ),
    ]


def manager_section_opts() -> list[cfg.Opt]:
    """The options of one [manager:NAME] section, without the manager's own `opts`."""
    return [
        cfg.StrOpt(
            "manager",
            mutable=True,
            help="Dotted path of the Manager subclass to run (required), "
            "e.g. workers.demo.DemoManager. On SIGHUP, a change restarts the manager's "
            "workers.",
        ),
        cfg.StrOpt(
            "db_driver",
            default=DEFAULT_DB_DRIVER,
            mutable=True,
            help="Module imported as the manager's `self.db` (smart managers, dumb data). "
            "The default is the project's db api, on [database] connection. On SIGHUP, a "
            "change restarts the manager's workers.",
        ),
        cfg.StrOpt(
            "topic",
            mutable=True,
            help="RPC topic the manager's workers consume (with [DEFAULT] transport_url); "
            "default: the manager's NAME. On SIGHUP, a change restarts the manager's workers.",
        ),
        cfg.StrOpt(
            "log_file",
            help="The manager's workers log to this file instead of [DEFAULT] log_file "
            "(under [DEFAULT] log_dir when that is set, as oslo.log places log_file); the "
            "supervisor's own lines stay in the main log, and use_stderr, use_journal and "
            "use_syslog apply as set. Ignored with log_config_append. Default: the main log.",
        ),
        *manager_common_opts(),
    ]


SAMPLE_MANAGER_GROUP = cfg.OptGroup(
    MANAGER_SECTION_PREFIX + "demo",
    help="One [manager:NAME] section per name in [supervisor] enabled_managers. Each has "
    "the options below (workers ... periodic_fuzzy_delay default to [supervisor]'s values) "
    "plus the manager class's own `opts`. This one runs the shipped demo manager.",
)


def list_opts() -> list[tuple[str | cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace `mgr-supervisor`).

    `[database]` is oslo.db's options with our default connection (SQLite in state_path).
    """
    return [
        ("DEFAULT", default_opts),
        (SUPERVISOR_GROUP, supervisor_opts + manager_common_opts()),
        (SAMPLE_MANAGER_GROUP, manager_section_opts()),
        *db.list_opts(),
    ]
