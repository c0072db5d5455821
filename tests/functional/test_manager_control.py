"""mgr-supervisorctl per manager (`status NAME`, `stop NAME`, `start NAME`) and without a
config file (`--socket PATH`, or the socket found in oslo.config's default config files)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time

from tests.functional.conftest import CTL, at_once, ctl
from tests.functional.test_control_protocol import ask
from tests.functional.test_ctl import control_socket


def run_ctl(*args: str, home: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """mgr-supervisorctl as an operator types it: no --config-file, HOME of our choosing."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("XDG_")}
    return subprocess.run(
        [str(CTL), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "HOME": home},
        cwd=cwd or home,
    )


def managers(supervisor, *names: str) -> dict[str, dict]:
    result = ctl(supervisor, "status", "--json", *names)
    assert result.returncode in (0, 1), result.stderr
    return {m["name"]: m for m in json.loads(result.stdout)["managers"]}


def state(supervisor, name: str) -> str:
    return managers(supervisor, name)[name]["state"]


def starts(supervisor, name: str) -> list[int]:
    return [int(w[0]) for w in supervisor.events() if w[1] == "init_host" and w[2] == name]


def ready(supervisor) -> None:
    supervisor.wait_for(lambda: ctl(supervisor, "status").returncode == 0, what="all RUNNING")


def test_status_names_shows_only_those_managers(supervisor):
    supervisor.configure({"alpha": {"workers": 2}, "beta": {}, "gamma": {}})
    supervisor.start()
    ready(supervisor)
    assert list(managers(supervisor, "beta")) == ["beta"]
    assert list(managers(supervisor, "gamma", "alpha")) == ["alpha", "gamma"]
    table = ctl(supervisor, "status", "beta").stdout
    assert ["beta", "RUNNING", "1/1", "0", "-"] in [line.split() for line in table.splitlines()]
    assert "alpha" not in table and "gamma" not in table

    for args in (["status", "nope"], ["status", "beta", "nope", "zeta"]):
        result = ctl(supervisor, *args)
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and "no manager named 'nope'" in result.stderr


def test_stop_name_stops_its_workers_until_start(supervisor):
    alpha = {"workers": 2, "start_secs": 0.3, "restart_backoff_initial": 0.2}
    supervisor.configure({"alpha": alpha, "beta": {}})
    supervisor.start()
    ready(supervisor)
    alphas = set(starts(supervisor, "alpha"))
    beta = supervisor.worker_titles()["mgr-supervisor: beta worker(0)"]

    result = ctl(supervisor, "stop", "alpha")
    assert (result.returncode, result.stdout) == (0, "mgr-supervisorctl: stop alpha: done\n")
    assert alphas <= set(supervisor.pids_with("cleanup_host")), "done: the workers are gone"
    assert not any("alpha" in title for title in supervisor.worker_titles())
    supervisor.wait_for(lambda: state(supervisor, "alpha") == "STOPPED", what="STOPPED")
    time.sleep(1.5)  # past start_secs and any backoff: nothing restarts it
    assert set(starts(supervisor, "alpha")) == alphas
    assert list(supervisor.worker_titles().values()) == [beta]
    alpha = managers(supervisor)["alpha"]
    assert (alpha["state"], alpha["running"], alpha["wanted"], alpha["workers"]) == (
        "STOPPED",
        0,
        0,
        [],
    )
    status = ctl(supervisor, "status")
    assert status.returncode == 0, "a manager stopped on request is no failure"
    assert "alpha    STOPPED  0/0" in status.stdout
    assert ctl(supervisor, "stop", "alpha").returncode == 0, "stopping a STOPPED one: no-op"
    log = supervisor.log()
    assert log.count("stopped (stop requested), exit status 0") == 2
    assert supervisor.level_of("stop requested; stopping it") == "INFO", "asked for: news"
    assert "failed start" not in log and "FATAL" not in log

    result = ctl(supervisor, "start", "alpha")
    assert (result.returncode, result.stdout) == (0, "mgr-supervisorctl: start alpha: done\n")
    supervisor.wait_for(lambda: len(starts(supervisor, "alpha")) == 4, what="2 new alphas")
    ready(supervisor)
    assert managers(supervisor)["alpha"]["wanted"] == 2
    assert supervisor.worker_titles()["mgr-supervisor: beta worker(0)"] == beta
    assert supervisor.proc.poll() is None


def test_unknown_names_are_refused_and_nothing_is_stopped(supervisor):
    supervisor.configure({"alpha": {}, "beta": {}})
    supervisor.start()
    ready(supervisor)
    refused = [("stop", "nope"), ("stop", "alpha", "nope"), ("start", "nope")]
    *results, no_name, restart = at_once(
        *(functools.partial(ctl, supervisor, *args) for args in refused),
        functools.partial(ctl, supervisor, "start"),
        functools.partial(ctl, supervisor, "restart", "nope"),
    )
    for args, result in zip(refused, results, strict=True):
        assert result.returncode == 2, result
        assert result.stderr == f"mgr-supervisorctl: {args[0]}: no manager named 'nope'\n"
    assert no_name.returncode == 2, "start needs a NAME"
    assert restart.returncode == 2
    time.sleep(0.5)
    assert supervisor.count("cleanup_host") == 0
    assert ctl(supervisor, "status").returncode == 0


def test_stop_all_its_managers_keeps_the_supervisor_up_and_a_reload_starts_them(supervisor):
    supervisor.configure({"alpha": {}, "beta": {}})
    supervisor.start()
    ready(supervisor)
    assert ctl(supervisor, "stop", "alpha", "beta").returncode == 0
    supervisor.wait_for(lambda: supervisor.count("cleanup_host") == 2, what="both stopped")
    supervisor.wait_for(
        lambda: {m["state"] for m in managers(supervisor).values()} == {"STOPPED"},
        what="both STOPPED",
    )
    time.sleep(1)
    assert supervisor.proc.poll() is None and supervisor.workers() == []

    assert ctl(supervisor, "reload").returncode == 0
    supervisor.wait_for(lambda: supervisor.count("init_host") == 4, what="a reload starts them")
    ready(supervisor)


def test_restart_starts_a_stopped_manager(supervisor):
    supervisor.configure({"alpha": {}, "beta": {}})
    supervisor.start()
    ready(supervisor)
    assert ctl(supervisor, "stop", "alpha").returncode == 0
    supervisor.wait_for(lambda: state(supervisor, "alpha") == "STOPPED", what="STOPPED")
    assert ctl(supervisor, "restart", "alpha").returncode == 0
    supervisor.wait_for(lambda: len(starts(supervisor, "alpha")) == 2, what="alpha again")
    ready(supervisor)


def test_no_config_file_with_socket_or_the_default_config_files(supervisor, tmp_path):
    supervisor.configure({"alpha": {}})
    home = tmp_path / "home"
    home.mkdir()
    missing = run_ctl("--socket", str(tmp_path / "none.sock"), "status", home=str(home))
    assert missing.returncode == 3
    assert missing.stderr.count("\n") == 1 and "is mgr-supervisor running?" in missing.stderr
    supervisor.start()
    ready(supervisor)

    direct = run_ctl("--socket", control_socket(supervisor), "status", "--json", home=str(home))
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["pid"] == supervisor.pid

    # oslo.config's first default place: ~/.mgr-supervisor/mgr-supervisor.conf
    (home / ".mgr-supervisor").mkdir()
    found = home / ".mgr-supervisor" / "mgr-supervisor.conf"
    found.write_text(f"[DEFAULT]\nstate_path = {supervisor.state_path}\n")
    by_state_path = run_ctl("status", "--json", home=str(home))
    assert by_state_path.returncode == 0, by_state_path.stderr
    assert json.loads(by_state_path.stdout)["pid"] == supervisor.pid

    found.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}/elsewhere\n"
        f"[supervisor]\ncontrol_socket = {control_socket(supervisor)}\n"
    )
    assert json.loads(run_ctl("status", "--json", home=str(home)).stdout)["pid"] == supervisor.pid

    found.write_text(f"[DEFAULT]\nstate_path = {tmp_path}/elsewhere\n")
    wrong = run_ctl("status", home=str(home))
    assert wrong.returncode == 3 and f"{tmp_path}/elsewhere/control.sock" in wrong.stderr
    explicit = run_ctl("--config-file", str(supervisor.config_file), "status", home=str(home))
    assert explicit.returncode == 0, "--config-file still wins over the default files"
    socket_wins = run_ctl("--socket", control_socket(supervisor), "status", home=str(home))
    assert socket_wins.returncode == 0, "--socket wins over any config file"


def test_malformed_manager_lists_are_refused_in_one_line(supervisor):
    supervisor.configure({"alpha": {}})
    supervisor.start()
    ready(supervisor)
    path = control_socket(supervisor)
    for request, error in [
        ({"command": "stop", "managers": "alpha"}, "'managers' must be a list of names"),
        ({"command": "start"}, "'managers' must be a list of names"),
        ({"command": "stop", "managers": []}, "'managers' must be a list of names"),
        ({"command": "status", "managers": [1, ["alpha"]]}, "no manager named 1, ['alpha']"),
        ({"command": "restart"}, "no manager named None"),
    ]:
        answer = ask(path, json.dumps(request).encode() + b"\n")
        assert answer["ok"] is False and error in answer["error"], (request, answer)
    time.sleep(0.5)
    assert supervisor.count("cleanup_host") == 0 and supervisor.proc.poll() is None
