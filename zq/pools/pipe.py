"""The pipes between the process pool and its children: message kinds, the slots of the
shared array a child writes, and msgpack framing on a raw fd (both sides use these)."""

from __future__ import annotations

import os
from typing import Any

import msgpack

# parent -> child
TASKS, TAKE_BACK = 0, 1
# child -> parent
OUT, DROPPED, READY, FAILED = 0, 1, 2, 3
# slots of the shared array each child writes before and after every task
STARTED, STARTED_AT, FINISHED = 0, 1, 2

MAX_UNPACK = 2**31 - 1
packb = msgpack.Packer(use_bin_type=True).pack


def unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_UNPACK)


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


