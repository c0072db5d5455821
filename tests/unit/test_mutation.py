"""A reload the oslo.config way: the stamp of the validated files, the mutation, its lines."""

from __future__ import annotations

import logging
import os
import time

from oslo_config import cfg

from supervisor import config, mutation, stamp

DEMO = (
    "[DEFAULT]\nhost = node-1\ngraceful_shutdown_timeout = 7\n[supervisor]\n"
    "enabled_managers = demo\n[manager:demo]\nmanager = workers.demo.DemoManager\n"
    "greeting = hi\n"
)


def load(path, text: str):
    path.write_text(text)
    return config.load(["--config-file", str(path)], conf=cfg.ConfigOpts())


def test_the_stamp_is_shared_across_fork_and_moves_with_each_publish(tmp_path):
    path = tmp_path / "a.conf"
    path.write_text(DEMO)
    first = stamp.files_digest([str(path)])
    assert first == stamp.files_digest([str(path)])
    shared = stamp.ConfigStamp()
    assert shared.read() == (0, bytes(32))
    pid = os.fork()
    if pid == 0:  # the child sees what the parent publishes after the fork
        deadline = time.monotonic() + 5
        while shared.read() != (1, first) and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0 if shared.read() == (1, first) else 1)
    shared.publish(first)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert shared.read() == (1, first)
    path.write_text(DEMO.replace("hi", "hello"))
    assert stamp.files_digest([str(path)]) != first
    shared.publish(stamp.files_digest([str(path)]))
    assert shared.generation == 2


def test_mutate_changes_mutable_options_keeps_immutable_ones_and_runs_hooks(tmp_path, caplog):
    conf, specs = load(tmp_path / "a.conf", DEMO)
    seen = []
    conf.register_mutate_hook(lambda c, fresh: seen.append(dict(fresh)))
    (tmp_path / "a.conf").write_text(
        DEMO.replace("node-1", "node-2").replace("hi", "hello").replace("= 7", "= 9")
    )
    with caplog.at_level(logging.INFO):
        changed, immutable = mutation.mutate(conf)
    assert conf["manager:demo"].greeting == "hello"
    assert conf.graceful_shutdown_timeout == 9
    assert conf.host == "node-1"
    assert immutable == [(None, "host")]
    assert set(changed) == {("manager:demo", "greeting"), (None, "graceful_shutdown_timeout")}
    assert seen == [changed]
    assert "Option" not in caplog.text and "Ignoring change" not in caplog.text, caplog.text


def test_describe_shows_values_but_never_a_secret(tmp_path):
    conf, specs = load(tmp_path / "a.conf", DEMO)
    conf.register_opts([cfg.StrOpt("password", secret=True, mutable=True)], group="x")
    known = config.known_opts(specs)
    known[("x", "password")] = cfg.StrOpt("password", secret=True)
    lines = list(
        mutation.describe(
            [("manager:demo", "greeting"), ("x", "password"), ("y", "unknown")], known, conf
        )
    )
    assert lines == [
        "[manager:demo] greeting = 'hi'",
        "[x] password changed",
        "[y] unknown changed",
    ]


def test_registered_lists_every_group_and_option(tmp_path):
    conf, specs = load(tmp_path / "a.conf", DEMO)
    options = mutation.registered(conf)
    assert {(None, "host"), ("supervisor", "enabled_managers"), ("manager:demo", "greeting")} <= (
        options
    )


def test_an_added_manager_takes_its_immutable_values(tmp_path):
    """oslo.config reads an immutable option from the files as they were at start, where
    the added section does not exist; its validated values are set before it forks."""
    running, _ = load(tmp_path / "a.conf", DEMO)
    added = DEMO.replace("= demo\n", "= demo, other\n") + (
        "[manager:other]\nmanager = tests.functional.managers.EventManager\nworkers = 3\n"
        "fixed = yes\n"
    )
    fresh, specs = load(tmp_path / "a.conf", added)
    config.adopt_manager_sections(running, specs)
    mutation.mutate(running)
    assert running["manager:other"].workers == 3  # mutable: read from the new files
    assert running["manager:other"].fixed == "-"  # immutable: the files at start, a default
    config.adopt_immutable_values(running, fresh, [s for s in specs if s.name == "other"])
    assert running["manager:other"].fixed == "yes"
