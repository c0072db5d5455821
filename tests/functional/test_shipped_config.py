"""The README's first command: the shipped default config runs the demo manager."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess

from tests.functional.conftest import CTL, TESTS_DIR

SHIPPED = TESTS_DIR.parent / "etc" / "mgr-supervisor" / "mgr-supervisor.conf"


def test_the_default_config_runs_the_demo_and_resources_managers(supervisor):
    supervisor.config_file.write_text(SHIPPED.read_text())
    # Its own state_path (a later --config-file wins), so that a supervisor the developer
    # runs meanwhile is not in the way; the database is SQLite in it, as shipped.
    override = supervisor.tmp_path / "state.conf"
    override.write_text(f"[DEFAULT]\nstate_path = {supervisor.state_path}\nreport_interval = 1\n")
    supervisor.start("--config-file", str(override))
    supervisor.wait_for(lambda: supervisor.log().count(": ready") == 3, what="3 ready workers")
    supervisor.wait_for(
        lambda: supervisor.log().count("demo: hello from the demo manager") >= 2, what="greetings"
    )
    assert sorted(supervisor.worker_titles()) == [
        "mgr-supervisor: demo worker(0)",
        "mgr-supervisor: demo worker(1)",
        "mgr-supervisor: resources worker(0)",
    ]
    ctl = [str(CTL), "--config-file", str(supervisor.config_file), "--config-file", str(override)]

    def services() -> list[dict]:
        result = subprocess.run([*ctl, "services", "--json"], capture_output=True, text=True)
        return json.loads(result.stdout) if result.returncode == 0 else []

    supervisor.wait_for(
        lambda: (
            sorted((r["manager"], r["worker_id"], r["state"]) for r in services())
            == [("demo", 0, "up"), ("demo", 1, "up"), ("resources", 0, "up")]
        ),
        what="three records up in SQLite",
    )
    database = os.path.join(supervisor.state_path, "mgr-supervisor.sqlite")
    with sqlite3.connect(database) as connection:
        (samples,) = connection.execute("SELECT count(*) FROM host_resource_samples").fetchone()
    assert samples >= 1, "the resources manager stored a sample"

    supervisor.config_file.write_text(
        supervisor.config_file.read_text().replace("hello from", "goodbye from")
    )
    supervisor.signal(signal.SIGHUP)
    supervisor.wait_for(
        lambda: supervisor.log().count("greeting is now 'goodbye from the demo manager'") == 2,
        what="2 resets with the new greeting",
    )
    assert supervisor.stop() == 0
    assert supervisor.log().count("demo: cleanup_host") == 2
    assert {r["state"] for r in services()} == {"stopped"}
