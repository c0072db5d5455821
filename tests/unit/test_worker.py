"""The worker's own pure logic: which hooks take `service_ref`."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from supervisor.manager_service import _takes


def _decorated(function: Any) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper


class Hooks:
    def positional(self, service_ref=None): ...
    def keyword_only(self, *, service_ref=None): ...
    def other_name(self, ref=None): ...
    def only_kwargs(self, **kwargs): ...
    def local_of_that_name(self):
        service_ref = None
        return service_ref

    @_decorated
    def wrapped(self, service_ref=None): ...

    @classmethod
    def a_classmethod(cls, service_ref=None): ...

    @staticmethod
    def a_staticmethod(service_ref=None): ...


def _resigned(self): ...


_resigned.__signature__ = inspect.Signature(
    [inspect.Parameter("service_ref", inspect.Parameter.KEYWORD_ONLY)]
)

CALLABLES = {
    **{name: getattr(Hooks(), name) for name in vars(Hooks) if not name.startswith("_")},
    "unbound": Hooks.positional,
    "lambda": lambda service_ref: None,
    "partial": functools.partial(Hooks().other_name, ref=1),
    "builtin": len,
    "resigned": _resigned,
}


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_takes_says_what_inspect_says(name):
    method = CALLABLES[name]
    assert _takes(method, "service_ref") is ("service_ref" in inspect.signature(method).parameters)


def test_takes_finds_the_parameter_where_there_is_one():
    assert [name for name in sorted(CALLABLES) if _takes(CALLABLES[name], "service_ref")] == [
        "a_classmethod",
        "a_staticmethod",
        "keyword_only",
        "lambda",
        "positional",
        "resigned",
        "unbound",
        "wrapped",
    ]
