"""Issue 9, finding 1: a task name resolves only to a function or class *defined in* an
--app module (or registered there with @zq.task(name=...)); nothing is reached through
an imported module, a builtin, an attribute chain, a private or dunder name."""

from __future__ import annotations

import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zq.registry import Registry

APP = "tests.apps.allow_list_app"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry([APP])


ESCAPES = [
    "os.system", "time.sleep", "system", "joined", "imported_add",
    "zq.pools.runner.os.system", "zq.core.serde.builtins.eval", "zq.task",
    "__setattr__", "__delattr__", "__getattribute__", "__builtins__", "__dict__",
    "_private", "double.__globals__", "double.__code__", "Point.__init__",
    "Point.__class__", "Point.__subclasses__", "Point.method", "Point.make",
    "Point.origin.__globals__", "double.__class__", "dataclasses.dataclass",
    "answer", "lam", "callable_instance", "Point..origin", ".double", "double.",
    "", "..", "Point.Inner.__init__", "Pair.__init__", "custom.__wrapped__",
]


@pytest.mark.parametrize("qualname", ESCAPES)
def test_a_name_outside_what_the_app_defines_is_an_unknown_task(registry: Registry,
                                                                 qualname: str) -> None:
    with pytest.raises(LookupError) as e:
        registry.resolve(f"{APP}:{qualname}")
    assert "This worker has:" in str(e.value)  # it says which names it has
    assert f"{APP}:double" in str(e.value)


@pytest.mark.parametrize("qualname", ["double", "coro", "gen", "decorated", "custom",
                                      "Point", "Point.origin", "Point.Inner", "Pair"])
def test_what_the_app_defines_resolves(registry: Registry, qualname: str) -> None:
    obj = registry.resolve(f"{APP}:{qualname}")
    assert obj.__module__ == APP and obj.__qualname__ == qualname


def test_a_custom_name_resolves_and_a_module_outside_the_apps_does_not(registry: Registry) -> None:
    assert registry.resolve("custom-name")(1) == 2
    with pytest.raises(LookupError, match="--app os"):
        registry.resolve("os:system")
    with pytest.raises(LookupError):
        registry.resolve("tests.apps.worker_tasks:add")  # importable, but not an --app


def test_names_lists_exactly_the_public_functions_and_classes_defined_there(
        registry: Registry) -> None:
    names = set(registry.names())
    assert names == {f"{APP}:{n}" for n in ("double", "custom", "decorated", "coro", "gen",
                                            "Point", "Pair")} | {"custom-name"}


# --- a property test over generated names -------------------------------------------

def _segments() -> list[str]:
    import tests.apps.allow_list_app as app
    words = set(vars(app)) | set(dir(app.Point)) | set(dir(app.double)) | set(dir(app.os))
    words |= {"system", "eval", "exec", "builtins", "__globals__", "__class__", "__base__",
              "__subclasses__", "__mro__", "__code__", "__closure__", "__func__", "__self__",
              "", ".", "..", " ", "os.path", "__import__", "globals", "getattr"}
    return sorted(words)


SEGMENT = st.sampled_from(_segments()) | st.text(min_size=0, max_size=12)
NAMES = st.one_of(
    st.lists(SEGMENT, min_size=1, max_size=5).map(lambda parts: f"{APP}:" + ".".join(parts)),
    st.text(max_size=40),
    st.builds(lambda a, b: f"{a}:{b}", st.sampled_from([APP, "os", "zq", "builtins", ""]),
              st.text(max_size=30)),
)


@settings(max_examples=3000, deadline=None)
@given(NAMES)
def test_any_name_resolves_only_to_a_function_or_class_defined_in_the_app(name: str) -> None:
    registry = Registry([APP])
    try:
        obj = registry.resolve(name)
    except LookupError:
        return
    assert isinstance(obj, (types.FunctionType, type)), (name, obj)
    if name == "custom-name":
        return
    module, _, qualname = name.partition(":")
    assert module == APP and obj.__module__ == APP and obj.__qualname__ == qualname, name
    assert not any(part.startswith("_") for part in qualname.split("."))
