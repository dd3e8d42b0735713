"""A readable, bounded preview of a task payload the master sent back undecoded (the
`get` query's `args_head`, a kept chunk's `head`: docs/PROTOCOL.md §5).

Nothing a payload names is imported, unpickled or built: an Enum member, a dataclass, a
numpy array or a reference to another task's result shows as a tag such as
``<enum app:Color.RED>``; the extension types that are plain data (tuples, sets, big
integers, dates, Decimal, UUID, complex) decode with zq's own codec (zq.core.values)
and show as Python writes them. A payload cut short (only its first bytes were sent)
shows what its bytes hold, then ``…``; bytes that are not msgpack show in hex.
"""

from __future__ import annotations

from typing import Any, Callable

import msgpack

from zq.core import values
from zq.core.values import Ext

DEPTH = 32  # levels of nesting shown; deeper ones show as …
HEX_BYTES = 64  # bytes shown in hex for a payload that is not msgpack
_SCALAR_TEXT = 4096  # characters of a str or bytes looked at (the preview cuts it anyway)
_BIG_INT_BITS = 4096  # a longer integer shows its size, not its digits
_ARRAY_BYTES = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])
_MAP_BYTES = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])
# str and bin: the first byte -> (bytes of the header, bytes of its length field)
_TEXT_HEADERS = {**{b: (1, 0) for b in range(0xA0, 0xC0)}, 0xD9: (2, 1), 0xDA: (3, 2),
                 0xDB: (5, 4), 0xC4: (2, 1), 0xC5: (3, 2), 0xC6: (5, 4)}


class _Full(Exception):
    """The preview reached its limit."""


class _Out:
    """The text written so far, never longer than `limit` characters."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.left = limit

    def write(self, text: str) -> None:
        if len(text) > self.left:
            self.parts.append(text[:self.left])
            self.left = 0
            raise _Full
        self.parts.append(text)
        self.left -= len(text)

    def text(self) -> str:
        return "".join(self.parts)


class _Cut(Exception):
    """The head ended inside a value, and what it held of it is shown."""


class _Shown:
    """An extension value, as the preview shows it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def preview_payload(head: bytes, size: int, limit: int = 500, *, call: bool = True) -> str:
    """At most `limit` characters (at least 1) showing a payload of `size` bytes from its
    first bytes `head`. call: the payload is a task's arguments, ``[args, kwargs]``,
    shown as ``(1, 'a', x=2)``; else (a chunk, a result) one value. Never raises for
    any bytes, never imports or builds what the payload names."""
    limit = max(1, limit)
    head = bytes(head)
    if not head:
        return "(nothing)"[:limit] if size <= 0 else f"({size} bytes, none shown)"[:limit]
    out = _Out(limit)
    cut = size > len(head)
    u = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=_hook(0), timestamp=3,
                         max_buffer_size=max(len(head), 1))
    u.feed(head)
    try:
        if call and head[0] == 0x92:
            _call(u, head, out)
        else:
            _value(u, head, out, 0)
        rest = len(head) - u.tell()
        if rest > 0 or cut:
            out.write(f" <+{max(rest, 0) + max(size - len(head), 0)} bytes>")
    except _Full:
        return out.text()[:limit - 1] + "…"
    except _Cut:
        pass
    except msgpack.OutOfData:
        _ending(out, "…" if cut else f" <cut short at byte {len(head)}>")
    except Exception:  # noqa: BLE001 - not msgpack (or not zq's): shown as bytes
        _ending(out, f"{' ' if out.parts else ''}<bytes from {u.tell()}: "
                     f"{head[u.tell():u.tell() + HEX_BYTES].hex(' ')}"
                     f"{'…' if len(head) - u.tell() > HEX_BYTES or cut else ''}>")
    text = out.text()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _ending(out: _Out, text: str) -> None:
    try:
        out.write(text)
    except _Full:
        pass


def _call(u: msgpack.Unpacker, data: bytes, out: _Out) -> None:
    """[args, kwargs] as (a, b, k=v); anything else in that array as a value."""
    u.read_array_header()
    out.write("(")
    first = True
    if _next_byte(u, data) in _ARRAY_BYTES:
        for _ in range(u.read_array_header()):
            out.write("" if first else ", ")
            first = False
            _value(u, data, out, 1)
    else:
        _value(u, data, out, 1)
        first = False
    if _next_byte(u, data) in _MAP_BYTES:
        for _ in range(u.read_map_header()):
            out.write("" if first else ", ")
            first = False
            key = u.unpack()
            if type(key) is str and key.isidentifier():
                out.write(f"{key}=")
            else:
                out.write(f"**{{{_scalar(key)}: ")
            _value(u, data, out, 1)
            if not (type(key) is str and key.isidentifier()):
                out.write("}")
    else:
        out.write("" if first else ", ")
        _value(u, data, out, 1)
    out.write(")")


def _next_byte(u: msgpack.Unpacker, data: bytes) -> int:
    at = u.tell()
    if at >= len(data):
        raise msgpack.OutOfData
    return data[at]


def _value(u: msgpack.Unpacker, data: bytes, out: _Out, depth: int) -> None:
    """One value read from u, written as it is read, so a value cut short shows its
    start: arrays and maps element by element, anything else whole."""
    b = _next_byte(u, data)
    if depth >= DEPTH and (b in _ARRAY_BYTES or b in _MAP_BYTES):
        out.write("…")
        raise _Full
    if b in _ARRAY_BYTES:
        out.write("[")
        for i in range(u.read_array_header()):
            out.write(", " if i else "")
            _value(u, data, out, depth + 1)
        out.write("]")
    elif b in _MAP_BYTES:
        out.write("{")
        for i in range(u.read_map_header()):
            out.write(", " if i else "")
            _value(u, data, out, depth + 1)
            out.write(": ")
            _value(u, data, out, depth + 1)
        out.write("}")
    elif b in _TEXT_HEADERS:
        _text(u, data, out, b)
    else:
        out.write(_scalar(u.unpack()))


def _text(u: msgpack.Unpacker, data: bytes, out: _Out, first: int) -> None:
    """A str or bytes; one the head ends inside (a long document passed as an
    argument) shows its start, then the preview ends."""
    at = u.tell()
    size, field = _TEXT_HEADERS[first]
    length = first & 0x1F if not field else int.from_bytes(data[at + 1:at + size], "big")
    if field and at + size > len(data) or at + size + length <= len(data):
        out.write(_scalar(u.unpack()))  # whole (or its header cut: OutOfData)
        return
    start = data[at + size:at + size + _SCALAR_TEXT]
    shown = start.decode("utf-8", "ignore") if first not in (0xC4, 0xC5, 0xC6) else start
    out.write(repr(shown)[:-1] + "…" + repr(shown)[-1])
    raise _Cut


def _scalar(v: Any) -> str:
    """A decoded value as text: long strings and bytes cut before repr() runs."""
    if type(v) is _Shown:
        return v.text
    if type(v) is str and len(v) > _SCALAR_TEXT:
        return repr(v[:_SCALAR_TEXT])[:-1] + "…'"
    if type(v) is bytes and len(v) > _SCALAR_TEXT:
        return repr(v[:_SCALAR_TEXT])[:-1] + "…'"
    if type(v) is int and v.bit_length() > _BIG_INT_BITS:
        return f"<int of {v.bit_length()} bits>"
    if type(v) in (list, tuple, set, frozenset, dict):  # inside an extension value
        return _container(v)
    try:
        return repr(v)
    except Exception:  # noqa: BLE001 - a value repr() refuses: its type then
        return f"<{type(v).__name__}>"


def _container(v: Any) -> str:
    if type(v) is dict:
        return "{" + ", ".join(f"{_scalar(k)}: {_scalar(x)}" for k, x in v.items()) + "}"
    inner = ", ".join(_scalar(x) for x in v)
    if type(v) is list:
        return f"[{inner}]"
    if type(v) is tuple:
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if not v:
        return f"{type(v).__name__}()"
    return f"{{{inner}}}" if type(v) is set else f"frozenset({{{inner}}})"


def _hook(depth: int) -> Callable[[int, bytes], Any]:
    def hook(code: int, data: bytes) -> Any:
        try:
            return _extension(code, data, depth)
        except Exception:  # noqa: BLE001 - a malformed extension value: a tag, not a failure
            return _Shown(f"<ext {code}: {len(data)} bytes, unreadable>")
    return hook


def _inner(data: bytes, depth: int) -> Any:
    if depth >= DEPTH:
        return _Shown("…")
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_hook(depth + 1),
                           timestamp=3)


def _extension(code: int, data: bytes, depth: int) -> Any:
    if code in values.PLAIN_DATA:  # zq's codec: fields checked, nothing imported or run
        return values.decode_plain(code, data)
    if code in (Ext.TUPLE, Ext.SET, Ext.FROZENSET):
        items = _inner(data, depth)
        if type(items) is not list:
            raise ValueError("not an array")
        text = _container(items)[1:-1]
        if code == Ext.TUPLE:
            return _Shown(f"({text},)" if len(items) == 1 else f"({text})")
        name = "set" if code == Ext.SET else "frozenset"
        return _Shown(f"{name}()" if not items else f"{{{text}}}" if code == Ext.SET
                      else f"frozenset({{{text}}})")
    if code == Ext.ENUM:
        ref, member = msgpack.unpackb(data, raw=False)
        return _Shown(f"<enum {str(ref)[:200]}.{str(member)[:200]}>")
    if code == Ext.DATACLASS:
        ref, fields = _inner(data, depth)
        if type(fields) is not dict:
            raise ValueError("fields are not a map")
        shown = ", ".join(f"{str(k)[:100]}={_scalar(v)}" for k, v in fields.items())
        return _Shown(f"<dataclass {str(ref)[:200]}>({shown})")
    if code in (Ext.NDARRAY, Ext.NDFRAME):
        dtype, shape, third = msgpack.unpackb(data, raw=False)
        where = f", frame {third}" if code == Ext.NDFRAME else ""
        return _Shown(f"<ndarray {str(dtype)[:40]} {_scalar(shape)[:200]}{where}>")
    if code == Ext.REF:
        return _Shown(f"<result of task {str(msgpack.unpackb(data, raw=False))[:200]}>")
    return _Shown(f"<ext {code}: {len(data)} bytes>")
