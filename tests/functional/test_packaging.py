"""The package as installed: `--version` of each program, and the distribution's metadata.

The programs are the console scripts installed next to this interpreter, run for real. The
metadata is read in an isolated interpreter (`-I`): from the checkout, the current directory
would put the in-tree `mgr_supervisor.egg-info` first on `sys.path`, not what is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROGRAMS = ("mgr-supervisor", "mgr-supervisorctl", "mgr-supervisor-manage")
READ_METADATA = """
import importlib.metadata, json
dist = importlib.metadata.distribution("mgr-supervisor")
meta = dist.metadata
print(json.dumps({
    "version": dist.version,
    "description": meta.get_payload(),
    "content_type": meta["Description-Content-Type"],
    "license_files": meta.get_all("License-File"),
    "license_text": dist.read_text("licenses/LICENSE"),
    "requires": meta.get_all("Requires-Dist"),
}))
"""


@pytest.fixture(scope="module")
def installed() -> dict:
    result = subprocess.run(
        [sys.executable, "-I", "-c", READ_METADATA], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("program", PROGRAMS)
def test_version_prints_the_program_and_the_installed_version(program, installed, tmp_path):
    """No config file, no subcommand: `--version` needs neither."""
    result = subprocess.run(
        [str(BIN / program), "--version"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{program} {installed['version']}\n"
    assert str(Version(installed["version"])) == installed["version"], "PEP 440, normalized"


def test_help_lists_version(tmp_path):
    result = subprocess.run(
        [str(BIN / "mgr-supervisor"), "--help"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--version" in result.stdout


def test_the_metadata_carries_the_readme_and_the_license(installed):
    assert installed["content_type"] == "text/markdown"
    # The README as it was at install time: an editable install keeps that copy.
    readme_head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert installed["description"].startswith(readme_head)
    assert "\n## Quick start\n" in installed["description"]
    assert installed["license_files"] == ["LICENSE"]
    assert installed["license_text"] == (ROOT / "LICENSE").read_text()
    assert "Apache License\n" in installed["license_text"]
    assert "END OF TERMS AND CONDITIONS" in installed["license_text"], "the full text"


def test_oslo_service_without_the_threading_extra(installed):
    """cotyledon is a dependency of ours, futurist comes with oslo.messaging: the extra
    adds nothing."""
    oslo_service = [r for r in installed["requires"] if r.startswith("oslo.service")]
    assert oslo_service == ["oslo.service>=4.0"]
