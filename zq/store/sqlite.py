"""The durable store: every TaskRecord in one SQLite file (WAL), group committed.

Journal, then fold. A commit writes the turn's changes as ONE row of the `journal` table
(a msgpack list of saves, updates and deletes, in call order): one SQLite insert per
loop turn instead of one per task change, which is what makes the durable path cheap
(bench/README.md, "The SQLite store"). The changes are folded into the `task` table,
one row per task, later: when the master has been idle for a moment, a chunk at a
time, and at once when more than `fold_after` changes (or FOLD_BYTES) wait, and on
close. A task that was submitted and has finished since the last fold is written once,
not twice. What is not folded yet is indexed in memory (`_unfolded`, oldest first) so
that get() sees it; a journal row is deleted by the fold that leaves no unfolded change
from it. Opening a store folds what a crash left in the journal: replaying a change the
task table already has is harmless, since every change sets values (none adds to them).
A turn that carries a large payload or result skips the journal (DIRECT_BYTES).

Sync level. The promise is "a submission is acknowledged only after it is committed,
and a commit survives kill -9 of the master". With WAL and synchronous=NORMAL a commit
is a write() into the -wal file (fsync waits for the next checkpoint): it survives the
process dying at any instant, since the OS holds the data, but an OS crash or power
loss may lose the last commits (never corrupt the file). synchronous=FULL fsyncs the
WAL on every commit and survives power loss too. The default is "normal": it keeps
exactly the promise made, and each fsync would stall the master's one-thread loop
(dispatch, heartbeats) for as long as the disk takes. Choose sync="full" where a power
loss must lose nothing; bench/store.py measures both.

close() commits nothing: only commit() makes changes durable, so a clean close and a
crash agree. close() discards what is pending (logging a warning), folds the journal
and lets SQLite fold the WAL back into the file, which leaves one consistent file.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
from itertools import islice
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgpack

from zq.core.messages import State
from zq.core.tasks import TaskRecord
from zq.errors import ConfigError, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the journal; one msgpack `record` for the fields not in columns
SCHEMA_KEY = "zq.schema"  # meta keys starting with "zq." belong to the store itself
SYNC_LEVELS = {"normal": "NORMAL", "full": "FULL"}
FOLD_AFTER = 200_000  # unfolded changes kept at most (memory, and the work of an open)
FOLD_CHUNK = 1_000  # tasks folded per compact() by default: ~10 ms of SQLite
FOLD_BYTES = 256 * 2**20  # journal bytes (large payloads) that make a commit fold it all
# A turn with a payload or result this large is written straight into the task table,
# one row per change: journaled, its bytes would be written twice (and the unfolded
# index would hold them). 64 KiB, where the codec sends payloads as frames of their own.
DIRECT_BYTES = 64 * 1024
WAL_PAGES = 16_384  # WAL pages (4 KiB) before SQLite checkpoints by itself
JOURNAL_ROW_MAX = 256 * 2**20  # bytes of one journal row; a larger turn takes several

# DDL next to the code that reads it, as Huey's SqliteStorage keeps it. Rows are read
# in rowid order (first-insert order, which upserts keep) and sorted by seq in Python:
# that is linear for data already nearly in order, and spares every write an index.
# The master answers every query from memory, so only what identifies a task and the
# state are columns; the other fields are one msgpack array (one bind, and no value
# msgpack takes can make SQLite refuse a row at the fold).
TASK_DDL = """CREATE TABLE task (
        id      TEXT NOT NULL UNIQUE,
        seq     INTEGER NOT NULL,
        state   INTEGER NOT NULL,  -- zq.core.messages.State value
        payload BLOB NOT NULL,     -- written on insert only: updates never rewrite it
        record  BLOB NOT NULL      -- msgpack array of RECORD_FIELDS
    )"""
META_DDL = "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
# One row per committed turn not folded yet: msgpack [[op, rows], ...] in call order.
JOURNAL_DDL = "CREATE TABLE journal (turn INTEGER PRIMARY KEY, changes BLOB NOT NULL)"

# Frozen here, not read from TaskRecord.__slots__, so that a new slot cannot change what
# an old row means (tests/store checks that every slot is kept).
RECORD_FIELDS = ("name", "queue", "priority", "attempt", "retries", "timeout", "eta", "key",
                 "after", "retry_backoff", "retry_backoff_max", "retry_on", "result_ttl",
                 "created", "updated", "worker", "result", "progress")

_UPSERT = ("INSERT INTO task (id, seq, state, payload, record) VALUES (?,?,?,?,?)"
           " ON CONFLICT (id) DO UPDATE SET seq=excluded.seq, state=excluded.state,"
           " payload=excluded.payload, record=excluded.record")
_SELECT = "SELECT id, seq, state, payload, record FROM task ORDER BY rowid"
_SELECT_ONE = "SELECT id, seq, state, payload, record FROM task WHERE id = ?"
_UPDATE = "UPDATE task SET state=?, record=? WHERE id=?"
_DELETE = "DELETE FROM task WHERE id = ?"
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"

# Journal operations. A journal row is a plain tuple of the record's fields as they
# were at the commit (cheap: this is the hot path); the SQL rows are built at the
# fold, once per task however often it changed: a save row is _SAVE_FIELDS, an
# update row _UPDATE_FIELDS (everything but seq and the payload), a delete an id.
SAVE, UPDATE, DELETE = 0, 1, 2
_GONE = ()  # in _unfolded: the task was deleted
_SAVE_FIELDS = ("id", "seq", "state", "payload", *RECORD_FIELDS)
_UPDATE_FIELDS = ("id", "state", *RECORD_FIELDS)
# The bytes of a row that may be large: a save's payload (a new task has no result
# yet), an update's result.
_LARGE_FIELD = {SAVE: itemgetter(_SAVE_FIELDS.index("payload")),
                UPDATE: itemgetter(_UPDATE_FIELDS.index("result"))}

_seq = attrgetter("seq")
_pack = msgpack.Packer(use_bin_type=True).pack
_STATES = {s.value: s for s in State}
_BLOB = (bytes, memoryview)


def _unpack(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


def _row(r: TaskRecord) -> tuple:
    """The journal row of a save: _SAVE_FIELDS, spelled out (2.4x faster than an
    attrgetter of 22 names; tests/store checks the two agree)."""
    # Checked here, before the row goes into the journal: a value SQLite refuses in a
    # column would otherwise fail only at the fold, after the commit was acknowledged.
    # (What msgpack refuses fails the commit: the `record` column is msgpack.)
    if (type(r.id) is not str or type(r.seq) is not int or not -2**63 <= r.seq < 2**63
            or type(r.payload) not in _BLOB):
        _refuse(r)
    return (r.id, r.seq, r.state, r.payload, r.name, r.queue, r.priority, r.attempt,
            r.retries, r.timeout, r.eta, r.key, r.after, r.retry_backoff,
            r.retry_backoff_max, r.retry_on, r.result_ttl, r.created, r.updated, r.worker,
            r.result, r.progress)


def _update_row(r: TaskRecord) -> tuple:
    """The journal row of an update: _UPDATE_FIELDS, spelled out."""
    if type(r.id) is not str:
        _refuse(r)
    return (r.id, r.state, r.name, r.queue, r.priority, r.attempt, r.retries, r.timeout,
            r.eta, r.key, r.after, r.retry_backoff, r.retry_backoff_max, r.retry_on,
            r.result_ttl, r.created, r.updated, r.worker, r.result, r.progress)


def _refuse(r: TaskRecord) -> None:
    bad = [f"{name} is {type(value).__name__} {value!r:.40}"
           for name, value, ok in (
               ("id", r.id, type(r.id) is str),
               ("seq", r.seq, type(r.seq) is int and -2**63 <= r.seq < 2**63),
               ("payload", r.payload, type(r.payload) in _BLOB))
           if not ok]
    raise TypeError(f"task {r.id!r} cannot be stored: {'; '.join(bad)}")


def _sql_insert(save: tuple, update: tuple | None) -> tuple:
    """The _UPSERT arguments for a saved task, with its latest update if any."""
    record = save[4:] if update is None else update[2:]
    state = save[2] if update is None else update[1]
    # int(): sqlite3 binds an exact int directly but looks up an adapter for an IntEnum.
    return (save[0], save[1], int(state), save[3], _pack(record))


def _sql_update(update: tuple) -> tuple:
    """The _UPDATE arguments."""
    return (int(update[1]), _pack(update[2:]), update[0])


class SqliteStore:
    """The Store protocol over one SQLite file. Not thread-safe: one thread at a time
    (it may be opened in one thread and used in another)."""

    durable = True

    def __init__(self, path: str | os.PathLike[str], *, sync: str = "normal",
                 timeout: float = 5.0, fold_after: int = FOLD_AFTER,
                 direct_bytes: int = DIRECT_BYTES) -> None:
        if sync not in SYNC_LEVELS:
            raise ConfigError(f"store sync must be one of {sorted(SYNC_LEVELS)}, not {sync!r}")
        self.path = Path(path).expanduser()
        self.sync = sync
        self.fold_after = fold_after
        self.direct_bytes = direct_bytes
        self._closed = False
        self._pending: list[tuple[int, list]] = []  # this turn's (op, items), in call order
        self._pending_meta: dict[str, bytes] = {}
        self._pending_large = False  # a pending change carries a payload or result that large
        # Committed turns not indexed yet: indexing waits for a fold or a get(), so a
        # burst pays one list append per commit.
        self._unindexed: list[tuple[int, list]] = []
        self._unindexed_rows = 0
        # Task id -> [turn of its oldest unfolded change, save row or None or _GONE,
        # latest update row or None]; insertion order is oldest-change order.
        self._unfolded: dict[str, list] = {}
        self._turn = 0  # of the last commit
        self._journal_bytes = 0  # committed to the journal since it was last all folded
        self._wal_dirty = True  # the WAL may hold commits not checkpointed yet
        self._conn = _connect(self.path, timeout)
        try:
            _configure(self._conn, self.path, SYNC_LEVELS[sync])
            _check_schema(self._conn, self.path)
            self._recover()
        except BaseException:
            self._conn.close()
            raise

    # --- writes: buffered until commit() ---------------------------------------------

    def save(self, records: Iterable[TaskRecord]) -> None:
        self._buffer(SAVE, records, _row, "saving tasks")

    def update(self, records: Iterable[TaskRecord]) -> None:
        """Tasks saved before: the state and the record, never the payload again.
        Unknown ids are skipped."""
        self._buffer(UPDATE, records, _update_row, "updating tasks")

    def delete(self, ids: Iterable[str]) -> None:
        self._buffer(DELETE, ids, _task_id, "deleting tasks")

    def set_meta(self, key: str, value: Any) -> None:
        self._check_open(f"setting meta {key!r}")
        if key.startswith("zq."):
            raise StoreError(f"meta key {key!r} is reserved: keys starting with 'zq.' "
                             "belong to the store")
        try:
            self._pending_meta[key] = _pack(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, f"setting meta {key!r}") from e

    def commit(self) -> None:
        """Everything pending in one transaction: the task changes as journal rows (one
        per turn, as a rule), or written straight into the task table when they carry
        large payloads (journaling them would write the bytes twice); then a fold if
        too much waits for one."""
        self._check_open("committing")
        pending, meta = self._pending, self._pending_meta
        if not (pending or meta):
            return
        try:
            parts = _journal_parts(pending) if pending else []
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, "committing") from e
        changes = sum(len(items) for _, items in pending)
        size = sum(len(blob) for _, blob in parts)
        if self._pending_large:
            self._index()
            taken = list(self._unfolded.items())
            self._in_transaction(lambda: self._write_directly(taken, pending, meta),
                                 "committing")
            self._forget(taken)
            parts = []
        else:
            turns = range(self._turn + 1, self._turn + 1 + len(parts))
            self._in_transaction(lambda: self._write_journal(turns, parts, meta), "committing")
        self._pending, self._pending_meta, self._pending_large = [], {}, False
        self._wal_dirty = True
        if parts:
            self._turn = turns[-1]
            self._unindexed += [(turn, items) for turn, (items, _) in zip(turns, parts)]
            self._unindexed_rows += changes
            self._journal_bytes += size
            too_many = len(self._unfolded) + self._unindexed_rows - self.fold_after
            if too_many > 0 or self._journal_bytes > FOLD_BYTES:
                self._index()
                try:  # large payloads: fold it all, so the index lets go of them
                    self._fold(len(self._unfolded) if self._journal_bytes > FOLD_BYTES
                               else len(self._unfolded) - self.fold_after + FOLD_CHUNK)
                except StoreUnavailable:  # committed all the same: fold another time
                    log.warning("folding the journal of %s failed; trying again later",
                                self.path, exc_info=True)

    def _write_journal(self, turns: range, parts: list[tuple[list, bytes]],
                       meta: dict[str, bytes]) -> None:
        self._conn.executemany("INSERT INTO journal (turn, changes) VALUES (?, ?)",
                               [(turn, blob) for turn, (_, blob) in zip(turns, parts)])
        self._conn.executemany(_SET_META, meta.items())

    def _write_directly(self, unfolded: list[tuple[str, list]],
                        pending: list[tuple[int, list]], meta: dict[str, bytes]) -> None:
        """The changes as task rows, in call order, after all that is unfolded (so that
        no older change is folded over them later)."""
        if unfolded:
            self._write_fold(unfolded)
        conn = self._conn
        for op, items in pending:
            if op == SAVE:
                conn.executemany(_UPSERT, [_sql_insert(row, None) for row in items])
            elif op == UPDATE:
                conn.executemany(_UPDATE, [_sql_update(row) for row in items])
            else:
                conn.executemany(_DELETE, [(task_id,) for task_id in items])
        conn.executemany(_SET_META, meta.items())

    def _in_transaction(self, write: Any, what: str) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN")
            write()
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:  # a full disk, an I/O error, a lock
            raise self._unavailable(e, what) from e
        except sqlite3.Error as e:
            raise self._fail(e, what) from e

    def compact(self, limit: int = FOLD_CHUNK) -> bool:
        """Fold up to `limit` tasks' committed changes into the task table, or when all
        are, checkpoint the WAL; True while work remains. The master calls this when it
        has had nothing else to do for a moment."""
        self._check_open("compacting")
        self._index()
        if self._unfolded:
            self._fold(limit)
            return True
        if self._wal_dirty:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as e:
                raise self._unavailable(e, "checkpointing") from e
            except sqlite3.Error as e:
                raise self._fail(e, "checkpointing") from e
            self._wal_dirty = False
        return False

    # --- reads -----------------------------------------------------------------------

    def load(self) -> Iterator[TaskRecord]:
        """Every committed record, by seq."""
        self._check_open("loading the tasks")
        self._index()
        self._fold(len(self._unfolded))
        try:
            records = _read_all(self._conn.execute(_SELECT))
        except (sqlite3.Error, ValueError, KeyError) as e:
            raise self._read_failed(e, "loading the tasks") from e
        records.sort(key=_seq)  # stable: equal seqs keep insertion order
        return iter(records)

    def get(self, task_id: str) -> TaskRecord | None:
        """One committed task by id (an old result being fetched), or None."""
        self._check_open("reading a task")
        self._index()
        _, save, update = self._unfolded.get(task_id, (0, None, None))
        if save is _GONE:
            return None
        try:
            if save is not None:
                row = _sql_insert(save, update)
            else:
                row = self._conn.execute(_SELECT_ONE, (task_id,)).fetchone()
                if row is None:
                    return None
                if update is not None:
                    state, record, _ = _sql_update(update)
                    row = (row[0], row[1], state, row[3], record)
            return _read_all([row])[0]
        except (sqlite3.Error, ValueError, KeyError) as e:
            raise self._read_failed(e, "reading a task") from e

    def get_meta(self, key: str) -> Any:
        self._check_open(f"reading meta {key!r}")
        try:
            if key in self._pending_meta:
                return _unpack(self._pending_meta[key])
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else _unpack(row[0])
        except (sqlite3.Error, ValueError) as e:
            raise self._read_failed(e, f"reading meta {key!r}") from e

    def close(self) -> None:
        """Discard what is not committed, fold the journal and close; closing twice is
        harmless."""
        if self._closed:
            return
        if self._pending or self._pending_meta:
            log.warning("closing the store %s with uncommitted changes: discarded", self.path)
        self._pending, self._pending_meta = [], {}
        try:
            self._index()
            self._fold(len(self._unfolded))
        except StoreError:  # the journal keeps them: the next open folds them
            log.exception("folding the journal of %s on close failed", self.path)
        self._closed = True
        try:
            self._conn.close()  # the last connection checkpoints and removes the -wal
        except sqlite3.Error as e:
            raise StoreError(f"closing the store {self.path} failed: {e}") from e

    # --- the journal -----------------------------------------------------------------

    def _buffer(self, op: int, items: Iterable[Any], check: Any, what: str) -> None:
        self._check_open(what)
        try:
            rows = list(map(check, items))
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, what) from e
        if not rows:
            return
        self._pending.append((op, rows))
        if op != DELETE and not self._pending_large:  # in C: this runs for every task
            sizes = map(len, filter(None, map(_LARGE_FIELD[op], rows)))
            self._pending_large = max(sizes, default=0) >= self.direct_bytes

    def _index(self) -> None:
        for turn, changes in self._unindexed:
            self._remember(turn, changes)
        self._unindexed, self._unindexed_rows = [], 0

    def _remember(self, turn: int, changes: Iterable[tuple[int, list]]) -> None:
        """Note one committed turn's changes as unfolded, merged per task."""
        unfolded = self._unfolded
        get = unfolded.get
        for op, items in changes:
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
                    else:  # (of a deleted task it does nothing: _GONE wins in _fold)
                        entry[2] = row
            else:
                for task_id in items:
                    entry = get(task_id)
                    if entry is None:
                        unfolded[task_id] = [turn, _GONE, None]
                    else:
                        entry[1], entry[2] = _GONE, None

    def _fold(self, limit: int) -> None:
        """Write the oldest `limit` unfolded tasks into the task table, and delete the
        journal rows no unfolded change is left in, in one transaction. Call _index()
        first."""
        if not self._unfolded or limit <= 0:
            return
        taken = list(islice(self._unfolded.items(), limit))
        self._in_transaction(lambda: self._write_fold(taken), "folding the journal")
        self._forget(taken)

    def _write_fold(self, taken: list[tuple[str, list]]) -> None:
        upserts, updates, deletes = [], [], []
        for task_id, (_, save, update) in taken:
            if save is _GONE:
                deletes.append((task_id,))
            elif save is None:
                updates.append(_sql_update(update))
            else:
                upserts.append(_sql_insert(save, update))
        # Journal rows older than the oldest change still unfolded are all in the table.
        unfolded = self._unfolded
        oldest_left = self._turn + 1
        if len(taken) < len(unfolded):
            oldest_left = unfolded[next(islice(unfolded, len(taken), None))][0]
        conn = self._conn
        conn.executemany(_DELETE, deletes)
        conn.executemany(_UPSERT, upserts)
        conn.executemany(_UPDATE, updates)
        conn.execute("DELETE FROM journal WHERE turn < ?", (oldest_left,))

    def _forget(self, taken: list[tuple[str, list]]) -> None:
        """Folded: out of the index (and so out of memory)."""
        unfolded = self._unfolded
        for task_id, _ in taken:
            del unfolded[task_id]
        if not unfolded:
            self._journal_bytes = 0

    def _recover(self) -> None:
        """Fold what a crash left in the journal (all of it was committed)."""
        try:
            for turn, blob in self._conn.execute(
                    "SELECT turn, changes FROM journal ORDER BY turn").fetchall():
                self._remember(turn, msgpack.unpackb(blob, raw=False, use_list=False))
                self._turn = turn
        except (sqlite3.Error, ValueError, TypeError) as e:
            raise ConfigError(f"cannot read the journal of the store {self.path}: {e}") from e
        if self._unfolded:
            log.info("folding %d tasks' changes left in the journal of %s",
                     len(self._unfolded), self.path)
        self._fold(len(self._unfolded))

    # --- errors ----------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"{what}: the store {self.path} is closed")

    def _read_failed(self, e: Exception, what: str) -> StoreError:
        """A read failed: nothing pending is touched (it is not the reader's to drop)."""
        return StoreError(f"{what} failed on the store {self.path}: {e}")

    def _unavailable(self, e: Exception, what: str) -> StoreUnavailable:
        """The error to raise when a retry may succeed: the transaction is rolled back,
        what is pending is kept for the retry."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back by itself after a full disk or an I/O error
        return StoreUnavailable(f"{what} failed on the store {self.path}: {e}; nothing "
                                "was lost, it can be tried again")

    def _fail(self, e: Exception, what: str) -> StoreError:
        """The error to raise; what is pending is discarded first, so that a failed
        save never half-survives into the next commit."""
        if self._closed:
            return StoreError(f"{what}: the store {self.path} is closed")
        note = ""
        if self._pending or self._pending_meta:
            self._pending, self._pending_meta, self._pending_large = [], {}, False
            note = "; the uncommitted changes were discarded"
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            note += "; rolling back failed too"
        return StoreError(f"{what} failed on the store {self.path}: {e}{note}")


def _journal_parts(changes: list[tuple[int, list]]) -> list[tuple[list, bytes]]:
    """The turn's changes as journal rows of at most JOURNAL_ROW_MAX bytes each (unless a
    single change is larger), in order: (changes, packed). One row is the usual case; a
    turn of many large payloads is split so no row nears SQLite's 1 GB blob limit."""
    blob = _pack(changes)
    if len(blob) <= JOURNAL_ROW_MAX:
        return [(changes, blob)]
    flat = [(op, item) for op, items in changes for item in items]
    if len(flat) == 1:
        return [(changes, blob)]
    half = len(flat) // 2
    return _journal_parts(_regroup(flat[:half])) + _journal_parts(_regroup(flat[half:]))


def _regroup(flat: list[tuple[int, Any]]) -> list[tuple[int, list]]:
    """(op, item) pairs back into (op, items) runs, keeping their order."""
    out: list[tuple[int, list]] = []
    for op, item in flat:
        if out and out[-1][0] == op:
            out[-1][1].append(item)
        else:
            out.append((op, [item]))
    return out


def _task_id(task_id: Any) -> str:
    if type(task_id) is not str:
        raise TypeError(f"a task id is a str, not {type(task_id).__name__}")
    return task_id


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    if path.is_dir():
        raise ConfigError(f"the store {path} is a directory: give the path of a file in it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the directory of the store {path}: {e}") from e
    try:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as e:
        raise ConfigError(f"cannot open the store {path}: {e}") from e


def _configure(conn: sqlite3.Connection, path: Path, sync: str) -> None:
    try:
        # The first statement reads the file header: a foreign file fails here.
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute(f"PRAGMA synchronous={sync}")
        # Copying the WAL into the file (a checkpoint, two fsyncs) is most of what a
        # commit costs when SQLite does it every 1,000 pages: let the WAL grow to 64 MiB
        # and checkpoint in compact(), when the master is quiet. Cap what stays on disk.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
    except sqlite3.DatabaseError as e:
        raise ConfigError(
            f"the store {path} is not a SQLite database zq can use ({e}): move the file "
            "away or give another store path") from e
    if mode != "wal":
        raise ConfigError(
            f"the store {path} cannot use SQLite's WAL journal (got {mode!r}); WAL needs a "
            "local filesystem with shared memory: put the store on a local disk")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")  # two masters starting at once create it once
        try:
            version = _schema_version(conn, path)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as e:
        raise ConfigError(f"cannot read the schema of the store {path}: {e}") from e
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the store {path} was written by a newer zq (schema {version}; this zq reads "
            f"up to {SCHEMA_VERSION}): upgrade zq, or give another store path")


def _schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, creating the schema in an empty file and bringing an
    older one up to date."""
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        for statement in (TASK_DDL, META_DDL, JOURNAL_DDL):
            conn.execute(statement)
        conn.execute(_SET_META, (SCHEMA_KEY, _pack(SCHEMA_VERSION)))
        return SCHEMA_VERSION
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()
    if row is None:
        raise ConfigError(f"{path} is a SQLite database but not a zq store: give the "
                          "path of a new file or of an existing zq store")
    version = int(_unpack(row[0]))
    if version < SCHEMA_VERSION:
        raise ConfigError(
            f"the store {path} was written by an older zq (schema {version}; this zq reads "
            f"schema {SCHEMA_VERSION}) and cannot be upgraded in place: finish its tasks "
            "with the zq that wrote it, or give another store path")
    return version


def _read_all(rows: Iterable[tuple]) -> list[TaskRecord]:
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
            (name, queue, r.priority, r.attempt, r.retries, r.timeout, r.eta, r.key, r.after,
             r.retry_backoff, r.retry_backoff_max, r.retry_on, r.result_ttl, created, updated,
             worker, r.result, progress) = unpack(record)
            r.id = id_
            r.seq = seq
            r.state = states[state]
            r.payload = payload
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
            r.progress = None if progress is None else tuple(progress)
            append(r)
    finally:
        if paused:
            gc.enable()
    return out
