"""Validation as pure logic: a ConfigOpts per test, no processes."""

from __future__ import annotations

import logging

import pytest
from oslo_config import cfg

from supervisor import config, opts
from workers.demo import DemoManager


def load(tmp_path, text: str):
    path = tmp_path / "test.conf"
    path.write_text(text)
    return config.load(["--config-file", str(path)], conf=cfg.ConfigOpts())


DEMO = "[supervisor]\nenabled_managers = demo\n[manager:demo]\nmanager = workers.demo.DemoManager\n"


def test_a_minimal_config_gives_one_spec_with_defaults(tmp_path):
    conf, specs = load(tmp_path, DEMO)
    assert specs == [config.ManagerSpec("demo", DemoManager, 1, topic="demo", host=conf.host)]
    assert specs[0].section == "manager:demo"
    assert conf["manager:demo"].periodic_interval_max == 60
    assert conf["manager:demo"].greeting == "hello", "the manager's own opts are registered"
    assert conf.graceful_shutdown_timeout == 60


def test_supervisor_section_sets_defaults_that_a_manager_section_overrides(tmp_path):
    text = (
        "[supervisor]\nenabled_managers = a, b\nworkers = 3\nperiodic_interval_max = 7\n"
        "[manager:a]\nmanager = workers.demo.DemoManager\n"
        "[manager:b]\nmanager = workers.demo.DemoManager\nworkers = 1\n"
    )
    conf, specs = load(tmp_path, text)
    assert [(s.name, s.workers) for s in specs] == [("a", 3), ("b", 1)]
    assert conf["manager:b"].periodic_interval_max == 7


def test_enabled_managers_keeps_order_and_rejects_duplicates(tmp_path):
    text = DEMO.replace("enabled_managers = demo", "enabled_managers = demo, demo")
    with pytest.raises(config.ConfigError, match="listed more than once: demo"):
        load(tmp_path, text)


def test_error_names_the_file_the_bad_value_came_from(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-workers.conf").write_text("[manager:demo]\nworkers = many\n")
    base = tmp_path / "base.conf"
    base.write_text(DEMO)
    with pytest.raises(config.ConfigError) as err:
        config.load(
            ["--config-file", str(base), "--config-dir", str(tmp_path / "conf.d")],
            conf=cfg.ConfigOpts(),
        )
    assert str(err.value).startswith(f"{tmp_path}/conf.d/20-workers.conf: [manager:demo] workers:")


def test_no_config_file_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(config.ConfigError, match="no config file found"):
        config.load([], conf=cfg.ConfigOpts(), default_config_files=[])


def test_not_a_dotted_path(tmp_path):
    with pytest.raises(config.ConfigError, match="not a dotted path"):
        load(tmp_path, DEMO.replace("workers.demo.DemoManager", "DemoManager"))


def test_a_module_that_fails_to_import_is_one_line(tmp_path):
    (tmp_path / "explodes.py").write_text("raise RuntimeError('boom at import')\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(config.ConfigError) as err:
            load(tmp_path, DEMO.replace("workers.demo.DemoManager", "explodes.Manager"))
    finally:
        sys.path.remove(str(tmp_path))
    assert "cannot import 'explodes': RuntimeError: boom at import" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_keys_are_warned_about(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="supervisor.config"):
        load(tmp_path, DEMO + "greting = hi\n")
    assert "[manager:demo] greting: unknown option, ignored (a typo?)" in caplog.text


def test_list_opts_covers_every_section():
    groups = {str(getattr(group, "name", group)): opts for group, opts in opts.list_opts()}
    assert set(groups) == {"DEFAULT", "supervisor", "manager:demo", "database"}
    assert "graceful_shutdown_timeout" in {opt.dest for opt in groups["DEFAULT"]}
    assert {"manager", "workers"} <= {opt.dest for opt in groups["manager:demo"]}


def test_graceful_shutdown_timeout_is_declared_once_and_mutable():
    conf = cfg.ConfigOpts()
    config.register_static_opts(conf)
    opt = conf._opts["graceful_shutdown_timeout"]["opt"]
    assert opt.mutable


def test_service_down_time_must_exceed_report_interval(tmp_path):
    conf, _ = load(tmp_path, DEMO)
    assert (conf.report_interval, conf.service_down_time) == (10, 60)
    with pytest.raises(config.ConfigError) as err:
        load(tmp_path, "[DEFAULT]\nreport_interval = 60\n" + DEMO)
    assert str(err.value) == (
        f"{tmp_path}/test.conf: [DEFAULT] service_down_time: 60 must be greater than "
        "report_interval (60), else a service is down between two heartbeats"
    )


def load_with_database(tmp_path, text: str):
    """`load`, then the URL check that only --check-config and the recorder make."""
    conf, specs = load(tmp_path, text)
    config.validate_database(conf)
    return conf, specs


def test_database_options_are_validated_and_the_connection_never_shown(tmp_path):
    conf, _ = load_with_database(tmp_path, DEMO)
    assert conf.database.connection == f"sqlite:///{conf.state_path}/mgr-supervisor.sqlite"
    with pytest.raises(config.ConfigError, match=r"\[database\] max_pool_size: invalid value"):
        load(tmp_path, DEMO + "[database]\nmax_pool_size = many\n")
    conf, _ = load(tmp_path, DEMO + "[database]\nconnection = pa55word\n")  # the recorder's
    with pytest.raises(config.ConfigError) as err:
        load_with_database(tmp_path, DEMO + "[database]\nconnection = pa55word\n")
    assert str(err.value) == (
        f"{tmp_path}/test.conf: [database] connection: not a database URL (dialect+driver://...)"
    )
    with pytest.raises(config.ConfigError) as err:
        load_with_database(tmp_path, DEMO + "[database]\nconnection = nosuch://u:pa55word@h/x\n")
    assert "unknown database dialect or driver 'nosuch'" in str(err.value)
    assert "pa55word" not in str(err.value)


def test_the_database_connection_is_secret():
    conf = cfg.ConfigOpts()
    config.register_static_opts(conf)
    assert conf._groups["database"]._opts["connection"]["opt"].secret
    assert all(opt.secret for opt in dict(opts.list_opts())["database"] if opt.dest == "connection")


def test_start_retries_minus_one_is_forever_and_below_is_refused(tmp_path):
    _, specs = load(tmp_path, DEMO + "start_retries = -1\n")
    assert specs[0].policy.start_retries == -1
    with pytest.raises(config.ConfigError, match=r"\[manager:demo\] start_retries: .*-2"):
        load(tmp_path, DEMO + "start_retries = -2\n")
