"""Which callables a client may submit (issue 13): functions and classes of a module by
name; a bound method, lambda or closure is refused with a clear error."""

from __future__ import annotations

import functools

import pytest

from tests.apps import values_tasks as t
from zq import registry
from zq.errors import ConfigError


def test_classes_and_static_methods_are_named_like_functions():
    assert registry.name_of(t.Point) == "tests.apps.values_tasks:Point"
    assert registry.name_of(t.Made) == "values:Made"
    assert registry.name_of(t.Holder.static) == "tests.apps.values_tasks:Holder.static"


def test_the_worker_resolves_an_app_class_and_not_its_methods():
    reg = registry.Registry(["tests.apps.values_tasks"])
    assert reg.resolve("tests.apps.values_tasks:Point") is t.Point
    assert reg.resolve("values:Made") is t.Made
    for name in ("tests.apps.values_tasks:Holder.method", "tests.apps.values_tasks:Holder.klass",
                 "tests.apps.values_tasks:dataclasses", "builtins:str"):
        with pytest.raises(LookupError):
            reg.resolve(name)


def _closure():
    def inner(x):
        return x
    return inner


@pytest.mark.parametrize("fn", [
    t.Holder().method, t.Holder.klass, lambda x: x, _closure(), functools.partial(t.echo, 1),
], ids=["bound method", "classmethod", "lambda", "closure", "partial"])
def test_what_no_worker_can_look_up_is_refused(fn):
    with pytest.raises(ConfigError, match="module-level function"):
        registry.name_of(fn)
