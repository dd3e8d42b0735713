"""The master's outbox: one turn's answers, kept per peer and command until the turn
ends, then built into as few messages as a peer accepts (zq.core.codec's limits), in a
fixed order per peer. Pure: nothing here sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Callable

from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Cmd
from zq.core.parts import Parts, Refs, frames_of, inline_of
from zq.core.tasks import TaskRecord

BUSY_RETRY_AFTER = 0.5  # seconds a client waits before sending a BUSY submission again

# The order in which one turn's messages to one peer go out.
SEND_ORDER = (Cmd.WELCOME, Cmd.DISCONNECT, Cmd.ACCEPTED, Cmd.REJECTED, Cmd.BUSY, Cmd.ACK,
              Cmd.CANCEL, Cmd.TASK, Cmd.PARTIAL, Cmd.PROGRESS, Cmd.RESULT, Cmd.REPLY,
              Cmd.EVENTS, Cmd.HEARTBEAT, Cmd.ERROR)


@dataclass
class Flush:
    """One turn's output: persist `saves`/`deletes` and commit, then send `messages`."""

    saves: list[TaskRecord] = field(default_factory=list)  # new tasks: every field
    updates: list[TaskRecord] = field(default_factory=list)  # saved before: what changes
    deletes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # store.set_meta(key, value)
    messages: list[tuple[bytes, m.Message]] = field(default_factory=list)
    # What an operator wants in the master's log: (level "info" or "warning", text).
    notices: list[tuple[str, str]] = field(default_factory=list)


class Outbox:
    """Entries for each peer and command, in the order they were pushed."""

    __slots__ = ("_out",)

    def __init__(self) -> None:
        self._out: dict[bytes, dict[Cmd, Any]] = {}

    def push(self, rid: bytes | None, cmd: Cmd, entry: Any) -> None:
        if rid is None:  # the master's own submission (a schedule): nobody to tell
            return
        per = self._out.get(rid)
        if per is None:
            per = self._out[rid] = {}
        lst = per.get(cmd)
        if lst is None:
            per[cmd] = [entry]
        else:
            lst.append(entry)

    def push_many(self, rid: bytes, cmd: Cmd, entries: list[Any]) -> None:
        per = self._out.get(rid)
        if per is None:
            per = self._out[rid] = {}
        lst = per.get(cmd)
        if lst is None:
            per[cmd] = entries
        else:
            lst.extend(entries)

    def peers(self) -> list[bytes]:
        """The peers something is waiting for."""
        return list(self._out)

    def take(self) -> list[tuple[bytes, m.Message]]:
        """Everything pushed since the last take, as messages: per peer, in SEND_ORDER."""
        out, self._out = self._out, {}
        messages: list[tuple[bytes, m.Message]] = []
        append = messages.append
        for rid, per in out.items():
            if len(per) == 1:  # one kind (an idle worker's HEARTBEAT): no order to keep
                (cmd, items), = per.items()
                if cmd is Cmd.HEARTBEAT:
                    append((rid, _HEARTBEAT))
                    continue
                messages.extend((rid, msg) for msg in build(cmd, items))
                continue
            for cmd in SEND_ORDER:
                if cmd in per:
                    messages.extend((rid, msg) for msg in build(cmd, per[cmd]))
        return messages


# Commands whose turn's entries become one message of this class, as they are.
_ENTRY_MESSAGES: dict[Cmd, Callable[[list[Any]], m.Message]] = {
    Cmd.TASK: m.Task, Cmd.RESULT: m.Result, Cmd.ACK: m.Ack, Cmd.PARTIAL: m.Partial,
    Cmd.PROGRESS: m.Progress, Cmd.CANCEL: m.Cancel, Cmd.REJECTED: m.RejectedEntries,
}


def build(cmd: Cmd, items: list[Any]) -> list[m.Message]:
    """The messages for one peer and one command from the turn's entries: as few as
    possible, each within what a peer decodes (codec.MAX_ENTRIES entries, about
    codec.HEADER_BUDGET bytes of inline payloads, MESSAGE_FRAMES payload frames)."""
    n = len(items)
    at = _PAYLOAD_AT.get(cmd)
    if n > SPLIT_ENTRIES or (at is not None and _overflows(items, at)):
        return [msg for part in parts(cmd, items) for msg in _build_one(cmd, part)]
    return _build_one(cmd, items)


_SIZED = frozenset({Parts, Refs})  # payloads whose frames are counted one by one


def _overflows(items: list[Any], at: int) -> bool:
    """Whether these entries' payloads are more than one message carries."""
    large, n, get = codec.LARGE_PAYLOAD, len(items), itemgetter(at)
    if not Parts.made or not _SIZED.intersection(map(type, map(get, items))):
        # Plain payloads, C-speed checks only: under the budget in all, they take at
        # most budget / 64 KiB frames (128).
        return n * large > codec.HEADER_BUDGET and \
            sum(map(len, map(get, items))) > codec.HEADER_BUDGET
    payloads = list(map(get, items))
    return (sum(inline_of(p, large) for p in payloads) > codec.HEADER_BUDGET
            or sum(frames_of(p, large) for p in payloads) > MESSAGE_FRAMES)


def parts(cmd: Cmd, items: list[Any]) -> list[list[Any]]:
    at = _PAYLOAD_AT.get(cmd)
    large = codec.LARGE_PAYLOAD
    parts: list[list[Any]] = []
    part: list[Any] = []
    size = frames = 0
    for item in items:
        n = f = 0
        if at is not None:  # a large payload is a frame of its own, outside the header
            n, f = inline_of(item[at], large), frames_of(item[at], large)
        if part and (len(part) >= SPLIT_ENTRIES or size + n > codec.HEADER_BUDGET
                     or frames + f > MESSAGE_FRAMES):
            parts.append(part)
            part, size, frames = [], 0, 0
        part.append(item)
        size += n
        frames += f
    parts.append(part)
    return parts


def _build_one(cmd: Cmd, items: list[Any]) -> list[m.Message]:
    make = _ENTRY_MESSAGES.get(cmd)
    if make is not None:
        return [make(items)]
    if cmd is Cmd.ACCEPTED:  # plain ids, and (id, existing id) pairs from key dedup
        same = {i[0]: i[1] for i in items if type(i) is tuple}
        return [m.Accepted([i if type(i) is str else i[0] for i in items] if same else items,
                           same)]
    if cmd is Cmd.BUSY:
        return [m.Busy(items, BUSY_RETRY_AFTER)]
    if cmd is Cmd.HEARTBEAT:
        return [_HEARTBEAT]
    if cmd is Cmd.DISCONNECT:
        last = items[-1]  # a reason, or a whole Disconnect (a final one, 1.4)
        return [last if type(last) is m.Disconnect else m.Disconnect(last)]
    if cmd is Cmd.ERROR:  # one message: the turn's reasons, the last ones if many
        return [m.Error(items[-1] if len(items) == 1 else " | ".join(items[-5:]))]
    return list(items)  # WELCOME, REPLY, EVENTS: whole messages


_HEARTBEAT = m.Heartbeat()  # it has no fields: one for every peer
SPLIT_ENTRIES = 50_000  # entries per message the master sends (codec.MAX_ENTRIES: 100,000)
MESSAGE_FRAMES = codec.MAX_FRAMES - 2  # payload frames in one message (after signature, header)
# Where the payload is in an entry of the commands that carry payloads.
_PAYLOAD_AT = {Cmd.TASK: 3, Cmd.RESULT: 2, Cmd.PARTIAL: 3}
