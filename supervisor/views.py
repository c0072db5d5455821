"""What a person reads of the supervisor: the status and services tables, and the verdict
`mgr-supervisorctl status` exits with.

Its own module so that the parent prints its table (in a Guru Meditation Report) without
importing `ctl`, which imports the database code the parent never holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# `status` exits 0 when every manager shown is in one of these: running, or stopped on request.
FINE_STATES = frozenset({"RUNNING", "STOPPED"})


def format_services(records: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [
        ("HOST", "MANAGER", "WORKER", "PID", "STATE", "REPORTS", "LAST-SEEN")
    ]
    for r in records:
        rows.append(
            (
                r["host"],
                r["manager"],
                str(r["worker_id"]),
                str(r["pid"] or "-"),
                r["state"] + (f" ({r['disabled_reason']})" if r["disabled_reason"] else ""),
                str(r["report_count"]),
                r["last_seen"] or "-",
            )
        )
    return _table(rows)


def format_status(status: dict[str, Any]) -> str:
    """The status as two tables a person reads at a glance."""
    managers: list[tuple[str, ...]] = [("MANAGER", "STATE", "WORKERS", "RESTARTS", "LAST EXIT")]
    workers: list[tuple[str, ...]] = [("PID", "WORKER", "PHASE", "UPTIME", "RSS", "HEARTBEAT")]
    rpc = any(w.get("rpc", "off") != "off" for m in status["managers"] for w in m["workers"])
    if rpc:
        workers[0] += ("RPC", "SERVED", "FAILED", "REJECTED")
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
            row: tuple[str, ...] = (
                str(w["pid"]),
                f"{m['name']}({w['worker_id']})",
                phase,
                _duration(w["uptime"]),
                rss,
                f"{w['heartbeat_age']:.1f}s ago",
            )
            if rpc:
                row += (
                    w["rpc"],
                    str(w["rpc_served"]),
                    str(w["rpc_failed"]),
                    str(w["rpc_rejected"]),
                )
            workers.append(row)
    head = f"mgr-supervisor pid {status['pid']}, up {_duration(status['uptime'])}"
    if status.get("database") == "unreachable":
        head += "; the database is unreachable (service records wait for it)"
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
