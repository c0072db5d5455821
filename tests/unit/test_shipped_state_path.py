"""The shipped configs do not put state_path where another user could plant files."""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [
    ROOT / "etc" / "mgr-supervisor" / "mgr-supervisor.conf",
    ROOT / "etc" / "mgr-supervisor" / "mgr-supervisor.conf.sample",
]


def shipped_state_path(path: Path) -> str | None:
    """state_path as the file sets it; in the sample, the commented default it documents."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    text = path.read_text()
    if path.suffix == ".sample":
        text = text.replace("\n#state_path = ", "\nstate_path = ")
    parser.read_string(text)
    return parser.defaults().get("state_path")


def world_writable_ancestors(path: str) -> list[str]:
    found = []
    current = os.path.abspath(path)
    while True:
        parent = os.path.dirname(current)
        if parent == current:
            return found
        current = parent
        try:
            mode = os.stat(current).st_mode
        except FileNotFoundError:
            continue
        if mode & stat.S_IWOTH:
            found.append(current)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_state_path_is_not_under_a_world_writable_directory(config):
    state_path = shipped_state_path(config)
    if state_path is None:
        return
    assert not state_path.startswith(("/tmp/", "/var/tmp/", "/dev/shm/")), state_path
    assert world_writable_ancestors(state_path) == [], state_path
