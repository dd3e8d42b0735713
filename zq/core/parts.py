"""A payload with frames of its own (protocol 1.4, docs/PROTOCOL.md §2.3).

A task value holding large numpy arrays is packed as a msgpack body plus one buffer per
array: the body refers to its buffers by index (extension type 15, zq.core.values), and
the buffers travel as ZeroMQ frames of their own, sent from the array's memory without a
copy. The master never looks inside: it carries a Parts as it carries bytes, and a
durable store keeps it as one blob (to_blob / from_blob).
"""

from __future__ import annotations

import struct
from typing import Any

# Frames one payload may have: a message holds at most 1,024 besides the signature and
# header (zq.core.codec.MAX_FRAMES), and the body may need one of them.
MAX_PAYLOAD_FRAMES = 1023

# The stored form starts with 0xc1, a byte msgpack never uses: no msgpack payload (what
# zq's peers send) starts with it, so a store can hold both kinds in one column.
BLOB_MARK = b"\xc1"
_COUNT = struct.Struct(">I")
_LENGTH = struct.Struct(">Q")


class Parts:
    """A payload as a msgpack body and the buffers (bytes-like, C-contiguous) it refers
    to. len() is the bytes of all of them, as len() of a plain payload is."""

    __slots__ = ("body", "frames")
    # Whether this process has made one: until then a batch of payloads cannot hold one,
    # and the master's outbox and the worker skip looking for one (a no-op task's path).
    made = False

    def __init__(self, body: Any, frames: list[Any]) -> None:
        self.body = body
        self.frames = frames
        Parts.made = True

    def __len__(self) -> int:
        return len(self.body) + sum(memoryview(f).nbytes for f in self.frames)

    def __eq__(self, other: object) -> bool:
        return (type(other) is Parts and bytes(self.body) == bytes(other.body)
                and [bytes(f) for f in self.frames] == [bytes(f) for f in other.frames])

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Parts(body={len(self.body)} bytes, frames={[len(f) for f in self.frames]})"

    def to_blob(self) -> bytes:
        """One bytes object holding the body and every frame (a store's column)."""
        lengths = [len(self.body), *(memoryview(f).nbytes for f in self.frames)]
        head = BLOB_MARK + _COUNT.pack(len(lengths)) + b"".join(map(_LENGTH.pack, lengths))
        return b"".join([head, self.body, *self.frames])


def from_blob(blob: Any) -> Any:
    """What to_blob stored, as a Parts (its body and frames are views of blob, not
    copies); any other payload as it is."""
    if not blob or blob[:1] != BLOB_MARK:
        return blob
    view = memoryview(blob)
    try:
        (count,) = _COUNT.unpack_from(view, 1)
        at = 1 + _COUNT.size
        if not 2 <= count <= MAX_PAYLOAD_FRAMES + 1:
            raise ValueError(count)
        lengths = [_LENGTH.unpack_from(view, at + i * _LENGTH.size)[0] for i in range(count)]
        at += count * _LENGTH.size
        if at + sum(lengths) != len(view):
            raise ValueError(lengths)
    except (struct.error, ValueError):
        return blob  # not one of ours after all: the master passes it on as it came
    pieces = []
    for n in lengths:
        pieces.append(view[at:at + n])
        at += n
    return Parts(pieces[0], pieces[1:])


class Refs:
    """A task's arguments with the results of the tasks they refer to (issue 17,
    docs/PROTOCOL.md §2.4). `refs` is a list of task ids where a client built it (the
    futures found in the arguments), and a list of (task id, result payload) where the
    master or a worker did (the results to substitute). Carried as one payload."""

    __slots__ = ("payload", "refs")

    def __init__(self, payload: Any, refs: list[Any]) -> None:
        self.payload = payload
        self.refs = refs
        Parts.made = True  # the outbox measures a batch holding one frame by frame

    def __len__(self) -> int:
        return len(self.payload) + sum(len(p) for _, p in self.refs)

    def __repr__(self) -> str:
        return f"Refs({self.payload!r}, {len(self.refs)} refs)"


def frames_of(payload: Any, large: int) -> int:
    """The frames of their own a payload takes in a message (a plain one of `large`
    bytes or more takes one)."""
    if type(payload) is Refs:
        return frames_of(payload.payload, large) + sum(frames_of(p, large)
                                                       for _, p in payload.refs)
    if type(payload) is Parts:
        return len(payload.frames) + (len(payload.body) >= large)
    return int(len(payload) >= large)


def inline_of(payload: Any, large: int) -> int:
    """The bytes a payload puts in a message's header."""
    if type(payload) is Refs:
        return inline_of(payload.payload, large) + sum(inline_of(p, large) + len(i) + 4
                                                       for i, p in payload.refs)
    n = len(payload.body) if type(payload) is Parts else len(payload)
    return n if n < large else 0


def largest_frame(payload: Any) -> int:
    """The bytes of a payload's largest frame (what a peer's max_message bounds)."""
    if type(payload) is Refs:
        return max(largest_frame(payload.payload),
                   *(largest_frame(p) for _, p in payload.refs), 0)
    if type(payload) is Parts:
        return max(len(payload.body), *(memoryview(f).nbytes for f in payload.frames))
    return len(payload)
