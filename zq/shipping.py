"""Code shipping (opt-in on both sides, docs/TASKS.md "Code shipping"): a callable that
no worker can look up by name travels by value, pickled with cloudpickle, and its
arguments are pickled too where zq's values (zq/core/values.py) cannot carry them.

The payload of a shipped task (its name starts with zq.core.shipped.PREFIX) is a value
array: ``[[code, *args], kwargs]`` (an ordinary call payload whose first argument is the
code), or ``[code, call]`` when the arguments are not values, where ``code`` is the
pickled callable and ``call`` the pickled ``(args, kwargs)``.
Unpickling runs whatever the sender chose: only a worker started with --allow-code does
it, and the master admits such a worker only with keys (admitted clients only).
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from zq import registry
from zq.core import serde, values
from zq.core.messages import Payload
from zq.core.shipped import task_name
from zq.errors import ConfigError, SerializationError


def require_cloudpickle(who: str) -> None:
    """ConfigError unless cloudpickle can be imported (the `code` extra)."""
    try:
        import cloudpickle  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"{who} needs cloudpickle: pip install 'zq[code]'") from e


def needs_shipping(fn: Any) -> bool:
    """True for a callable that workers cannot find by name: a lambda, a closure or
    nested function, a bound method, a function or class of __main__, a callable
    instance. Strings and module-level functions go by name as always."""
    if isinstance(fn, str) or not callable(fn):
        return False
    try:
        registry.name_of(fn)
    except ConfigError:
        return True
    return False


def label(fn: Any) -> str:
    """What a shipped callable is called in its task name: module.qualname if it has
    them, else its type's."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        kind = type(fn)
        module, qualname = kind.__module__, kind.__qualname__
    return f"{module}.{qualname}"


def shipped_name(fn: Any) -> str:
    return task_name(label(fn))


def dump_code(fn: Callable[..., Any]) -> bytes:
    """The callable pickled by value (cloudpickle); SerializationError if it cannot be."""
    import cloudpickle
    try:
        return cloudpickle.dumps(fn)
    except Exception as e:  # cloudpickle raises whatever pickling the closure raises
        raise SerializationError(f"{label(fn)} cannot be shipped (cloudpickle): "
                                 f"{type(e).__name__}: {e}") from e


def pack(code: bytes, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> Payload:
    """The payload of one shipped call: the arguments as values where they are, else
    pickled (SerializationError if even cloudpickle cannot)."""
    try:
        return serde.pack_call(((code, *args), kwargs))  # [[code, *args], kwargs]
    except (TypeError, ValueError, OverflowError, RecursionError, BufferError):
        pass
    import cloudpickle
    try:
        call = cloudpickle.dumps((tuple(args), kwargs))
    except Exception as e:
        raise SerializationError(f"the task's arguments cannot be sent, not even pickled: "
                                 f"{type(e).__name__}: {e}") from e
    return values.pack([code, call])


def load(payload: Any) -> tuple[Callable[..., Any], list[Any], dict[str, Any]]:
    """(callable, args, kwargs) of a shipped payload. Unpickles: call it only where
    shipped code is allowed. ValueError (with what is wrong) for a payload of the wrong
    shape, or one that does not unpickle into a callable and an (args, kwargs) pair."""
    call = values.unpack(payload)
    if type(call) is list and len(call) == 2 and type(call[0]) is list and call[0] and \
            type(call[1]) is dict:  # values: [[code, *args], kwargs]
        code, args, kwargs = call[0][0], call[0][1:], call[1]
    elif type(call) is list and len(call) == 2 and type(call[1]) is bytes:  # [code, call]
        code, (args, kwargs) = call[0], _unpickle(call[1], "arguments", _is_call)
        args = list(args)
    else:
        raise ValueError("a shipped payload is [[code, *args], kwargs] or [code, pickled "
                         "(args, kwargs)]")
    if type(code) is not bytes:
        raise ValueError("the shipped code must be bytes (a pickle)")
    fn = _unpickle(code, "code", callable)
    return fn, args, kwargs


def _is_call(v: Any) -> bool:
    return (type(v) is tuple and len(v) == 2 and type(v[0]) in (tuple, list)
            and type(v[1]) is dict)


def _unpickle(data: bytes, what: str, check: Callable[[Any], bool]) -> Any:
    try:
        value = pickle.loads(data)
    except BaseException as e:  # a pickle runs code while it loads: SystemExit too
        raise ValueError(f"cannot unpickle the shipped {what}: {type(e).__name__}: {e}") from e
    if not check(value):
        raise ValueError(f"the shipped {what} unpickled to a {type(value).__name__}, "
                         "not what a shipped task carries")
    return value
