"""What a person (or a probe) reads of the supervisor: the status and services tables, and
the three verdicts: the states `mgr-supervisorctl status` exits 0 on, the `/healthz`
verdict, and systemd's STATUS line with whether READY=1 is due.

Its own module so that the parent prints its table (in a Guru Meditation Report) without
importing `ctl`, which imports the database code the parent never holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from supervisor import health
from supervisor.policy import State
from supervisor.table import Table

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


def health_verdict(status: dict[str, Any], name: str | None = None) -> tuple[int, dict[str, Any]]:
    """(200 or 503, the JSON body) for every manager, or (404, ...) for an unknown NAME.

    Every manager must be RUNNING with all its wanted workers ready, none hung, none waiting
    for the broker, and the database reachable. A STOPPED manager (stopped on request) does
    not fail `/healthz`, as it does not fail `mgr-supervisorctl status`; its own
    `/healthz/NAME` is 503: it serves nothing.
    """
    database = status.get("database", "unknown")
    verdicts = [manager_verdict(m, database) for m in status["managers"]]
    if name is not None:
        verdicts = [v for v in verdicts if v["name"] == name]
        if not verdicts:
            return 404, {"status": "unknown", "error": f"no manager named {name!r}"}
        healthy = verdicts[0]["healthy"]
    else:
        counted = [v for v in verdicts if v["state"] != State.STOPPED.value]
        healthy = all(v["healthy"] for v in counted) and database != "unreachable"
    body = {"status": "ok" if healthy else "unhealthy", "database": database, "managers": verdicts}
    return (200 if healthy else 503), body


def manager_verdict(manager: dict[str, Any], database: str) -> dict[str, Any]:
    """One manager's state and the reasons it is not healthy (none when it is)."""
    state, ready, wanted = manager["state"], manager["ready"], manager["wanted"]
    reasons = []
    if state == State.FATAL.value:
        reasons.append(
            f"FATAL: gave up after failed starts (last: {manager['last_exit']}); "
            "mgr-supervisorctl start or restart, or a reload, starts it again"
        )
    elif state == State.BACKOFF.value:
        reasons.append(f"BACKOFF: waiting to start again (last: {manager['last_exit']})")
    elif state == State.STOPPED.value:
        reasons.append("STOPPED: stopped on request (mgr-supervisorctl stop)")
    elif state != State.RUNNING.value:
        reasons.append(f"{state}: {ready}/{wanted} workers ready")
    elif ready < wanted:
        reasons.append(f"{ready}/{wanted} workers ready")
    for worker in manager["workers"]:
        label = f"worker {worker['worker_id']} (pid {worker['pid']})"
        if worker.get("problem"):
            reasons.append(f"{label} hung: {worker['problem']}")
        if worker.get("process_state") == "stopped":
            reasons.append(f"{label}: process stopped (SIGSTOP)")
        if worker.get("phase") == health.WAITING_FOR_BROKER:
            reasons.append(f"{label}: broker down: waiting for the message broker")
        elif worker.get("rpc") == "reconnecting":
            reasons.append(f"{label}: broker down: RPC consumers reconnecting")
    if database == "unreachable":
        reasons.append("database down: service records wait for it")
    return {
        "name": manager["name"],
        "state": state,
        "healthy": not reasons,
        "ready": ready,
        "wanted": wanted,
        "reasons": reasons,
    }


def systemd_status(table: Table) -> tuple[str, bool]:
    """systemd's STATUS= line (`systemctl status`), and whether every worker of every
    manager that is not FATAL or stopped on request is ready (READY=1 is due)."""
    ready_total = wanted_total = 0
    all_ready = True
    parts = []
    fatal = []
    for name, tracked in table.managers.items():
        if tracked.removing:
            continue
        if tracked.stopped:  # as asked: no failure, no worker counted
            parts.append(f"{name} {tracked.state.value}")
            continue
        if tracked.tracker.fatal:
            fatal.append(f"{name} ({tracked.tracker.in_a_row} failed starts)")
        wanted = tracked.spec.workers
        ready = table.ready_count(tracked)
        all_ready = all_ready and (tracked.tracker.fatal or ready == wanted)
        ready_total += ready
        wanted_total += wanted
        shown = tracked.state not in (State.RUNNING, State.STARTING)
        parts.append(f"{name} {ready}/{wanted}" + (f" {tracked.state.value}" if shown else ""))
    status = f"{ready_total}/{wanted_total} workers ready: {', '.join(parts)}"
    if fatal:  # first: `systemctl status` may cut a long line
        status = f"FATAL: {', '.join(fatal)}; {status}"
    if waiting := table.waiting_for_broker():
        status += f"; {waiting} waiting for the message broker"
    return status, all_ready
