"""The control socket's server, driven by a selector as the arbiter's loop drives it."""

from __future__ import annotations

import json
import selectors
import socket
from typing import Any

import pytest

from supervisor import control
from tests.unit.loop import pump


def test_an_accept_that_fails_pauses_the_control_socket_instead_of_failing(tmp_path, monkeypatch):
    def out_of_descriptors(self: socket.socket) -> None:
        raise OSError(24, "Too many open files")

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "command": request["command"]}

    selector = selectors.DefaultSelector()
    path = str(tmp_path / "control.sock")
    server = control.ControlServer(path, handler, selector)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(socket.socket, "accept", out_of_descriptors)
            client.connect(path)
            pump(selector)  # the failed accept must not raise out of the loop's pass
        paused_until = server.next_deadline()
        assert paused_until is not None  # the loop wakes up to accept again, without a client
        assert selector.select(0.05) == []  # the listener is not watched: no spinning
        server.expire(paused_until)
        pump(selector)
        client.sendall(b'{"command": "status"}\n')
        pump(selector)
        assert json.loads(client.recv(4096)) == {"ok": True, "command": "status"}
    finally:
        client.close()
        server.close()
        selector.close()


def test_a_socket_that_refuses_this_user_is_denied_not_down(tmp_path, monkeypatch):
    """EACCES (a user the socket's directory shuts out; root passes any, so the kernel's
    answer is given here) is ControlDenied, which ctl exits 4 for; a socket that is not there
    is still "not running"."""
    path = str(tmp_path / "control.sock")
    with pytest.raises(control.ControlError, match="is mgr-supervisor running") as absent:
        control.request(path, {"command": "status"})
    assert not isinstance(absent.value, control.ControlDenied)

    def refuse(self: socket.socket, address: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(control.ControlDenied) as denied:
        control.request(path, {"command": "status"})
    assert str(denied.value) == (
        f"{path}: Permission denied: ask as the supervisor's user, or as root"
    )
