"""The shipped systemd unit: what it promises, and `systemd-analyze verify` where available."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "etc" / "systemd" / "mgr-supervisor.service"


def service_section() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return dict(parser["Service"])


def test_the_unit_keeps_its_promises():
    service = service_section()
    assert service["Type"] == "notify-reload"
    assert "--check-config" in service["ExecStartPre"]
    assert service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "78"
    assert int(service["TimeoutStopSec"]) > 60, "above the default graceful_shutdown_timeout"
    assert int(service["WatchdogSec"]) > 0
    assert service["User"] == "mgr-supervisor"
    assert "Type=notify\n#   ExecReload=/bin/kill -HUP $MAINPID" in UNIT.read_text()


def _systemd_version() -> int:
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_analyze_verify(tmp_path):
    text = UNIT.read_text().replace(
        "/opt/mgr-supervisor/venv/bin/", str(Path(sys.executable).parent) + "/"
    )
    if _systemd_version() < 253:  # the documented variant for older systemd
        text = text.replace(
            "Type=notify-reload\n", "Type=notify\nExecReload=/bin/kill -HUP $MAINPID\n"
        )
    unit = tmp_path / "mgr-supervisor.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
