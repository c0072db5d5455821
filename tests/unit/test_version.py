"""supervisor.version: the metadata is read only for a command line that can print it."""

from __future__ import annotations

import pytest

from supervisor import version


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--config-file", "/etc/mgr-supervisor/mgr-supervisor.conf"],
        ["--config-file", "x.conf", "--check-config"],
        ["--", "-"],
        ["status", "--json"],
    ],
)
def test_a_start_command_line_reads_no_metadata(argv, monkeypatch):
    def read():
        raise AssertionError("metadata read")

    monkeypatch.setattr(version, "version", read)
    assert version.for_command_line("mgr-supervisor", argv) is None


@pytest.mark.parametrize(
    "argv", [["--version"], ["--vers"], ["-h"], ["--help"], ["--config-file", "f", "--he"]]
)
def test_version_and_help_get_program_and_version(argv, monkeypatch):
    monkeypatch.setattr(version, "version", lambda: "1.2.3")
    assert version.for_command_line("mgr-supervisorctl", argv) == "mgr-supervisorctl 1.2.3"


def test_a_tree_never_installed_says_unknown(monkeypatch):
    monkeypatch.setattr(version, "DISTRIBUTION", "mgr-supervisor-not-installed")
    assert version.version() == "unknown"
