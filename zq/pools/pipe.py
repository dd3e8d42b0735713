"""The pipes between the process pool and its children: message kinds, the slots of the
shared array a child writes, and msgpack framing on a raw fd (both sides use these)."""

from __future__ import annotations

import os
from typing import Any

import msgpack

from zq.core.parts import Parts, Refs, from_blob

# parent -> child
TASKS, TAKE_BACK = 0, 1
# child -> parent
OUT, DROPPED, READY, FAILED = 0, 1, 2, 3
# slots of the shared array each child writes before and after every task
STARTED, STARTED_AT, FINISHED = 0, 1, 2

MAX_UNPACK = 2**31 - 1
_PARTS = 1  # msgpack extension code of a payload with frames (a task value's large arrays)
_REFS = 2  # a call with the results it refers to (zq.core.parts.Refs, issue 17)


def _parts_out(obj: Any) -> Any:
    if type(obj) is Parts:  # one blob: the pipe copies it anyway
        return msgpack.ExtType(_PARTS, obj.to_blob())
    if type(obj) is Refs:
        inner = msgpack.packb([obj.payload, [list(r) for r in obj.refs]],  # not packb:
                              use_bin_type=True, default=_parts_out)  # not reentrant
        return msgpack.ExtType(_REFS, inner)
    raise TypeError(f"cannot send a {type(obj).__name__} through a pool pipe")


def _parts_in(code: int, data: bytes) -> Any:
    if code == _REFS:
        payload, refs = msgpack.unpackb(data, raw=False, ext_hook=_parts_in)
        return Refs(payload, [(tid, p) for tid, p in refs])
    if code != _PARTS:
        raise ValueError(f"unknown extension {code} on a pool pipe")
    return from_blob(data)


# The hook runs only for what msgpack cannot pack itself: a Parts payload.
packb = msgpack.Packer(use_bin_type=True, default=_parts_out).pack


def unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_UNPACK,
                            ext_hook=_parts_in)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


READ_SIZE = 1 << 20


class Reader:
    """Messages from a pipe. Reads into one reused buffer: ``os.read(fd, 1 MiB)`` would
    allocate a megabyte per call, which costs more than the read itself."""

    __slots__ = ("fd", "_buf", "_view", "_unpacker")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._unpacker = unpacker()

    def read(self) -> tuple[int, list[Any]]:
        """(bytes read, whole messages). 0 bytes means EOF; BlockingIOError if none."""
        n = os.readv(self.fd, [self._buf])
        if n:
            self._unpacker.feed(self._view[:n])
        return n, list(self._unpacker) if n else []


