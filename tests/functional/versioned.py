"""A versioned manager, as nova writes them: its own target version and a second endpoint
in a namespace. A module of its own, so only RPC tests import oslo.messaging through it."""

from __future__ import annotations

import oslo_messaging as messaging

from tests.functional.managers import RpcManager


class InstanceNotFound(Exception):
    """A typed exception that travels to callers that allow this module."""


class ExtraEndpoint:
    target = messaging.Target(namespace="extra", version="1.1")

    def extra_echo(self, context: object, value: object = None) -> object:
        return {"extra": value}


class VersionedManager(RpcManager):
    target = messaging.Target(version="6.2")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.additional_endpoints = [ExtraEndpoint()]

    def find_instance(self, context: object, uuid: str) -> None:
        raise InstanceNotFound(f"instance {uuid} could not be found")
