"""Bad input: one line on stderr naming file, section and option; exit 78; nothing forked."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.functional.conftest import SCRIPT, TESTS_DIR, render_config

EVENT_FILE = "events"


def run_supervisor(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
    )


def check_config_error(tmp_path, text: str, *expected: str) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(text)
    result = run_supervisor(tmp_path, "--config-file", str(path))
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("mgr-supervisor: config error: ")
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / EVENT_FILE).exists(), "a worker ran despite the config error"


def good(**alpha: object) -> dict[str, dict[str, object]]:
    return {"alpha": dict(alpha)}


@pytest.mark.parametrize(
    ("managers", "expected"),
    [
        (good(manager="no.such.module.Manager"), ["[manager:alpha] manager:", "cannot import"]),
        (good(manager="tests.functional.managers.Nope"), ["[manager:alpha] manager:", "Nope"]),
        (
            good(manager="tests.functional.managers.NotAManager"),
            ["[manager:alpha] manager:", "not a subclass of supervisor.manager.Manager"],
        ),
        (
            good(manager="tests.functional.managers.UnbuildableManager"),
            [
                "[manager:alpha] manager:",
                "cannot be built the way the supervisor builds it",
                "UnbuildableManager(host=..., db_driver=...)",
                "'flavour'",
            ],
        ),
        (good(workers=0), ["[manager:alpha] workers:", "'0'"]),
        (good(workers=-3), ["[manager:alpha] workers:", "'-3'"]),
        (good(workers="abc"), ["[manager:alpha] workers:", "'abc'"]),
        (good(periodic_interval_max="soon"), ["[manager:alpha] periodic_interval_max:"]),
        (good(spawn_child="maybe"), ["[manager:alpha] spawn_child:"]),
    ],
)
def test_bad_manager_sections(tmp_path, managers, expected):
    text = render_config(tmp_path / EVENT_FILE, managers)
    check_config_error(tmp_path, text, str(tmp_path / "bad.conf"), *expected)


def test_missing_manager_path(tmp_path):
    text = render_config(tmp_path / EVENT_FILE, good()).replace(
        "manager = tests.functional.managers.EventManager\n", ""
    )
    check_config_error(tmp_path, text, "bad.conf", "[manager:alpha] manager: missing")


def test_enabled_manager_without_a_section(tmp_path):
    text = render_config(
        tmp_path / EVENT_FILE, good(), supervisor={"enabled_managers": "alpha, beta"}
    )
    check_config_error(
        tmp_path, text, "bad.conf", "[supervisor] enabled_managers:", "no [manager:beta] section"
    )


def test_no_managers_at_all(tmp_path):
    check_config_error(
        tmp_path, "[supervisor]\nenabled_managers =\n", "bad.conf", "[supervisor] enabled_managers:"
    )


def test_bad_default_option(tmp_path):
    text = render_config(tmp_path / EVENT_FILE, good(), default={"graceful_shutdown_timeout": "x"})
    check_config_error(tmp_path, text, "bad.conf", "[DEFAULT] graceful_shutdown_timeout:")


def test_not_ini(tmp_path):
    check_config_error(tmp_path, "this is not\n an ini file\n", "bad.conf", "not a valid INI file")


def test_missing_file(tmp_path):
    result = run_supervisor(tmp_path, "--config-file", str(tmp_path / "nope.conf"))
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [
        f"mgr-supervisor: config error: {tmp_path / 'nope.conf'}: config file not found"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.conf"
    path.write_text("[supervisor]\n")
    path.chmod(0)
    result = run_supervisor(tmp_path, "--config-file", str(path))
    assert result.returncode == 78
    assert "not readable" in result.stderr


def test_unknown_command_line_option_is_a_usage_error(tmp_path):
    result = run_supervisor(tmp_path, "--no-such-flag")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_unknown_key_in_a_manager_section_is_warned_about(supervisor):
    supervisor.configure({"alpha": {"wokers": 2}})
    supervisor.start()
    supervisor.wait_for(lambda: supervisor.count("tick"), what="a tick")
    assert "[manager:alpha] wokers: unknown option" in supervisor.log()


def test_check_config_warns_about_unknown_keys_in_every_section_it_owns(tmp_path):
    text = render_config(
        tmp_path / EVENT_FILE,
        {"alpha": {"wokers": 2}},
        default={"debgu": "true", "debug": "false"},
        supervisor={"start_retires": 3},
    )
    path = tmp_path / "typos.conf"
    path.write_text(text)
    result = run_supervisor(tmp_path, "--config-file", str(path), "--check-config")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"mgr-supervisor: warning: {path}: [DEFAULT] debgu: unknown option, ignored (a typo?)",
        f"mgr-supervisor: warning: {path}: [supervisor] start_retires: unknown option, "
        "ignored (a typo?)",
        f"mgr-supervisor: warning: {path}: [manager:alpha] wokers: unknown option, "
        "ignored (a typo?)",
    ]
    assert result.stdout.startswith("mgr-supervisor: config OK")


def test_an_error_names_the_file_that_holds_the_value(tmp_path):
    """With --config-dir, the file blamed is the one whose value is in force (oslo.config's
    get_location), never another file of the directory; a value no file sets is blamed on
    the first config file, where it would be added."""
    main = tmp_path / "main.conf"
    main.write_text(render_config(tmp_path / EVENT_FILE, {"alpha": {}}))
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-timing.conf").write_text("[DEFAULT]\nservice_down_time = 120\n")
    (conf_d / "20-timing.conf").write_text("[DEFAULT]\nservice_down_time = 5\n")
    (conf_d / "30-other.conf").write_text("[DEFAULT]\ngraceful_shutdown_timeout = 7\n")
    result = run_supervisor(tmp_path, "--config-file", str(main), "--config-dir", str(conf_d))
    assert result.returncode == 78
    assert result.stderr.startswith(
        f"mgr-supervisor: config error: {conf_d / '20-timing.conf'}: [DEFAULT] service_down_time"
    ), result.stderr

    (conf_d / "20-timing.conf").unlink()
    (conf_d / "40-supervisor.conf").write_text("[supervisor]\nenabled_managers =\n")
    main.write_text(main.read_text().replace("enabled_managers = alpha", ""))
    result = run_supervisor(tmp_path, "--config-file", str(main), "--config-dir", str(conf_d))
    assert result.returncode == 78
    assert result.stderr.startswith(
        f"mgr-supervisor: config error: {conf_d / '40-supervisor.conf'}: [supervisor] "
        "enabled_managers: no managers enabled"
    ), result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nosuch://user:s3cret@127.0.0.1:5672/", "unknown transport 'nosuch'"),
        ("s3cret, not a url", "not a transport URL"),
        ("rabbit://user:s3cret@127.0.0.1:notaport/", "a port that is not a number"),
    ],
)
def test_a_transport_url_it_cannot_use(tmp_path, url, expected):
    """One line naming the file, never the URL (it is secret): nothing is forked."""
    text = render_config(tmp_path / EVENT_FILE, good(), default={"transport_url": url})
    check_config_error(tmp_path, text, "bad.conf", "[DEFAULT] transport_url:", expected)
    result = run_supervisor(tmp_path, "--config-file", str(tmp_path / "bad.conf"))
    assert "s3cret" not in result.stderr + result.stdout


def test_a_database_port_that_is_not_a_number_is_one_line_for_every_program(tmp_path):
    """--check-config, the start, `services` and `mgr-supervisor-manage`: one line naming
    the file, exit 78, never the URL (it is secret) nor a traceback."""
    url = "postgresql+psycopg://user:s3cret@127.0.0.1:notaport/test"
    text = render_config(tmp_path / EVENT_FILE, good(), database={"connection": url})
    (tmp_path / "bad.conf").write_text(text)
    expected = "bad.conf: [database] connection: its port is not a number from 1 to 65535"
    bin_dir = SCRIPT.parent
    for program, args in (
        ("mgr-supervisor", ["--check-config"]),
        ("mgr-supervisor", []),
        ("mgr-supervisorctl", ["services"]),
        ("mgr-supervisor-manage", ["db", "version"]),
    ):
        result = subprocess.run(
            [str(bin_dir / program), "--config-file", str(tmp_path / "bad.conf"), *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(TESTS_DIR.parent)),
        )
        assert result.returncode == 78, (program, args, result.stderr)
        (line,) = result.stderr.strip().splitlines()[-1:]
        assert line.startswith(f"{program}: config error: ") and line.endswith(expected), line
        assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    assert not (tmp_path / EVENT_FILE).exists(), "no hook ran"
