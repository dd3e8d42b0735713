"""The journal both durable stores keep (zq.store.sqlite, zq.store.postgres): a turn's
writes buffered until commit (TurnBuffer), a task's change as a plain tuple, a turn's
changes as msgpack, committed turns merged per task (JournalIndex: the index of what is
not folded yet), unfolded changes overlaid on stored rows, and stored rows read back
into TaskRecords. No I/O: the stores do their own SQL.
"""

from __future__ import annotations

import gc
from collections import deque
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any, Iterable, Iterator

import msgpack

from zq.core.messages import State
from zq.core.parts import BLOB_MARK as PARTS_MARK
from zq.core.parts import Parts, from_blob
from zq.core.tasks import TaskRecord
from zq.errors import StoreError

JOURNAL_ROW_MAX = 256 * 2**20  # bytes of one journal row; a larger turn takes several
FOLD_AFTER = 200_000  # unfolded changes kept at most (memory, and the work of an open)
FOLD_CHUNK = 1_000  # tasks folded per compact() by default: ~8 ms of SQLite
FOLD_BYTES = 256 * 2**20  # journal bytes (large payloads) past which the store is behind
INDEX_PER_FOLD = 4  # compact(limit) indexes up to this many changes per task it may fold

# Frozen here, not read from TaskRecord.__slots__, so that a new slot cannot change what
# an old row means (tests/store checks that every slot is kept).
RECORD_FIELDS = ("name", "queue", "priority", "attempt", "retries", "timeout", "eta", "key",
                 "after", "retry_backoff", "retry_backoff_max", "retry_on", "result_ttl",
                 "created", "updated", "worker", "result", "progress", "owner", "started",
                 "waited", "inputs")
# Rows written by an older zq hold fewer fields: before "owner" was added the first 18,
# before "started" and "waited" (task timing) the first 19, before "inputs" (issue 17)
# the first 21. What they lack loads as None.
OLD_RECORD_LENS = (len(RECORD_FIELDS) - 4, len(RECORD_FIELDS) - 3, len(RECORD_FIELDS) - 1)

# Journal operations. A journal row is a plain tuple of the record's fields as they
# were at the commit (cheap: this is the hot path); the SQL rows are built at the
# fold, once per task however often it changed: a save row is SAVE_FIELDS, an
# update row UPDATE_FIELDS (everything but seq and the payload), a delete an id.
# SUPERSEDE (ids) marks a direct turn: those tasks were written straight into the task
# table, so their older journal changes must not be folded over them.
SAVE, UPDATE, DELETE, SUPERSEDE = 0, 1, 2, 3
GONE = ()  # in a store's index of unfolded changes: the task was deleted
SAVE_FIELDS = ("id", "seq", "state", "payload", *RECORD_FIELDS)
UPDATE_FIELDS = ("id", "state", *RECORD_FIELDS)
# The bytes of a row that may be large: a save's payload (a new task has no result
# yet), an update's result.
LARGE_FIELD = {SAVE: itemgetter(SAVE_FIELDS.index("payload")),
               UPDATE: itemgetter(UPDATE_FIELDS.index("result"))}

by_seq = attrgetter("seq")
pack = msgpack.Packer(use_bin_type=True).pack
_STATES = {s.value: s for s in State}
_BLOB = (bytes, memoryview)



def unpack(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


def save_row(r: TaskRecord) -> tuple:
    """The journal row of a save: SAVE_FIELDS, spelled out (2.4x faster than an
    attrgetter of 22 names; tests/store checks the two agree)."""
    # Checked here, before the row goes into the journal: a value SQLite refuses in a
    # column would otherwise fail only at the fold, after the commit was acknowledged.
    # (What msgpack refuses fails the commit: the `record` column is msgpack.)
    payload = r.payload
    if (type(r.id) is not str or type(r.seq) is not int or not -2**63 <= r.seq < 2**63
            or type(payload) not in _BLOB):
        payload = _stored_payload(r)
    result = r.result
    if type(result) is Parts:
        result = result.to_blob()
    if type(r) is TaskRecord:  # a plain task: the optional fields at their defaults
        return (r.id, r.seq, r.state, payload, r.name, r.queue, r.priority, r.attempt,
                0, None, None, None, None, 1.0, 600.0, None, None, r.created, r.updated,
                r.worker, result, None, r.owner, r.started, r.waited, None)
    o = r._options
    return (r.id, r.seq, r.state, payload, r.name, r.queue, r.priority, r.attempt,
            o.retries, o.timeout, o.eta, o.key, o.after, o.retry_backoff,
            o.retry_backoff_max, o.retry_on, o.result_ttl, r.created, r.updated, r.worker,
            result, o.progress, r.owner, r.started, r.waited, o.inputs)


def _stored_payload(r: TaskRecord) -> bytes:
    """r's payload as a column holds it: a Parts (a value with numpy arrays as frames of
    their own, protocol 1.4) as one blob, which read_all turns back into a Parts."""
    if type(r.payload) is not Parts or type(r.id) is not str or type(r.seq) is not int \
            or not -2**63 <= r.seq < 2**63:
        _refuse(r)
    return r.payload.to_blob()


def update_row(r: TaskRecord) -> tuple:
    """The journal row of an update: UPDATE_FIELDS, spelled out."""
    if type(r.id) is not str:
        _refuse(r)
    result = r.result
    if type(result) is Parts:  # as save_row: one blob
        result = result.to_blob()
    if type(r) is TaskRecord:  # as in save_row
        return (r.id, r.state, r.name, r.queue, r.priority, r.attempt, 0, None, None, None,
                None, 1.0, 600.0, None, None, r.created, r.updated, r.worker, result, None,
                r.owner, r.started, r.waited, None)
    o = r._options
    return (r.id, r.state, r.name, r.queue, r.priority, r.attempt, o.retries, o.timeout,
            o.eta, o.key, o.after, o.retry_backoff, o.retry_backoff_max, o.retry_on,
            o.result_ttl, r.created, r.updated, r.worker, result, o.progress, r.owner,
            r.started, r.waited, o.inputs)


def _refuse(r: TaskRecord) -> None:
    bad = [f"{name} is {type(value).__name__} {value!r:.40}"
           for name, value, ok in (
               ("id", r.id, type(r.id) is str),
               ("seq", r.seq, type(r.seq) is int and -2**63 <= r.seq < 2**63),
               ("payload", r.payload, type(r.payload) in _BLOB))
           if not ok]
    raise TypeError(f"task {r.id!r} cannot be stored: {'; '.join(bad)}")


class TurnBuffer:
    """The writes of one loop turn, buffered until the store's commit(): the Store
    protocol's save, update, delete and set_meta, once for both durable stores. Each
    change is checked as it comes (save_row, update_row, task_id_of), so a value the
    store cannot keep fails the call that gave it, never the commit. A store built on
    it gives _check_open(what) and _fail(e, what) (the error to raise, after dropping
    what is pending), and may note each change it keeps in _buffered(op, rows)."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, list]] = []  # this turn's (op, rows), in call order
        self._pending_meta: dict[str, bytes] = {}  # key -> packed value

    def save(self, records: Iterable[TaskRecord]) -> None:
        self._buffer(SAVE, records, save_row, "saving tasks")

    def update(self, records: Iterable[TaskRecord]) -> None:
        """Tasks saved before: the state and the record, never the payload again.
        Unknown ids are skipped."""
        self._buffer(UPDATE, records, update_row, "updating tasks")

    def delete(self, ids: Iterable[str]) -> None:
        self._buffer(DELETE, ids, task_id_of, "deleting tasks")

    def set_meta(self, key: str, value: Any) -> None:
        self._check_open(f"setting meta {key!r}")
        if key.startswith("zq."):
            raise StoreError(f"meta key {key!r} is reserved: keys starting with 'zq.' "
                             "belong to the store")
        try:
            self._pending_meta[key] = pack(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, f"setting meta {key!r}") from e

    def _buffer(self, op: int, items: Iterable[Any], check: Any, what: str) -> None:
        self._check_open(what)
        try:
            rows = list(map(check, items))
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, what) from e
        if rows:
            self._pending.append((op, rows))
            self._buffered(op, rows)

    def _buffered(self, op: int, rows: list) -> None:
        """A change was added to the turn: a store that needs to know more of it looks."""

    def _clear_pending(self) -> bool:
        """Drop the turn's writes (committed, or given up); whether there were any."""
        had = bool(self._pending or self._pending_meta)
        self._pending, self._pending_meta = [], {}
        return had

    def _check_open(self, what: str) -> None:
        raise NotImplementedError

    def _fail(self, e: Exception, what: str) -> StoreError:
        raise NotImplementedError


class JournalIndex:
    """What a durable store keeps in memory of its journal: the committed turns not
    indexed yet (indexing waits for compact() or a read, so a burst pays one append per
    commit), the index of unfolded changes, and the turn and size of each journal row.
    The store writes and deletes the rows; this says which and when."""

    def __init__(self, fold_after: int, fold_bytes: int) -> None:
        self.fold_after = fold_after  # unfolded changes past which the store is behind()
        self.fold_bytes = fold_bytes  # journal bytes past which it is behind()
        self._unindexed: deque[tuple[int, list]] = deque()  # (turn, changes)
        self._unindexed_rows = 0
        # Task id -> [turn of its oldest unfolded change, save row or None or GONE,
        # latest update row or None]; insertion order is oldest-change order.
        self._unfolded: dict[str, list] = {}
        self._turn = 0  # of the last commit
        self._journal: deque[tuple[int, int]] = deque()  # (turn, bytes) of the journal's rows
        self._journal_bytes = 0

    def behind(self) -> bool:
        """More waits to be folded than the store should carry (fold_after changes, or
        fold_bytes of journal): the master then compacts every turn, busy or not."""
        return (len(self._unfolded) + self._unindexed_rows > self.fold_after
                or self._journal_bytes > self.fold_bytes)

    def _committed(self, turns: Iterable[int], parts: list[tuple[list, bytes]],
                   pending: list[tuple[int, list]]) -> None:
        """The turn's changes (journal_parts of `pending`) are in the journal as rows
        `turns`: noted, to be indexed later."""
        for turn, (items, blob) in zip(turns, parts):
            self._unindexed.append((turn, items))
            self._journal_row(turn, len(blob))
        self._unindexed_rows += sum(len(items) for _, items in pending)

    def _journal_row(self, turn: int, size: int) -> None:
        self._journal.append((turn, size))
        self._journal_bytes += size
        self._turn = turn

    def _replay(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Index the journal's rows (turn, changes), as an open finds them. A row that
        cannot be read raises ValueError, TypeError or IndexError."""
        for turn, blob in rows:
            merge(self._unfolded, turn, msgpack.unpackb(blob, raw=False, use_list=False))
            self._journal_row(turn, len(blob))

    def _index(self, limit: int | None = None) -> bool:
        """Index committed turns, oldest first, until `limit` changes are (all of them
        by default); True when none is left to index."""
        unindexed = self._unindexed
        done = 0
        while unindexed and (limit is None or done < limit):
            turn, changes = unindexed.popleft()
            done += merge(self._unfolded, turn, changes)
        self._unindexed_rows -= done
        return not unindexed

    def _oldest_left(self, folded: int) -> int:
        """The oldest turn with a change still unfolded once the first `folded` tasks
        are: journal rows before it are all in the task table."""
        unfolded = self._unfolded
        if folded < len(unfolded):
            return int(unfolded[next(islice(unfolded, folded, None))][0])
        if self._unindexed:  # newer than every indexed turn
            return self._unindexed[0][0]
        return self._turn + 1

    def _folded(self, taken: list[tuple[str, list]], oldest_left: int) -> None:
        """The `taken` tasks are in the task table, and the journal rows before
        oldest_left are deleted."""
        unfolded = self._unfolded
        for task_id, _ in taken:
            del unfolded[task_id]
        self._drop_journal_before(oldest_left)

    def _drop_journal_before(self, turn: int) -> None:
        journal = self._journal
        while journal and journal[0][0] < turn:
            self._journal_bytes -= journal.popleft()[1]

    def _reset_index(self) -> None:
        """Forget the journal as read so far (before reading it afresh)."""
        self._unindexed.clear()
        self._unindexed_rows = 0
        self._unfolded = {}
        self._journal.clear()
        self._journal_bytes = 0
        self._turn = 0


def insert_args(save: tuple, update: tuple | None) -> tuple:
    """The _UPSERT arguments for a saved task, with its latest update if any."""
    record = save[4:] if update is None else update[2:]
    state = save[2] if update is None else update[1]
    # int(): sqlite3 binds an exact int directly but looks up an adapter for an IntEnum.
    return (save[0], save[1], int(state), save[3], pack(record))


def update_args(update: tuple) -> tuple:
    """The _UPDATE arguments."""
    return (int(update[1]), pack(update[2:]), update[0])


def overlay(row: tuple | None, entry: list) -> tuple | None:
    """The task's row as its unfolded changes leave it (row: the task table's, or None)."""
    _, save, update = entry
    if save is GONE:
        return None
    if save is not None:
        return insert_args(save, update)
    if row is None:
        return None  # an update of a task the table does not have: skipped, as _UPDATE does
    state, record, _ = update_args(update)
    return (row[0], row[1], state, row[3], record)


def overlaid(rows: Iterable[tuple], unfolded: dict[str, list]) -> Iterator[tuple]:
    """The task table's rows with the unfolded changes applied: what a fold would leave."""
    if not unfolded:
        yield from rows
        return
    seen = set()
    for row in rows:
        entry = unfolded.get(row[0])
        if entry is None:
            yield row
            continue
        seen.add(row[0])
        merged = overlay(row, entry)
        if merged is not None:
            yield merged
    for task_id, entry in unfolded.items():
        if task_id not in seen:
            added = overlay(None, entry)
            if added is not None:
                yield added


def merge(unfolded: dict[str, list], turn: int, changes: Iterable[tuple[int, Any]]) -> int:
    """Note one committed turn's changes as unfolded, merged per task; the number of
    changes. A SUPERSEDE drops what is unfolded of its tasks (written directly since)."""
    get = unfolded.get
    n = 0
    for op, items in changes:
        n += len(items)
        if op == SAVE:
            for row in items:
                entry = get(row[0])
                if entry is None:
                    unfolded[row[0]] = [turn, row, None]
                else:
                    entry[1], entry[2] = row, None
        elif op == UPDATE:
            for row in items:
                entry = get(row[0])
                if entry is None:
                    unfolded[row[0]] = [turn, None, row]
                else:  # (of a deleted task it does nothing: GONE wins in the fold)
                    entry[2] = row
        elif op == DELETE:
            for task_id in items:
                entry = get(task_id)
                if entry is None:
                    unfolded[task_id] = [turn, GONE, None]
                else:
                    entry[1], entry[2] = GONE, None
        elif op == SUPERSEDE:
            for task_id in items:
                unfolded.pop(task_id, None)
        else:
            raise ValueError(f"unknown journal operation {op!r}")
    return n


def journal_parts(changes: list[tuple[int, list]],
                  row_max: int = JOURNAL_ROW_MAX) -> list[tuple[list, bytes]]:
    """The turn's changes as journal rows of at most row_max bytes each (unless a
    single change is larger), in order: (changes, packed). One row is the usual case; a
    turn of many large payloads is split so no row nears SQLite's 1 GB blob limit."""
    blob = pack(changes)
    if len(blob) <= row_max:
        return [(changes, blob)]
    flat = [(op, item) for op, items in changes for item in items]
    if len(flat) == 1:
        return [(changes, blob)]
    half = len(flat) // 2
    return (journal_parts(_regroup(flat[:half]), row_max)
            + journal_parts(_regroup(flat[half:]), row_max))


def _regroup(flat: list[tuple[int, Any]]) -> list[tuple[int, list]]:
    """(op, item) pairs back into (op, items) runs, keeping their order."""
    out: list[tuple[int, list]] = []
    for op, item in flat:
        if out and out[-1][0] == op:
            out[-1][1].append(item)
        else:
            out.append((op, [item]))
    return out


def task_id_of(task_id: Any) -> str:
    if type(task_id) is not str:
        raise TypeError(f"a task id is a str, not {type(task_id).__name__}")
    return task_id


def read_all(rows: Iterable[tuple]) -> list[TaskRecord]:
    """One TaskRecord per row, built without TaskRecord.__init__ (4x faster, it counts
    at a million rows); tests/store checks that every slot is set."""
    new = object.__new__
    unpack = msgpack.unpackb
    states = _STATES
    strings: dict[str, str] = {}  # names, queues and workers repeat: keep one copy
    intern = strings.setdefault
    out: list[TaskRecord] = []
    append = out.append
    created_before = updated_before = 0.0  # tasks of one loop turn share their times
    # Collections during the load would walk every record built so far, repeatedly,
    # and find nothing to free: pause them (only here, never across a yield).
    paused = gc.isenabled()
    gc.disable()
    try:
        for id_, seq, state, payload, record in rows:
            r = new(TaskRecord)
            fields = unpack(record)
            if len(fields) in OLD_RECORD_LENS:  # a row from an older zq
                fields.extend([None] * (len(RECORD_FIELDS) - len(fields)))
            (name, queue, r.priority, r.attempt, retries, timeout, eta, key, after,
             retry_backoff, retry_backoff_max, retry_on, result_ttl, created, updated,
             worker, r.result, progress, r.owner, r.started, r.waited, inputs) = fields
            r.id = id_
            r.seq = seq
            r.state = states[state]
            r.payload = payload if payload[:1] != PARTS_MARK else from_blob(payload)
            if type(r.result) is bytes and r.result[:1] == PARTS_MARK:
                r.result = from_blob(r.result)
            r.name = intern(name, name)
            r.queue = intern(queue, queue)
            if created == created_before:
                created = created_before
            if updated == created:
                updated = created
            elif updated == updated_before:
                updated = updated_before
            r.created = created_before = created
            r.updated = updated_before = updated
            r.worker = None if worker is None else intern(worker, worker)
            # the optional fields: a plain task's stay its class defaults (tasks.OPTIONAL)
            r.take_options((retries, timeout, eta, key, after, retry_backoff,
                            retry_backoff_max, retry_on, result_ttl,
                            None if progress is None else tuple(progress), inputs))
            append(r)
    finally:
        if paused:
            gc.enable()
    return out
