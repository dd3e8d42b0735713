"""Task payloads: how clients and workers turn arguments, results and errors into bytes.

The master never calls these on user data; it only builds error payloads of its own
(a lost worker, a cancelled task). Values are msgpack with zq's extension types
(zq/core/values.py); anything else raises SerializationError before a byte is sent.
"""

from __future__ import annotations

import builtins
from typing import Any

import msgpack

from zq.core import values
from zq.core.values import pack_native as _pack_native
from zq.errors import (
    RemoteTraceback,
    SerializationError,
    TaskError,
    TaskTimeout,
    UnknownTask,
    WorkerLost,
)

_packb = msgpack.Packer(use_bin_type=True).pack


def _pack(value: Any, what: str) -> bytes:
    try:  # values.pack inlined (every task's result comes here): native types at C speed
        return _pack_native(value)
    except (TypeError, OverflowError):
        pass
    except (ValueError, BufferError) as e:  # too deep, or a memoryview not C-contiguous
        raise SerializationError(f"{what} cannot be sent: {e}") from e
    try:
        return values.pack_ext(value)
    except (TypeError, ValueError, OverflowError, RecursionError, BufferError) as e:
        raise SerializationError(f"{what} cannot be sent: {e}") from e


_unpack = values.unpack


def nesting_within(value: Any, limit: int) -> bool:
    """Whether lists and maps in value nest at most `limit` levels (iteratively: a
    value from the wire may be nested deeper than Python's recursion limit)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if type(v) is list or type(v) is tuple:
            items: Any = v
        elif type(v) is dict:
            items = list(v.keys()) + list(v.values())
        else:
            continue
        if depth > limit:
            return False
        stack.extend((item, depth + 1) for item in items)
    return True


def encode_call(args: tuple | list, kwargs: dict) -> bytes:
    return _pack([list(args), kwargs], "the task's arguments")


def pack_call(call: tuple[tuple | list, dict]) -> bytes:
    """encode_call((args, kwargs)) for the client's submit path: raises the encoder's own
    TypeError/ValueError/OverflowError, which the client words for the user."""
    value = [list(call[0]), call[1]]
    try:  # inlined values.pack: this is every submit's path
        return _pack_native(value)
    except (TypeError, OverflowError):
        pass
    return values.pack_ext(value)


def decode_call(payload: Any) -> tuple[list, dict]:
    call = _unpack(payload)
    if type(call) is list and len(call) == 2:
        args, kwargs = call
        if type(args) is list and type(kwargs) is dict:
            return args, kwargs  # a non-str kwargs key fails the call itself, as in Python
    raise ValueError("arguments must be [args array, kwargs map]")


def encode_value(value: Any) -> bytes:
    return _pack(value, "the task's result")


def decode_value(payload: Any) -> Any:
    return _unpack(payload)


def encode_error(type_name: str, message: str, traceback: str = "") -> bytes:
    return _packb({"type": type_name, "message": message, "traceback": traceback})


def decode_error(payload: Any) -> dict[str, str]:
    try:
        info = _unpack(payload)
        return {"type": str(info["type"]), "message": str(info["message"]),
                "traceback": str(info.get("traceback", ""))}
    except Exception:
        return {"type": "TaskError", "message": "unreadable error payload", "traceback": ""}


_ZQ_ERRORS: dict[str, type[TaskError]] = {
    "TaskTimeout": TaskTimeout, "WorkerLost": WorkerLost, "UnknownTask": UnknownTask,
}


def exception_from_error(info: dict[str, str]) -> BaseException:
    """The exception a client raises for a remote error: a built-in type as itself (with
    the remote traceback as its cause), zq's own errors as themselves, else TaskError.
    Nothing is unpickled or imported: only builtins are looked up by name."""
    name, message, tb = info["type"], info["message"], info["traceback"]
    if name in _ZQ_ERRORS:
        return _ZQ_ERRORS[name](name, message, tb)
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc: BaseException = cls(message)
        except Exception:
            exc = TaskError(name, message, tb)
        else:
            exc.__cause__ = RemoteTraceback(tb)
            return exc
    return TaskError(name, message, tb)
