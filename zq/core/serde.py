"""Task payloads: how clients and workers turn arguments, results and errors into bytes.

The master never calls these on user data; it only builds error payloads of its own
(a lost worker, a cancelled task). Values are msgpack with zq's extension types
(zq/core/values.py); anything else raises SerializationError before a byte is sent.
"""

from __future__ import annotations

import builtins
from typing import Any, Callable

import msgpack

from zq.core import messages as m
from zq.core import values
from zq.core.parts import Refs
from zq.core.values import pack_native as _pack_native
from zq.errors import (
    DependencyFailed,
    RemoteTraceback,
    SerializationError,
    TaskError,
    TaskTimeout,
    UnknownTask,
    WorkerLost,
)

_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


def _pack(value: Any, what: str) -> m.Payload:
    """value's payload: bytes, or a Parts when it holds large numpy arrays (values.py)."""
    try:  # values.pack inlined (every task's result comes here): native types at C speed
        return _pack_native(value)
    except (TypeError, OverflowError):
        pass
    except (ValueError, BufferError) as e:  # too deep, or a memoryview not C-contiguous
        raise SerializationError(f"{what} cannot be sent: {e}") from e
    try:
        return values.pack_ext_parts(value)
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


def encode_call(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> m.Payload:
    return _pack([list(args), kwargs], "the task's arguments")


def pack_call(call: tuple[tuple[Any, ...] | list[Any], dict[str, Any]]) -> m.Payload:
    """encode_call((args, kwargs)) for the client's submit path: raises the encoder's own
    TypeError/ValueError/OverflowError, which the client words for the user."""
    value = [list(call[0]), call[1]]
    try:  # inlined values.pack: this is every submit's path
        return _pack_native(value)
    except (TypeError, OverflowError):
        pass
    return values.pack_ext_parts(value)


def pack_submit_call(call: tuple[tuple[Any, ...] | list[Any], dict[str, Any]]
                     ) -> m.Payload | Refs:
    """pack_call(call) where futures may stand among the arguments (Client.submit): a
    Refs when they do, their task ids in .refs (the SUBMIT option `inputs`)."""
    value = [list(call[0]), call[1]]
    try:  # inlined values.pack: this is every submit's path
        return _pack_native(value)
    except (TypeError, OverflowError):
        pass
    payload, refs = values.pack_call_refs(value)
    return Refs(payload, refs) if refs else payload


def decode_call(payload: Any) -> tuple[list[Any], dict[str, Any]]:
    """The call a TASK's payload holds; a Refs (a call that refers to other tasks'
    results) with each reference replaced by the result's value."""
    if type(payload) is Refs:
        call = values.unpack_with(payload.payload, dict(payload.refs))
    else:
        call = _unpack(payload)
    if type(call) is list and len(call) == 2:
        args, kwargs = call
        if type(args) is list and type(kwargs) is dict:
            return args, kwargs  # a non-str kwargs key fails the call itself, as in Python
    raise ValueError("arguments must be [args array, kwargs map]")


def encode_value(value: Any) -> m.Payload:
    return _pack(value, "the task's result")


def decode_value(payload: Any) -> Any:
    return _unpack(payload)


def encode_error(type_name: str, message: str, traceback: str = "") -> bytes:
    return _packb({"type": type_name, "message": message, "traceback": traceback})


# The OSError attributes an error payload carries (PROTOCOL §2, error payload).
_OS_FIELDS = ("errno", "strerror", "filename", "filename2")


def encode_dependency_failed(message: str, input_id: str, cause: bytes) -> bytes:
    """The error of a task whose input failed: the input's id and its error payload."""
    return _packb({"type": "DependencyFailed", "message": message, "traceback": "",
                   "module": "zq.errors", "input": input_id, "cause": cause})


def encode_exception(exc: BaseException, message: str, traceback: str) -> bytes:
    """The error payload of exc: what encode_error carries, plus its module and qualname,
    its args as values (an arg that is not a value travels as its repr) and, for an
    OSError, errno, strerror, filename and filename2."""
    cls = type(exc)
    info: dict[str, Any] = {"type": cls.__name__, "message": message, "traceback": traceback,
                            "module": cls.__module__, "qualname": cls.__qualname__}
    if isinstance(exc, OSError):
        for name in _OS_FIELDS:
            info[name] = _os_field(getattr(exc, name, None))
    try:
        info["args"] = list(exc.args)
        return values.pack(info)
    except Exception:  # some arg is not a value: that one goes as its repr
        info["args"] = [_value_or_repr(a) for a in _safe_args(exc)]
        return values.pack(info)


def _safe_args(exc: BaseException) -> tuple[Any, ...]:
    args = getattr(exc, "args", ())
    return args if type(args) is tuple else ()


def _value_or_repr(arg: Any) -> Any:
    try:
        values.pack(arg)
        return arg
    except Exception:
        try:
            return repr(arg)
        except Exception:
            return f"<unrepresentable {type(arg).__name__}>"


def _os_field(v: Any) -> Any:
    """errno/strerror/filename as the wire takes them: int, str, bytes or nil."""
    if v is None or type(v) in (int, str, bytes):
        return v
    if isinstance(v, int):
        return int(v)
    try:  # a path-like filename, say
        return str(v)
    except Exception:
        return None


# The optional fields of an error map and the msgpack types each may hold (nil: absent).
_ERROR_FIELDS: dict[str, tuple[type, ...]] = {
    "module": (str,), "qualname": (str,), "args": (list, tuple), "errno": (int,),
    "strerror": (str,), "filename": (str, bytes, int), "filename2": (str, bytes, int),
    "input": (str,), "cause": (bytes,),  # DependencyFailed (issue 17): the input, its error
}


def decode_error(payload: Any) -> dict[str, Any]:
    """The error map of a payload, checked: type and message must be str, or it is an
    unreadable payload. An optional field of the wrong type marks it `malformed` (the
    client then raises TaskError, never a half-rebuilt exception)."""
    try:
        info = _unpack(payload)
    except Exception:
        info = None
    if type(info) is not dict or type(info.get("type")) is not str or type(
            info.get("message")) is not str:
        return {"type": "TaskError", "message": "unreadable error payload", "traceback": ""}
    tb = info.get("traceback", "")
    out: dict[str, Any] = {"type": info["type"], "message": info["message"],
                           "traceback": tb if type(tb) is str else ""}
    for name, kinds in _ERROR_FIELDS.items():
        v = info.get(name)
        if v is None:
            continue
        if type(v) not in kinds:
            out["malformed"] = name
            break
        out[name] = tuple(v) if name == "args" else v
    return out


_ZQ_ERRORS: dict[str, type[TaskError]] = {
    "TaskTimeout": TaskTimeout, "WorkerLost": WorkerLost, "UnknownTask": UnknownTask,
}


def exception_from_error(info: dict[str, Any]) -> BaseException:
    """The exception a client raises for a remote error, with the remote traceback as its
    __cause__: zq's own errors as themselves; the class the payload names, rebuilt from
    its args, when it is a built-in Exception or an Exception class of a module this
    process has already imported (looked up in sys.modules, never imported); else
    TaskError. Rebuilding calls cls(*args) only: a class whose metaclass is not `type`
    (its call could run any code) is not rebuilt, and one whose constructor raises gives
    TaskError. Nothing is unpickled."""
    name, message, tb = info["type"], info["message"], info["traceback"]
    if name == "DependencyFailed" and info.get("module", "zq.errors") == "zq.errors":
        dep = DependencyFailed(name, message, tb)
        dep.input = info.get("input")
        if "cause" in info:  # at most one level: the master flattens a chain's causes
            cause = decode_error(info["cause"])
            if cause["type"] != "DependencyFailed":
                dep.__cause__ = exception_from_error(cause)
        return dep
    if name in _ZQ_ERRORS and info.get("module", "zq.errors") == "zq.errors":
        return _ZQ_ERRORS[name](name, message, tb)
    cls = None if "malformed" in info else _exception_class(info)
    if cls is not None:
        try:
            exc = _rebuild(cls, info)
        except Exception:
            pass
        else:
            exc.__cause__ = RemoteTraceback(tb)
            return exc
    return TaskError(name, message, tb)


def _exception_class(info: dict[str, Any]) -> type[Exception] | None:
    module, qualname = info.get("module"), info.get("qualname")
    if module is None or module == "builtins":  # old workers and other languages: by name
        name = qualname if module is not None else info["type"]
        cls = vars(builtins).get(name) if type(name) is str else None
    else:
        try:
            cls = values.find_class(f"{module}:{qualname}", "exception")
        except ValueError:
            return None
    # Exception, not BaseException: a remote SystemExit or KeyboardInterrupt must not
    # end or interrupt the client. type(cls) is type: no metaclass __call__ runs.
    if isinstance(cls, type) and type(cls) is type and issubclass(cls, Exception) and \
            not issubclass(cls, TaskError):
        return cls
    return None


def _rebuild(cls: type[Exception], info: dict[str, Any]) -> Exception:
    args = info.get("args")
    exc = cls(*args) if args is not None else cls(info["message"])
    if isinstance(exc, OSError):
        for name in _OS_FIELDS:
            if name in info:
                setattr(exc, name, info[name])
    return exc
