"""The README's first command: the shipped default config runs the demo manager."""

from __future__ import annotations

import signal

from tests.functional.conftest import TESTS_DIR

SHIPPED = TESTS_DIR.parent / "etc" / "mgr-supervisor" / "mgr-supervisor.conf"


def test_the_default_config_runs_two_demo_workers(supervisor):
    supervisor.config_file.write_text(SHIPPED.read_text())
    # Its own state_path (a later --config-file wins), so that a supervisor the developer
    # runs meanwhile is not in the way.
    override = supervisor.tmp_path / "state.conf"
    override.write_text(f"[DEFAULT]\nstate_path = {supervisor.state_path}\n")
    supervisor.start("--config-file", str(override))
    supervisor.wait_for(lambda: supervisor.log().count(": ready") == 2, what="2 ready workers")
    supervisor.wait_for(
        lambda: supervisor.log().count("demo: hello from the demo manager") >= 2, what="greetings"
    )
    assert sorted(supervisor.worker_titles()) == [
        "mgr-supervisor: demo worker(0)",
        "mgr-supervisor: demo worker(1)",
    ]
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
