"""The shipped systemd unit and its drop-ins: what they promise, and `systemd-analyze verify`.

`verify` checks that every Exec*= binary exists, so it runs on a copy of the unit whose only
change is the venv prefix `/opt/mgr-supervisor/venv/bin/`, rewritten to the venv running
these tests (which has the same console scripts). A `--root=` tree was the other way, but
systemd 252 resolves Exec*= paths and units inside that root: it would need a copy of
/bin/kill and of the system's units (sysinit.target...), more rewriting than one prefix.
Each drop-in is verified applied to the unit, from `mgr-supervisor.service.d/` next to the
copy, where `verify` reads drop-ins as systemd does. Any output at all is a failure.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import dbfixtures

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "etc" / "systemd" / "mgr-supervisor.service"
DROP_INS = sorted((ROOT / "etc" / "systemd" / "mgr-supervisor.service.d").glob("*.conf.example"))
VENV_BIN = "/opt/mgr-supervisor/venv/bin/"
NOTIFY_RELOAD_SYSTEMD = 253
# Options that, with User= set, imply NoNewPrivileges=yes (systemd.exec(5)), and options
# that give the unit a mount namespace: each breaks sudo-based helpers or their mounts.
BREAKS_ROOT_HELPERS = {
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "PrivateDevices",
    "ProtectHostname",
    "ProtectClock",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "SystemCallFilter",
    "SystemCallArchitectures",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateMounts",
    "ProtectControlGroups",
    "ReadOnlyPaths",
    "InaccessiblePaths",
}


def service_section(path: Path = UNIT) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return dict(parser["Service"])


def test_the_unit_keeps_its_promises():
    service = service_section()
    assert service["Type"] == "notify", "Type=notify-reload is unknown before systemd 253"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["NotifyAccess"] == "main"
    assert "--check-config" in service["ExecStartPre"]
    assert service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "78"
    assert int(service["TimeoutStopSec"]) > 60, "above the default graceful_shutdown_timeout"
    assert int(service["WatchdogSec"]) > 0
    assert service["User"] == "mgr-supervisor"
    assert "Documentation=" not in UNIT.read_text(), "nothing installed to point at"


def test_the_unit_keeps_root_helpers_working():
    """oslo.privsep and oslo.rootwrap run through sudo and mount things; the default unit
    must let them (the strict set is the drop-in's)."""
    assert sorted(BREAKS_ROOT_HELPERS & service_section().keys()) == []
    strict = service_section(UNIT.parent / "mgr-supervisor.service.d/hardening-strict.conf.example")
    assert {"NoNewPrivileges", "ProtectSystem", "PrivateDevices"} <= strict.keys()
    assert strict["ProtectSystem"] == "strict"


def test_the_notify_reload_drop_in_clears_exec_reload():
    drop_in = UNIT.parent / "mgr-supervisor.service.d/notify-reload.conf.example"
    assert drop_in in DROP_INS
    service = service_section(drop_in)
    assert service == {"Type": "notify-reload", "ExecReload": ""}, "one SIGHUP, not two"


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        dbfixtures.unavailable(
            "systemd-analyze is not installed (.ci/run installs it)", server="systemd-analyze"
        )
    return path


def _systemd_version(analyze: str) -> int:
    out = subprocess.run([analyze, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"systemd (\d+)", out)
    assert match, out
    return int(match.group(1))


def _verify(analyze: str, tmp_path: Path, drop_in_name: str = "", drop_in_text: str = "") -> str:
    """`systemd-analyze verify` on the shipped unit (venv prefix rewritten), with one drop-in."""
    text = UNIT.read_text()
    assert VENV_BIN in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(VENV_BIN, str(Path(sys.executable).parent) + "/"))
    if drop_in_name:
        directory = tmp_path / f"{UNIT.name}.d"
        directory.mkdir()
        (directory / drop_in_name).write_text(drop_in_text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 or output, "verify failed without saying why"
    return output


def test_systemd_analyze_verify_the_unit(tmp_path):
    assert _verify(_systemd_analyze(), tmp_path) == ""


@pytest.mark.parametrize("drop_in", DROP_INS, ids=lambda path: path.name)
def test_systemd_analyze_verify_each_drop_in(tmp_path, drop_in):
    analyze = _systemd_analyze()
    name = drop_in.name.removesuffix(".example")
    output = _verify(analyze, tmp_path, name, drop_in.read_text())
    if name == "notify-reload.conf" and _systemd_version(analyze) < NOTIFY_RELOAD_SYSTEMD:
        # Older systemd knows every line but the type, as the drop-in's comment says.
        assert re.fullmatch(
            r"\S+/notify-reload\.conf:\d+: Failed to parse service type, ignoring: "
            r"notify-reload",
            output,
        ), output
    else:
        assert output == ""


def test_systemd_analyze_verify_reads_the_drop_in_directory(tmp_path):
    """The check above can fail: a bad line in a drop-in is reported."""
    output = _verify(_systemd_analyze(), tmp_path, "bad.conf", "[Service]\nNoSuchOption=1\n")
    assert "bad.conf" in output and "NoSuchOption" in output, output
