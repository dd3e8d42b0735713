"""Python values <-> msgpack bytes, with zq's extension types (docs/PROTOCOL.md §2.1).

Native msgpack types pack through one strict Packer with no hook, at C speed; only a value
that holds something else (a tuple, an int beyond 64 bits, a set, a datetime, ...) is packed
again with the hook, so the common case pays nothing. Decoding runs no code a value names:
an Enum or dataclass is looked up among modules already imported, never imported.

pack_parts() also takes numpy arrays of ARRAY_FRAME bytes or more out of the msgpack: each
becomes a buffer of its own (a view of the array, not a copy) that the payload's body refers
to by index (zq.core.parts.Parts); unpack() of such a Parts rebuilds each array over its
buffer with numpy.frombuffer, again without a copy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import re
import struct
import sys
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
from msgpack import ExtType

from zq.core.parts import MAX_PAYLOAD_FRAMES, Parts


class Ext(enum.IntEnum):
    """msgpack extension type codes of task payloads (docs/PROTOCOL.md §2.1)."""

    TUPLE = 1
    BIGINT = 2
    SET = 3
    FROZENSET = 4
    DATETIME = 5
    DATE = 6
    TIME = 7
    TIMEDELTA = 8
    DECIMAL = 9
    UUID = 10
    COMPLEX = 11
    ENUM = 12
    DATACLASS = 13
    NDARRAY = 14
    NDFRAME = 15  # 1.4: a numpy array whose bytes are a frame of the payload's own
    REF = 16  # 1.4: the result of another task, which the TASK carries (issue 17)


# Extension values nest by packing their insides separately, one Packer (and, decoding,
# one C unpack context) per level: bound the levels so hostile input cannot exhaust the
# stack. Lists and maps inside one level do not count.
MAX_DEPTH = 100
MAX_ZONE_KEY = 255  # characters of a zoneinfo key
MAX_NDIM = 64  # numpy's own limit
# An array of this many bytes or more travels as a frame of its own when the payload is
# packed with pack_parts (below it, its bytes are copied into the msgpack body): measured
# in bench/README.md ("numpy arrays as frames").
ARRAY_FRAME = 16 * 1024
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
_COMPLEX = struct.Struct(">dd")
# dtype.str of what travels: byte order, kind, item size, datetime unit; no object or
# structured arrays (those would need pickle).
_DTYPE = re.compile(r"[<>|][biufcmMSU][0-9]{1,9}(\[[0-9]{0,9}[a-zA-Z]{1,2}\])?")

# No hook: it calls no Python code, so it is atomic under the GIL and may be shared by
# threads. It refuses anything but exact native types, which sends the value to _slow.
_fast: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True, strict_types=True).pack
pack_native = _fast


def pack(value: Any) -> bytes:
    """The msgpack bytes of value. TypeError/ValueError/OverflowError say why not."""
    try:
        return _fast(value)
    except (TypeError, OverflowError):
        pass  # outside the except block, so an error of _slow's is not chained to this one
    return _slow(value, 0)


def pack_ext(value: Any) -> bytes:
    """pack(value) for a value pack_native refused (it holds a non-native type)."""
    return _slow(value, 0)


# The buffers of the payload being packed (pack_parts) or unpacked (unpack of a Parts):
# a context variable, so that nested extension values reach them and threads do not mix.
_FRAMES_OUT: ContextVar[list[Any] | None] = ContextVar("zq_frames_out", default=None)
_FRAMES_IN: ContextVar[list[Any] | None] = ContextVar("zq_frames_in", default=None)
# References to other tasks' results (Ext.REF, issue 17): the ids met while packing a
# call (set by serde.pack_call only: a result or a chunk cannot hold one), and the
# results a TASK carried while unpacking its call (serde.decode_call).
_REFS_OUT: ContextVar[list[str] | None] = ContextVar("zq_refs_out", default=None)
_INPUTS_IN: ContextVar[dict[str, Any] | None] = ContextVar("zq_inputs_in", default=None)


def refer_with(cls: type, task_id: Callable[[Any], str]) -> None:
    """Instances of cls (the client's Future) pack as a reference to the result of the
    task `task_id(obj)` names, where a call is packed with collect_refs."""
    _ENCODERS[cls] = partial(_encode_ref, task_id)


def _encode_ref(task_id: Callable[[Any], str], obj: Any, depth: int) -> ExtType:
    refs = _REFS_OUT.get()
    if refs is None:
        raise TypeError(f"a {type(obj).__name__} can stand only in a task's arguments (it "
                        "is replaced there by its task's result), not in a result")
    tid = task_id(obj)
    refs.append(tid)
    return ExtType(Ext.REF, _fast(tid))


def pack_call_refs(value: Any) -> tuple[bytes | Parts, list[str]]:
    """pack_ext_parts(value) of a call, and the task ids it refers to (in order, once
    each)."""
    refs: list[str] = []
    token = _REFS_OUT.set(refs)
    try:
        return pack_ext_parts(value), list(dict.fromkeys(refs))
    finally:
        _REFS_OUT.reset(token)


def unpack_with(data: Any, inputs: dict[str, Any]) -> Any:
    """unpack(data) where each reference is replaced by the value of its result payload
    in inputs (task id -> payload)."""
    token = _INPUTS_IN.set(inputs)
    try:
        return unpack(data)
    finally:
        _INPUTS_IN.reset(token)


def pack_parts(value: Any) -> bytes | Parts:
    """pack(value), except that numpy arrays of ARRAY_FRAME bytes or more become buffers
    of their own (views, no copy): a Parts when there are any, else the bytes."""
    try:
        return _fast(value)
    except (TypeError, OverflowError):
        pass
    return pack_ext_parts(value)


def pack_ext_parts(value: Any) -> bytes | Parts:
    """pack_parts(value) for a value pack_native refused."""
    frames: list[Any] = []
    token = _FRAMES_OUT.set(frames)
    try:
        body = _slow(value, 0)
    finally:
        _FRAMES_OUT.reset(token)
    return Parts(body, frames) if frames else body


def _slow(value: Any, depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise ValueError(f"values nest more than {MAX_DEPTH} levels of tuples, sets and "
                         "other extension types")
    packer = msgpack.Packer(use_bin_type=True, strict_types=True,
                            default=partial(_default, depth), buf_size=256)
    packed: bytes = packer.pack(value)
    return packed


def _inner(value: Any, depth: int) -> bytes:
    """The bytes inside an extension value at this depth."""
    try:
        return _fast(value)
    except (TypeError, OverflowError):
        pass
    return _slow(value, depth + 1)


# --- encoding: called by msgpack for anything that is not an exact native type ----------


def _default(depth: int, obj: Any) -> Any:
    encode = _ENCODERS.get(type(obj))
    if encode is not None:
        return encode(obj, depth)
    return _default_by_kind(obj, depth)


def _default_by_kind(obj: Any, depth: int) -> Any:
    """Subclasses and classes of the app: an Enum member, a dataclass, a subclass of a
    native type (sent as that type), a numpy array or scalar."""
    if isinstance(obj, enum.Enum):
        return _encode_enum(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _encode_dataclass(obj, depth)
    for base, encode in _BY_BASE:
        if isinstance(obj, base):
            return encode(obj, depth)
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.ndarray):
            return _encode_ndarray(obj, np)
        if isinstance(obj, np.generic):
            return obj.item()
    kind = type(obj)
    raise TypeError(f"a {kind.__module__}.{kind.__qualname__} cannot be sent; zq sends None, "
                    "bool, int, float, complex, str, bytes, list, tuple, dict, set, "
                    "frozenset, datetime, date, time, timedelta, Decimal, UUID, Enum "
                    "members, dataclasses and numpy arrays (docs/PROTOCOL.md §2.1)")


def _encode_int(n: int, depth: int) -> Any:
    n = int(n)
    if _INT64_MIN <= n <= _UINT64_MAX:
        return n  # a subclass of int within msgpack's range
    return ExtType(Ext.BIGINT, n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True))


def _encode_tz(tz: dt.tzinfo | None) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        offset = tz.utcoffset(None)
        micros = offset // dt.timedelta(microseconds=1)
        name = tz.tzname(None)
        return micros if name == dt.timezone(offset).tzname(None) else [micros, name]
    if isinstance(tz, ZoneInfo) and tz.key is not None:
        return tz.key
    raise TypeError(f"the time zone {tz!r} cannot be sent: use datetime.timezone or "
                    "zoneinfo.ZoneInfo (by key)")


def _encode_datetime(d: dt.datetime, depth: int) -> ExtType:
    return ExtType(Ext.DATETIME, _fast([d.year, d.month, d.day, d.hour, d.minute, d.second,
                                        d.microsecond, d.fold, _encode_tz(d.tzinfo)]))


def _encode_time(t: dt.time, depth: int) -> ExtType:
    return ExtType(Ext.TIME, _fast([t.hour, t.minute, t.second, t.microsecond, t.fold,
                                    _encode_tz(t.tzinfo)]))


def _encode_enum(member: enum.Enum) -> ExtType:
    """A member by name; a combination of Flag members (no name of its own) by its int."""
    cls = type(member)
    key: Any = member.name
    if isinstance(member, enum.Flag) and cls.__members__.get(key) is not member:
        key = int(member.value)
    return ExtType(Ext.ENUM, _fast([_class_ref(cls), key]))


def _class_ref(cls: type) -> str:
    module, qualname = cls.__module__, cls.__qualname__
    if "<locals>" in qualname or module == "__main__":
        raise TypeError(f"{qualname} is defined in a function or in __main__, where the "
                        "other side cannot find it; define it at the top level of a module "
                        "both sides import (the worker's --app module, say)")
    return f"{module}:{qualname}"


def _encode_dataclass(obj: Any, depth: int) -> ExtType:
    fields = {}
    for f in dataclasses.fields(obj):
        try:
            fields[f.name] = getattr(obj, f.name)
        except AttributeError:
            continue  # an init=False field never set
    return ExtType(Ext.DATACLASS, _inner([_class_ref(type(obj)), fields], depth))


def _encode_ndarray(a: Any, np: Any) -> ExtType:
    if a.dtype.fields is not None or a.dtype.kind not in "biufcmMSU":
        raise TypeError(f"a numpy array of dtype {a.dtype} cannot be sent: only numbers, "
                        "booleans, datetimes and strings (no object or structured dtypes)")
    # A C-contiguous array is viewed, not copied; any other is copied into C order once.
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    frames = _FRAMES_OUT.get()
    if frames is not None and a.nbytes >= ARRAY_FRAME and len(frames) < MAX_PAYLOAD_FRAMES:
        frames.append(memoryview(flat))
        return ExtType(Ext.NDFRAME, _fast([a.dtype.str, list(a.shape), len(frames) - 1]))
    return ExtType(Ext.NDARRAY, _fast([a.dtype.str, list(a.shape), memoryview(flat)]))


_ENCODERS: dict[type, Callable[[Any, int], Any]] = {
    tuple: lambda t, depth: ExtType(Ext.TUPLE, _inner(list(t), depth)),
    int: _encode_int,
    set: lambda s, depth: ExtType(Ext.SET, _inner(list(s), depth)),
    frozenset: lambda s, depth: ExtType(Ext.FROZENSET, _inner(list(s), depth)),
    dt.datetime: _encode_datetime,
    dt.date: lambda d, depth: ExtType(Ext.DATE, _fast([d.year, d.month, d.day])),
    dt.time: _encode_time,
    dt.timedelta: lambda d, depth: ExtType(Ext.TIMEDELTA,
                                           _fast([d.days, d.seconds, d.microseconds])),
    decimal.Decimal: lambda d, depth: ExtType(Ext.DECIMAL, str(d).encode()),
    uuid.UUID: lambda u, depth: ExtType(Ext.UUID, u.bytes),
    complex: lambda c, depth: ExtType(Ext.COMPLEX, _COMPLEX.pack(c.real, c.imag)),
}

# Subclasses, in order (datetime before date: a datetime is a date). A subclass of a
# native type travels as that type; a namedtuple as a tuple.
_BY_BASE: list[tuple[type, Callable[[Any, int], Any]]] = [
    (tuple, _ENCODERS[tuple]), (int, _encode_int), (set, _ENCODERS[set]),
    (frozenset, _ENCODERS[frozenset]), (dt.datetime, _encode_datetime),
    (dt.date, _ENCODERS[dt.date]), (dt.time, _encode_time),
    (dt.timedelta, _ENCODERS[dt.timedelta]), (decimal.Decimal, _ENCODERS[decimal.Decimal]),
    (uuid.UUID, _ENCODERS[uuid.UUID]), (complex, _ENCODERS[complex]),
    (float, lambda x, depth: float(x)), (str, lambda x, depth: str(x)),
    (bytes, lambda x, depth: bytes(x)), (list, lambda x, depth: list(x)),
    (dict, lambda x, depth: dict(x)),
]


# --- decoding: every field checked, no code run ---------------------------------------


def _hook(depth: int, code: int, data: bytes) -> Any:
    decode = _DECODERS.get(code)
    if decode is None:
        raise ValueError(f"unknown extension type {code} in a value: the sender uses an "
                         "encoding this zq does not know (docs/PROTOCOL.md §2.1 lists them)")
    if depth > MAX_DEPTH:
        raise ValueError(f"values nest more than {MAX_DEPTH} levels of extension types")
    return decode(data, depth)


_top_hook = partial(_hook, 0)


def unpack(data: Any) -> Any:
    """The value of msgpack bytes from pack(), or of a Parts from pack_parts();
    ValueError (or another Exception from msgpack) for bytes that are not one."""
    if type(data) is Parts:
        return _unpack_parts(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_top_hook,
                           timestamp=3)


def _unpack_parts(data: Parts) -> Any:
    token = _FRAMES_IN.set(data.frames)
    try:
        return msgpack.unpackb(data.body, raw=False, strict_map_key=False,
                               ext_hook=_top_hook, timestamp=3)
    finally:
        _FRAMES_IN.reset(token)


def _unpack_inner(data: bytes, depth: int) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           ext_hook=partial(_hook, depth + 1), timestamp=3)


def _items(data: bytes, depth: int) -> list[Any]:
    items = _unpack_inner(data, depth)
    if type(items) is not list:
        raise ValueError("a tuple or set extension must hold an array")
    return items


def _fields(data: bytes, n: int, what: str, inner: int | None = None) -> list[Any]:
    """The array of n fields inside an extension value; extension values among them
    only if `inner` gives the depth (a tuple in a dataclass), never in a datetime."""
    hook = _no_ext if inner is None else partial(_hook, inner + 1)
    fields = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=hook)
    if type(fields) is not list or len(fields) != n:
        raise ValueError(f"a {what} extension must hold an array of {n} fields")
    return fields


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError("an extension type where a plain field was expected")


def _check_ints(fields: list[Any], what: str) -> None:
    if not all(type(x) is int for x in fields):
        raise ValueError(f"the fields of a {what} must be integers")


def _decode_tz(tz: Any) -> dt.tzinfo | None:
    if tz is None:
        return None
    if type(tz) is int:
        return dt.timezone(dt.timedelta(microseconds=tz))
    if type(tz) is str and 0 < len(tz) <= MAX_ZONE_KEY:
        return ZoneInfo(tz)  # reads the tz database under TZPATH only; bad keys raise
    if type(tz) is list and len(tz) == 2 and type(tz[0]) is int and type(tz[1]) is str:
        return dt.timezone(dt.timedelta(microseconds=tz[0]), tz[1])
    raise ValueError("a time zone must be nil, an offset in microseconds, [offset, name] "
                     "or a zoneinfo key")


def _decode_datetime(data: bytes, depth: int) -> dt.datetime:
    f = _fields(data, 9, "datetime")
    _check_ints(f[:8], "datetime")
    year, month, day, hour, minute, second, micro, fold, tz = f
    return dt.datetime(year, month, day, hour, minute, second, micro, fold=fold,
                       tzinfo=_decode_tz(tz))


def _decode_date(data: bytes, depth: int) -> dt.date:
    f = _fields(data, 3, "date")
    _check_ints(f, "date")
    return dt.date(*f)


def _decode_time(data: bytes, depth: int) -> dt.time:
    f = _fields(data, 6, "time")
    _check_ints(f[:5], "time")
    hour, minute, second, micro, fold, tz = f
    return dt.time(hour, minute, second, micro, fold=fold, tzinfo=_decode_tz(tz))


def _decode_timedelta(data: bytes, depth: int) -> dt.timedelta:
    f = _fields(data, 3, "timedelta")
    _check_ints(f, "timedelta")
    return dt.timedelta(days=f[0], seconds=f[1], microseconds=f[2])


def _decode_bigint(data: bytes, depth: int) -> int:
    if not data:
        raise ValueError("an empty big integer")
    return int.from_bytes(data, "big", signed=True)


def _decode_decimal(data: bytes, depth: int) -> decimal.Decimal:
    try:
        return decimal.Decimal(data.decode("ascii"))
    except (UnicodeDecodeError, decimal.InvalidOperation) as e:
        raise ValueError(f"not a decimal number: {data[:40]!r}") from e


def _decode_uuid(data: bytes, depth: int) -> uuid.UUID:
    if len(data) != 16:
        raise ValueError(f"a UUID takes 16 bytes, not {len(data)}")
    return uuid.UUID(bytes=data)


def _decode_complex(data: bytes, depth: int) -> complex:
    if len(data) != _COMPLEX.size:
        raise ValueError(f"a complex number takes {_COMPLEX.size} bytes, not {len(data)}")
    real, imag = _COMPLEX.unpack(data)
    return complex(real, imag)


def find_class(ref: Any, want: str) -> type:
    """The class "module:qualname" names, from a module already imported here (never
    imported because a value names it), reached through classes defined there only and
    itself defined exactly there; ValueError saying why not."""
    module_name, _, qualname = ref.partition(":") if type(ref) is str else ("", "", "")
    parts = qualname.split(".")
    if not module_name or any(not p.isidentifier() or p.startswith("__") for p in parts):
        raise ValueError(f"{str(ref)[:200]!r} does not name a class")
    module = sys.modules.get(module_name)
    if module is None:
        raise ValueError(f"the {want} {ref!r} cannot be rebuilt here: module {module_name!r} "
                         "is not imported (zq never imports a module because a value names "
                         "it; import it first, e.g. from the worker's --app module)")
    obj: Any = module
    found: type | None = None
    for part in parts:  # each step from a namespace's own dict: no __getattr__, no descriptor
        step = vars(obj).get(part)
        if not isinstance(step, type):
            found = None
            break
        obj = found = step
    if found is None or obj.__module__ != module_name or obj.__qualname__ != qualname:
        raise ValueError(f"{module_name} defines no class {qualname!r}")
    return found


def _decode_enum(data: bytes, depth: int) -> enum.Enum:
    f = _fields(data, 2, "Enum")
    cls = find_class(f[0], "Enum")
    if not issubclass(cls, enum.Enum):
        raise ValueError(f"{f[0]!r} is not an Enum")
    if type(f[1]) is int and issubclass(cls, enum.Flag):
        return cls(f[1])  # a combination of flags; a value no flags make raises ValueError
    member = cls.__members__.get(f[1]) if type(f[1]) is str else None
    if member is None:
        raise ValueError(f"{f[0]} has no member {str(f[1])[:100]!r}")
    return member


def _decode_dataclass(data: bytes, depth: int) -> Any:
    f = _fields(data, 2, "dataclass", inner=depth)
    cls = find_class(f[0], "dataclass")
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{f[0]!r} is not a dataclass")
    fields = f[1]
    names = {x.name for x in dataclasses.fields(cls)}
    if type(fields) is not dict or not all(type(k) is str and k in names for k in fields):
        raise ValueError(f"the fields of a {f[0]} must be a map of its field names")
    try:  # as pickle does: no __init__, no __post_init__, no code of the value's choice
        obj = object.__new__(cls)
    except TypeError as e:
        raise ValueError(f"{f[0]} cannot be rebuilt: {e}") from e
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


def _numpy() -> Any:
    """numpy, an optional dependency, imported when an array arrives. By the import
    statement, not sys.modules: while another thread (of a thread pool) is importing it,
    sys.modules holds it half initialized, and the statement waits for the import."""
    try:
        import numpy
    except ImportError:
        raise ValueError("a numpy array arrived, but numpy is not installed here") from None
    return numpy


def _array_fields(data: bytes, what: str) -> tuple[Any, list[int], Any]:
    """(dtype, shape, third field) of an array extension, checked."""
    np = _numpy()
    dtype_str, shape, third = _fields(data, 3, what)
    if type(dtype_str) is not str or not _DTYPE.fullmatch(dtype_str):
        raise ValueError(f"not a numpy dtype zq sends: {str(dtype_str)[:40]!r}")
    if type(shape) is not list or len(shape) > MAX_NDIM or \
            not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError("a numpy array's shape must be at most 64 non-negative ints")
    return np.dtype(dtype_str), shape, third


def _check_size(dtype: Any, shape: list[int], nbytes: int) -> None:
    count = 1
    for n in shape:
        count *= n
    if dtype.itemsize == 0 or count * dtype.itemsize != nbytes:
        raise ValueError(f"a numpy array of shape {shape} and dtype {dtype.str} does not "
                         f"take {nbytes} bytes")


def _decode_ndarray(data: bytes, depth: int) -> Any:
    dtype, shape, raw = _array_fields(data, "numpy array")
    if type(raw) is not bytes:
        raise ValueError("a numpy array's data must be a bin")
    _check_size(dtype, shape, len(raw))
    # writable, owning its data
    return _numpy().frombuffer(bytearray(raw), dtype=dtype).reshape(shape)


def _decode_ndframe(data: bytes, depth: int) -> Any:
    """An array over a frame of the payload's own: no copy when the frame is writable
    (one received from ZeroMQ is), so the array is writable as a pickled one would be."""
    dtype, shape, index = _array_fields(data, "numpy array frame")
    frames = _FRAMES_IN.get()
    if frames is None or type(index) is not int or not 0 <= index < len(frames):
        raise ValueError(f"a numpy array refers to frame {str(index)[:20]} of its payload, "
                         f"which has {len(frames or ())} frames")
    view = memoryview(frames[index])
    _check_size(dtype, shape, view.nbytes)
    if view.readonly:  # bytes (a payload not received from ZeroMQ): copied once
        view = memoryview(bytearray(view))
    return _numpy().frombuffer(view.cast("B"), dtype=dtype).reshape(shape)


def _decode_ref(data: bytes, depth: int) -> Any:
    """The value of the result the reference names, from the payloads its TASK carried.
    Inside that value no reference is resolved: a result never holds one."""
    tid = msgpack.unpackb(data, raw=False, ext_hook=_no_ext)
    inputs = _INPUTS_IN.get()
    if type(tid) is not str:
        raise ValueError("a task reference must hold a task id (str)")
    if inputs is None or tid not in inputs:
        raise ValueError(f"the arguments refer to the result of task {tid[:128]}, which "
                         "did not come with the task")
    token = _INPUTS_IN.set(None)
    try:
        return unpack(inputs[tid])
    finally:
        _INPUTS_IN.reset(token)


_DECODERS: dict[int, Callable[[bytes, int], Any]] = {
    Ext.TUPLE: lambda data, depth: tuple(_items(data, depth)),
    Ext.BIGINT: _decode_bigint,
    Ext.SET: lambda data, depth: set(_items(data, depth)),
    Ext.FROZENSET: lambda data, depth: frozenset(_items(data, depth)),
    Ext.DATETIME: _decode_datetime,
    Ext.DATE: _decode_date,
    Ext.TIME: _decode_time,
    Ext.TIMEDELTA: _decode_timedelta,
    Ext.DECIMAL: _decode_decimal,
    Ext.UUID: _decode_uuid,
    Ext.COMPLEX: _decode_complex,
    Ext.ENUM: _decode_enum,
    Ext.DATACLASS: _decode_dataclass,
    Ext.NDARRAY: _decode_ndarray,
    Ext.NDFRAME: _decode_ndframe,
    Ext.REF: _decode_ref,
}

# Extension types that hold plain data only: decoding one imports and builds nothing a
# value names (zq.preview shows these as values and the others as tags).
PLAIN_DATA = frozenset([Ext.BIGINT, Ext.DATETIME, Ext.DATE, Ext.TIME, Ext.TIMEDELTA,
                        Ext.DECIMAL, Ext.UUID, Ext.COMPLEX])


def decode_plain(code: int, data: bytes) -> Any:
    """The value of one extension value of a PLAIN_DATA type; ValueError (or another
    Exception) for bytes that are not one."""
    if code not in PLAIN_DATA:
        raise ValueError(f"extension type {code} is not plain data")
    return _DECODERS[code](data, 0)
