"""The request context that travels with an RPC call or a notification: nova's serializer.

Its own module, below `rpc` and `notifications`, so a manager's notifier needs nothing of
the RPC machinery (and `manager` → `notifications` → `rpc` → `manager` is no circle).
oslo.messaging is imported here first, with eventlet's import warning silenced: futurist
and oslo.service import eventlet when it is installed, and the threading executor never
uses it.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["RequestContextSerializer", "messaging", "messaging_opts"]

from oslo_context import context as oslo_context

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import oslo_messaging as messaging  # noqa: E402
from oslo_messaging import opts as messaging_opts  # noqa: E402


class RequestContextSerializer(messaging.Serializer):
    """nova's serializer: the context travels as a dict and arrives as an oslo.context
    `RequestContext`; arguments and results go through `base` (JSON primitives unless a
    caller brings its own, as nova's objects serializer)."""

    def __init__(self, base: messaging.Serializer | None = None) -> None:
        self._base = base or messaging.JsonPayloadSerializer()

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        if ctxt is None:
            return {}
        return ctxt.to_dict() if hasattr(ctxt, "to_dict") else dict(ctxt)

    def deserialize_context(self, ctxt: Any) -> oslo_context.RequestContext:
        return oslo_context.RequestContext.from_dict(ctxt or {})
