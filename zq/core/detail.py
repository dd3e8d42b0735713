"""One task in detail, the `get` query's answer (docs/PROTOCOL.md §5, 1.5): the task map
plus the first bytes of its argument payload (never decoded here: a client renders them
with zq.preview), the tasks it waits for and those waiting for it, its latest streamed
chunks and its past attempts.

Chunks and past attempts are not stored: the master keeps the latest few of each in
memory (Recent), for a bounded number of tasks, only so that a person can look at them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from zq.core import serde
from zq.core.messages import FINAL_STATES, Payload, State
from zq.core.parts import Parts, Refs
from zq.core.tasks import TaskRecord

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

ARGS_HEAD = 4096  # bytes of a task's argument payload `get` shows
DEPS_SHOWN = 100  # parents and children listed at most (their totals are counted)
CHILD_SCAN = 10_000  # tasks newer than a final one looked at for its children
CHUNKS_KEPT = 20  # a task's latest streamed chunks kept in memory
CHUNK_HEAD = 1024  # bytes of each kept chunk
STREAMS_KEPT = 500  # tasks whose chunks are kept (those that streamed last)
ATTEMPTS_KEPT = 20  # a task's latest past attempts kept in memory
HISTORIES_KEPT = 10_000  # tasks whose past attempts are kept (those retried last)
ANSWER_ROW = 256  # bytes a row of an answer is counted as (zq.core.queries.ROW_COST)
ERROR_TEXT = 200  # characters of a past attempt's error message kept


def head(payload: Payload | Refs | None, cap: int) -> tuple[bytes, int]:
    """The first `cap` bytes of a payload's msgpack (a Parts: of its body, whose
    arrays then show as references to frames) and the payload's whole size in bytes."""
    if payload is None:
        return b"", 0
    if type(payload) is Refs:
        payload = payload.payload
    body: Any = payload.body if type(payload) is Parts else payload
    return bytes(memoryview(body)[:cap]), len(payload)


class Recent:
    """What the master remembers, in memory only, about tasks' streams and retries:
    per task the latest CHUNKS_KEPT chunks (and how many came) and the latest
    ATTEMPTS_KEPT attempts that ended without ending the task; for the STREAMS_KEPT
    tasks that streamed last and the HISTORIES_KEPT tasks retried last. Entries are
    not dropped when their task is forgotten (that path is every task's): each is
    marked with its task's seq, and one of an earlier task of the same id is ignored."""

    def __init__(self) -> None:
        # task id -> [its seq, chunks seen], the latest chunks
        self.chunks: OrderedDict[str, tuple[list[int], deque[dict[str, Any]]]] = OrderedDict()
        # task id -> (its seq, the latest past attempts)
        self.attempts: OrderedDict[str, tuple[int, deque[dict[str, Any]]]] = OrderedDict()

    def chunk(self, t: TaskRecord, attempt: int, seq: int, payload: Payload) -> None:
        kept = self.chunks.pop(t.id, None)
        if kept is None or kept[0][0] != t.seq:
            kept = ([t.seq, 0], deque(maxlen=CHUNKS_KEPT))
            if len(self.chunks) >= STREAMS_KEPT:
                self.chunks.popitem(last=False)
        self.chunks[t.id] = kept
        kept[0][1] += 1
        data, size = head(payload, CHUNK_HEAD)
        kept[1].append({"attempt": attempt, "seq": seq, "size": size, "head": data})

    def attempt_ended(self, t: TaskRecord, outcome: str, wall: float,
                      error: Payload | None = None) -> None:
        """t's current attempt ended and t goes on (a retry, a lost worker)."""
        kept = self.attempts.pop(t.id, None)
        if kept is None or kept[0] != t.seq:
            kept = (t.seq, deque(maxlen=ATTEMPTS_KEPT))
            if len(self.attempts) >= HISTORIES_KEPT:
                self.attempts.popitem(last=False)
        self.attempts[t.id] = kept
        kept[1].append({"attempt": t.attempt, "worker": t.worker, "started": t.started,
                        "finished": wall, "outcome": outcome, "error": _short_error(error)})

    def chunks_of(self, t: TaskRecord) -> tuple[list[dict[str, Any]], int]:
        """t's kept chunks, oldest first, and how many it streamed."""
        kept = self.chunks.get(t.id)
        if kept is None or kept[0][0] != t.seq:
            return [], 0
        return [dict(c) for c in kept[1]], kept[0][1]

    def attempts_of(self, t: TaskRecord) -> list[dict[str, Any]]:
        kept = self.attempts.get(t.id)
        if kept is None or kept[0] != t.seq:
            return []
        return [dict(a) for a in kept[1]]


def _short_error(payload: Payload | None) -> dict[str, str] | None:
    if payload is None:
        return None
    err = serde.decode_error(payload)
    return {"type": str(err.get("type"))[:ERROR_TEXT],
            "message": str(err.get("message"))[:ERROR_TEXT]}


def task_detail(core: MasterCore, t: TaskRecord) -> dict[str, Any]:
    """The `get` answer for t. Its arguments: from its record, or, freed there after a
    success, as the loop read them back from a durable store (queries.args_to_load);
    nil with a volatile store."""
    out = t.as_dict()
    if t.payload:  # b"": freed after a success
        args: tuple[bytes, int] | None = head(t.payload, ARGS_HEAD)
    else:
        args = core.loaded_args.pop(t.id, None)
    out["args_head"], out["args_size"] = args if args is not None else (None, None)
    out.update(_parents(core, t))
    out.update(_children(core, t))
    out["chunks"], out["chunks_total"] = core.recent.chunks_of(t)
    out["attempts"] = attempts(core, t)
    # Its cost to the asker's query budget, as its size: a row per dependency, chunk
    # and attempt listed, and the heads' bytes (up to ~30 KiB in all).
    head_bytes = len(out["args_head"] or b"") + sum(len(c["head"]) for c in out["chunks"])
    core._rows += (len(out["parents"]) + len(out["children"]) + len(out["chunks"])
                   + len(out["attempts"]) + head_bytes // ANSWER_ROW)
    return out


def _dep(core: MasterCore, tid: str) -> dict[str, Any]:
    d = core.tasks.get(tid)
    if d is None:  # forgotten since (a result past its ttl, a purge)
        return {"id": tid, "name": None, "state": None}
    return {"id": tid, "name": d.name, "state": d.state.label}


def _parents(core: MasterCore, t: TaskRecord) -> dict[str, Any]:
    after = t.after or []
    inputs = set(t.inputs or ())
    shown = [dict(_dep(core, tid), input=tid in inputs) for tid in after[:DEPS_SHOWN]]
    return {"parents": shown, "parents_total": len(after)}


def _children(core: MasterCore, t: TaskRecord) -> dict[str, Any]:
    """The tasks that wait for t: the master's own list while t has not ended; after
    that, the tasks newer than t that name it, among the newest CHILD_SCAN
    (children_partial: the look stopped there)."""
    waiting = core.waiting.get(t.id)
    if waiting is not None or t.state not in FINAL_STATES:
        ids = list(dict.fromkeys(waiting or ()))
        return {"children": [_dep(core, c) for c in ids[:DEPS_SHOWN]],
                "children_total": len(ids), "children_partial": False}
    found: list[TaskRecord] = []
    scanned, read, partial = 0, 0, False
    for other in reversed(core.tasks.values()):
        if other is t:
            break
        if scanned >= CHILD_SCAN:
            partial = True
            break
        scanned += 1
        if other.after:
            read += len(other.after)
            if t.id in other.after:
                found.append(other)
    core._scanned += scanned + read  # charged for each id the look read
    found.reverse()  # oldest first, as the master's own list is
    return {"children": [_dep(core, c.id) for c in found[:DEPS_SHOWN]],
            "children_total": len(found), "children_partial": partial}


def attempts(core: MasterCore, t: TaskRecord) -> list[dict[str, Any]]:
    """t's attempts, oldest first: those that ended without ending t that this
    master saw (in memory, the latest ATTEMPTS_KEPT), then the current or last one
    from t's own record, once it has started on a worker."""
    out = core.recent.attempts_of(t)
    running = t.state is State.RUNNING
    if not (running or t.state in FINAL_STATES) or t.attempt <= 0 or t.worker is None:
        return out  # not started yet (or again): its last attempt, if any, is listed
    if out and out[-1]["attempt"] == t.attempt and out[-1]["started"] == t.started:
        return out  # that attempt ended, then the task did (cancelled while retrying)
    timing = t.timing()
    failed = t.state in (State.FAILED, State.DEAD, State.CANCELLED)
    out.append({"attempt": t.attempt, "worker": t.worker, "started": timing["started"],
                "finished": timing["finished"],
                "outcome": "running" if running else t.state.label,
                "error": _short_error(t.result) if failed and t.result else None})
    return out
