"""mgr-supervisorctl against a real supervisor, as an operator uses it."""

from __future__ import annotations

import json
import os
import posix
import socket
import stat

from tests.functional.conftest import ctl


def control_socket(supervisor) -> str:
    return os.path.join(supervisor.state_path, "control.sock")


def test_status_shows_what_really_runs(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: ctl(supervisor, "status").returncode == 0, what="all RUNNING")
    pids = supervisor.worker_titles()

    table = ctl(supervisor, "status").stdout
    assert f"mgr-supervisor pid {supervisor.pid}" in table
    assert "alpha    RUNNING  2/2      0         -" in table
    for title, pid in pids.items():
        worker = title.split(": ")[1].replace(" worker", "")
        assert f"{pid}  {worker}" in table

    status = json.loads(ctl(supervisor, "status", "--json").stdout)
    assert status["pid"] == supervisor.pid
    workers = {w["pid"] for m in status["managers"] for w in m["workers"]}
    assert workers == set(pids.values())
    alpha = status["managers"][0]
    assert (alpha["name"], alpha["state"], alpha["running"], alpha["wanted"]) == (
        "alpha",
        "RUNNING",
        2,
        2,
    )
    assert all(w["ready"] and w["rss_mb"] > 1 for w in alpha["workers"])


def test_status_after_a_crash_loop_exits_1_and_restart_clears_fatal(supervisor):
    fast = {"start_retries": 1, "restart_backoff_initial": 0.1}
    supervisor.configure({"alpha": {"fail_in": "init_host", **fast}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: "alpha is FATAL" in supervisor.log(), what="FATAL")
    result = ctl(supervisor, "status", "--json")
    assert result.returncode == 1
    alpha = json.loads(result.stdout)["managers"][0]
    assert (alpha["state"], alpha["running"], alpha["restarts"]) == ("FATAL", 0, 1)
    assert alpha["last_exit"] == "exit status 1"
    assert "alpha    FATAL" in ctl(supervisor, "status").stdout

    assert ctl(supervisor, "restart", "alpha").returncode == 0
    supervisor.wait_for(
        lambda: [w for w in supervisor.events() if w[1] == "init_host" and w[2] == "alpha"][2:],
        what="alpha started again",
    )


def test_restart_replaces_a_managers_workers_gracefully(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 3, what="3 ready")
    before = supervisor.worker_titles()
    assert ctl(supervisor, "restart", "alpha").stdout.strip() == "mgr-supervisorctl: restart: done"
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 5, what="2 new alphas")
    after = supervisor.worker_titles()
    assert after["mgr-supervisor: beta worker(0)"] == before["mgr-supervisor: beta worker(0)"]
    old_alphas = {p for t, p in before.items() if "alpha" in t}
    assert old_alphas <= set(supervisor.pids_with("cleanup_host"))
    refused = ctl(supervisor, "restart", "nope")
    assert refused.returncode == 2 and "no manager named 'nope'" in refused.stderr


def test_reload_and_stop_work_as_the_signals(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    applied = ctl(supervisor, "reload")
    assert (applied.returncode, applied.stdout) == (0, "mgr-supervisorctl: reload: done\n")
    supervisor.wait_for(lambda: supervisor.count("reset") == 1, what="a reset")
    text = supervisor.config_file.read_text()
    supervisor.config_file.write_text(text.replace("[manager:alpha]", "[manager:typo]"))
    rejected = ctl(supervisor, "reload")
    assert rejected.returncode == 1, "a rejected reload is no success"
    assert rejected.stderr.startswith("mgr-supervisorctl: reload: ") and (
        "[manager:alpha] section" in rejected.stderr
    ), rejected.stderr
    assert supervisor.count("reset") == 1 and "reload rejected" in supervisor.log()
    assert ctl(supervisor, "stop").returncode == 0
    assert supervisor.wait_exit() == 0
    assert supervisor.count("cleanup_host") == 1
    assert not os.path.exists(control_socket(supervisor))


def test_not_running_exits_3_with_a_clear_message(supervisor):
    supervisor.configure({"alpha": {}})
    result = ctl(supervisor, "status")
    assert result.returncode == 3
    assert "cannot reach the supervisor" in result.stderr and "is mgr-supervisor running?" in (
        result.stderr
    )


def test_the_socket_is_0600_and_other_users_are_refused(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    path = control_socket(supervisor)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    if os.geteuid() != 0:
        return
    os.chmod(path, 0o666)  # only so that the peer check, not the file mode, is what refuses
    os.chmod(supervisor.state_path, 0o755)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.setuid(65534)
            client = socket.socket(socket.AF_UNIX)
            client.connect(path)
            client.sendall(b'{"command": "stop"}\n')
            os.write(write_fd, client.recv(4096))
        finally:
            # Not os._exit: under `tox -e cover` coverage wraps it to save its data, which
            # uid 65534 cannot; the wrapper would raise, and the child run the rest of the suite.
            posix._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    answer = json.loads(os.read(read_fd, 4096))
    assert answer == {"ok": False, "error": "permission denied"}
    assert "refused a request from uid 65534" in supervisor.log()
    assert supervisor.proc.poll() is None


def test_unknown_commands_are_refused(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    client = socket.socket(socket.AF_UNIX)
    client.connect(control_socket(supervisor))
    client.sendall(b'{"command": "__import__(\\"os\\").system(\\"id\\")"}\n')
    answer = json.loads(client.recv(4096))
    client.close()
    assert answer["ok"] is False and "unknown command" in answer["error"]


def test_a_second_supervisor_on_the_same_socket_is_refused(supervisor, tmp_path):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("post_start_hook") == 1, what="ready")
    from tests.functional.test_bad_config import run_supervisor

    control_socket = os.path.join(supervisor.state_path, "control.sock")
    before = os.stat(control_socket)
    result = run_supervisor(tmp_path, "--config-file", str(supervisor.config_file))
    assert result.returncode == 78
    assert "another supervisor is running" in result.stderr
    assert supervisor.count("init_host") == 1
    after = os.stat(control_socket)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_usage_errors_exit_2_before_anything_is_reached(supervisor):
    """A missing HOST or MANAGER, or a --timeout that cannot be waited, is the caller's
    mistake (2), not a refusal (1) or a broker that does not answer (3)."""
    supervisor.configure({"alpha": {}})
    for args, said in (
        (("services", "disable", "node-a"), "services disable: MANAGER is required"),
        (("services", "enable"), "services enable: HOST is required"),
        (("services", "delete"), "services delete: HOST is required"),
        (("call", "alpha", "echo", "--timeout", "0"), "call: --timeout 0: must be more than 0"),
        (("call", "alpha", "echo", "--timeout", "-1"), "call: --timeout -1: must be more than 0"),
    ):
        result = ctl(supervisor, *args)
        assert (result.returncode, result.stderr) == (2, f"mgr-supervisorctl: {said}\n"), args


def test_services_never_creates_the_database_it_reads(supervisor):
    """A read (or a change) of records on a SQLite file that is not there yet says so and
    leaves no empty file behind, owned by whoever asked."""
    supervisor.configure({"alpha": {}})
    database = os.path.join(supervisor.state_path, "mgr-supervisor.sqlite")
    for args in (("services",), ("services", "delete", "node-a")):
        result = ctl(supervisor, *args)
        assert (result.returncode, result.stderr) == (
            1,
            f"mgr-supervisorctl: services: no database at {database} yet (the supervisor "
            "creates it at its first start)\n",
        )
    assert not os.path.exists(database)
