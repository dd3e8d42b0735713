"""The durable store: every TaskRecord in one SQLite file (WAL), group committed.

Journal, then fold. A commit writes the turn's changes as ONE row of the `journal` table
(a msgpack list of saves, updates and deletes, in call order): one SQLite insert per
loop turn instead of one per task change, which is what makes the durable path cheap
(bench/README.md, "The SQLite store"). The changes are folded into the `task` table,
one row per task, later and never inside a commit: compact() folds the oldest unfolded
tasks, a bounded slice per call, which the master calls when it is quiet, and every
turn, busy or not, while the store is behind() (more than `fold_after` changes or
FOLD_BYTES of journal wait). So no turn of the master pays for more than its own
changes and a slice (issue 10: a commit that folded 198,000 rows stalled it 2.5 s). A
task that was submitted and has finished since the last fold is written once, not
twice. What is not folded yet is indexed in memory (`_unfolded`, oldest first; indexing
too goes a bounded number of changes per compact) so that get() and load() see it; a
journal row is deleted by the fold that leaves no unfolded change from it. Opening a
store indexes what a crash left in the journal, which is then folded as upkeep:
replaying a change the task table already has is harmless, since every change sets
values (none adds to them). A turn that carries a large payload or result skips the
journal (DIRECT_BYTES): its changes go straight into the task table, merged with the
unfolded changes of the tasks it touches, and a SUPERSEDE row in the journal tells a
replay to drop the older changes of those tasks.

Opening checks an existing file before anything is written to it (sqlite_file.py): a
damaged one is refused with the way out (StoreDamaged), byte for byte untouched.

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

import logging
import os
import sqlite3
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from zq.core.tasks import TaskRecord
from zq.errors import ConfigError, StoreDamaged, StoreError, StoreUnavailable
from zq.store import sqlite_file
from zq.store.journal import (  # noqa: F401  (RECORD_FIELDS re-exported, as before)
    DELETE,
    FOLD_AFTER,
    FOLD_BYTES,
    FOLD_CHUNK,
    GONE,
    INDEX_PER_FOLD,
    JOURNAL_ROW_MAX,
    LARGE_FIELD,
    RECORD_FIELDS,
    SUPERSEDE,
    UPDATE,
    JournalIndex,
    TurnBuffer,
    by_seq,
    insert_args,
    journal_parts,
    merge,
    overlaid,
    overlay,
    pack,
    read_all,
    unpack,
    update_args,
)
from zq.store.sqlite_file import (  # noqa: F401  (re-exported: tests and tools use them)
    JOURNAL_DDL,
    META_DDL,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    SET_META,
    TASK_DDL,
    WAL_PAGES,
)

log = logging.getLogger(__name__)

SYNC_LEVELS = {"normal": "NORMAL", "full": "FULL"}
# A turn with a payload or result this large is written straight into the task table,
# one row per change: journaled, its bytes would be written twice (and the unfolded
# index would hold them). 64 KiB, where the codec sends payloads as frames of their own.
DIRECT_BYTES = 64 * 1024
# A direct turn merges with the unfolded changes of its tasks, which needs them all
# indexed; past this many changes waiting to be indexed it is journaled instead.
DIRECT_INDEX_MAX = 20_000

_UPSERT = ("INSERT INTO task (id, seq, state, payload, record) VALUES (?,?,?,?,?)"
           " ON CONFLICT (id) DO UPDATE SET seq=excluded.seq, state=excluded.state,"
           " payload=excluded.payload, record=excluded.record")
_SELECT = "SELECT id, seq, state, payload, record FROM task ORDER BY rowid"
_SELECT_ONE = "SELECT id, seq, state, payload, record FROM task WHERE id = ?"
_UPDATE = "UPDATE task SET state=?, record=? WHERE id=?"
_DELETE = "DELETE FROM task WHERE id = ?"

class SqliteStore(TurnBuffer, JournalIndex):
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
        self.direct_bytes = direct_bytes
        self._timeout = timeout
        self._closed = False
        self._damaged = False  # the file was found damaged: nothing more is written to it
        TurnBuffer.__init__(self)  # the turn's buffered writes
        self._pending_large = False  # a pending change carries a payload or result that large
        JournalIndex.__init__(self, fold_after, FOLD_BYTES)  # the journal, in memory
        self._wal_dirty = True  # the WAL may hold commits not checkpointed yet
        self._checkpointer: sqlite_file.Checkpointer | None = None  # once writable
        # An existing file is read through a read-only connection until the first write
        # (_writable): a damaged one is refused before anything touches it.
        self._conn, self._writable = sqlite_file.open_file(self.path, timeout,
                                                           SYNC_LEVELS[sync])
        try:
            self._recover()
            if self._writable:
                self._checkpointer = sqlite_file.Checkpointer(self.path, timeout)
        except BaseException:
            self._conn.close()
            raise

    # --- writes: buffered until commit() (save, update, delete, set_meta: TurnBuffer) ---

    def commit(self) -> None:
        """Everything pending in one transaction: the task changes as journal rows (one
        per turn, as a rule), or written straight into the task table when they carry
        large payloads (journaling them would write the bytes twice). Never a fold."""
        self._check_open("committing")
        pending, meta = self._pending, self._pending_meta
        if not (pending or meta):
            return
        self._make_writable()
        if self._pending_large and self._index(DIRECT_INDEX_MAX):
            self._commit_directly(pending, meta)
        else:
            self._commit_journal(pending, meta)
        self._clear_pending()
        self._wal_dirty = True

    def _commit_journal(self, pending: list[tuple[int, list]], meta: dict[str, bytes]) -> None:
        try:
            parts = journal_parts(pending, JOURNAL_ROW_MAX) if pending else []
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, "committing") from e
        turns = range(self._turn + 1, self._turn + 1 + len(parts))
        self._in_transaction(lambda: self._write_journal(turns, parts, meta), "committing")
        self._committed(turns, parts, pending)

    def _write_journal(self, turns: range, parts: list[tuple[list, bytes]],
                       meta: dict[str, bytes]) -> None:
        self._conn.executemany("INSERT INTO journal (turn, changes) VALUES (?, ?)",
                               [(turn, blob) for turn, (_, blob) in zip(turns, parts)])
        self._conn.executemany(SET_META, meta.items())

    def _commit_directly(self, pending: list[tuple[int, list]], meta: dict[str, bytes]) -> None:
        """The turn's changes as task rows, merged with what is unfolded of the same
        tasks (all indexed), and a SUPERSEDE journal row naming them, so that a replay
        of older journal rows after a crash drops their older changes."""
        merged: dict[str, list] = {}
        unfolded = self._unfolded
        for op, items in pending:
            for item in items:
                task_id = item if op == DELETE else item[0]
                if task_id not in merged and task_id in unfolded:
                    merged[task_id] = list(unfolded[task_id])
        turn = self._turn + 1
        merge(merged, turn, pending)
        try:
            marker = pack([(SUPERSEDE, list(merged))])
        except (TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, "committing") from e
        oldest_left = turn + 1  # with nothing else unfolded, every journal row goes
        for task_id, entry in unfolded.items():
            if task_id not in merged:
                oldest_left = entry[0]
                break

        def write() -> None:
            self._write_rows(list(merged.items()))
            self._conn.execute("INSERT INTO journal (turn, changes) VALUES (?, ?)",
                               (turn, marker))
            self._conn.execute("DELETE FROM journal WHERE turn < ?", (oldest_left,))
            self._conn.executemany(SET_META, meta.items())
        self._in_transaction(write, "committing")
        for task_id in merged:
            unfolded.pop(task_id, None)
        self._journal_row(turn, len(marker))
        self._drop_journal_before(oldest_left)

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

    # --- upkeep: the fold --------------------------------------------------------------

    def compact(self, limit: int = FOLD_CHUNK) -> bool:
        """One bounded slice of upkeep: index up to INDEX_PER_FOLD * limit committed
        changes and fold up to `limit` tasks into the task table, or, when all is
        folded, have the checkpointer copy the WAL into the file (in its own thread).
        True while work remains."""
        self._check_open("compacting")
        if self._damaged:
            return False
        self._make_writable()
        self._index(INDEX_PER_FOLD * max(limit, 1))
        if self._unfolded:
            self._fold(limit)
            return True
        if self._unindexed:
            return True
        if self._wal_dirty and self._checkpointer is not None:
            self._checkpointer.poke()
            self._wal_dirty = False
        return False

    def _fold(self, limit: int) -> None:
        """Write the oldest `limit` unfolded tasks into the task table, and delete the
        journal rows no unfolded change is left in, in one transaction."""
        if not self._unfolded or limit <= 0:
            return
        taken = list(islice(self._unfolded.items(), limit))
        oldest_left = self._oldest_left(len(taken))

        def write() -> None:
            self._write_rows(taken)
            self._conn.execute("DELETE FROM journal WHERE turn < ?", (oldest_left,))
        self._in_transaction(write, "folding the journal")
        self._folded(taken, oldest_left)
        self._wal_dirty = True

    def _write_rows(self, taken: list[tuple[str, list]]) -> None:
        """Unfolded entries as task rows: a delete, an update, or an upsert."""
        upserts, updates, deletes = [], [], []
        for task_id, (_, save, update) in taken:
            if save is GONE:
                deletes.append((task_id,))
            elif save is None:
                updates.append(update_args(update))
            else:
                upserts.append(insert_args(save, update))
        conn = self._conn
        conn.executemany(_DELETE, deletes)
        conn.executemany(_UPSERT, upserts)
        conn.executemany(_UPDATE, updates)

    def _recover(self) -> None:
        """Index what a crash left in the journal (all of it was committed); it is
        folded as upkeep, like any other unfolded change."""
        try:
            rows = self._conn.execute(
                "SELECT turn, changes FROM journal ORDER BY turn").fetchall()
        except sqlite3.Error as e:
            raise self._read_error(e, "reading the journal") from e
        try:
            self._replay(rows)
        except (ValueError, TypeError, IndexError) as e:
            raise self._damage(f"a journal row cannot be read: {e}") from e
        if self._unfolded:
            log.info("%d tasks' changes left in the journal of %s; they are folded as "
                     "upkeep", len(self._unfolded), self.path)

    # --- reads -----------------------------------------------------------------------

    def load(self) -> Iterator[TaskRecord]:
        """Every committed record, by seq: the task table with the unfolded changes
        applied."""
        self._check_open("loading the tasks")
        self._index()
        try:
            records = read_all(overlaid(self._conn.execute(_SELECT), self._unfolded))
        except sqlite3.Error as e:
            raise self._read_error(e, "loading the tasks") from e
        except (ValueError, KeyError, TypeError) as e:
            raise self._damage(f"a task row cannot be read: {e}") from e
        records.sort(key=by_seq)  # stable: equal seqs keep insertion order
        return iter(records)

    def get(self, task_id: str) -> TaskRecord | None:
        """One committed task by id (an old result being fetched), or None."""
        self._check_open("reading a task")
        self._index()
        entry = self._unfolded.get(task_id)
        try:
            row = None
            if entry is None or entry[1] is None:
                row = self._conn.execute(_SELECT_ONE, (task_id,)).fetchone()
            if entry is not None:
                row = overlay(row, entry)
            return None if row is None else read_all([row])[0]
        except sqlite3.Error as e:
            raise self._read_error(e, "reading a task") from e
        except (ValueError, KeyError, TypeError) as e:
            raise self._damage(f"the row of task {task_id!r} cannot be read: {e}") from e

    def get_meta(self, key: str) -> Any:
        self._check_open(f"reading meta {key!r}")
        try:
            if key in self._pending_meta:
                return unpack(self._pending_meta[key])
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else unpack(row[0])
        except sqlite3.Error as e:
            raise self._read_error(e, f"reading meta {key!r}") from e
        except ValueError as e:
            raise self._damage(f"meta {key!r} cannot be read: {e}") from e

    def close(self) -> None:
        """Discard what is not committed, fold the journal and close; closing twice is
        harmless. A damaged store is closed without writing anything."""
        if self._closed:
            return
        if self._clear_pending():
            log.warning("closing the store %s with uncommitted changes: discarded", self.path)
        try:
            if not self._damaged and (self._unfolded or self._unindexed):
                self._make_writable()
                self._index()
                self._fold(len(self._unfolded))
        except StoreError:  # the journal keeps them: the next open folds them
            log.exception("folding the journal of %s on close failed", self.path)
        self._closed = True
        try:
            if self._checkpointer is not None:
                self._checkpointer.close()
            self._conn.close()  # the last connection checkpoints and removes the -wal
        except sqlite3.Error as e:
            raise StoreError(f"closing the store {self.path} failed: {e}") from e

    # --- the journal -----------------------------------------------------------------

    def _buffered(self, op: int, rows: list) -> None:
        """Note whether the turn carries a payload or result large enough to skip the
        journal (DIRECT_BYTES)."""
        if op != DELETE and not self._pending_large:  # in C: this runs for every task
            sizes = map(len, filter(None, map(LARGE_FIELD[op], rows)))
            self._pending_large = max(sizes, default=0) >= self.direct_bytes

    def _clear_pending(self) -> bool:
        self._pending_large = False
        return super()._clear_pending()

    def _make_writable(self) -> None:
        """Swap the read-only connection an existing store was checked with for one
        that writes (the first write after the open)."""
        if self._writable:
            return
        if self._damaged:
            raise StoreDamaged(f"the store {self.path} is damaged: nothing more is written "
                               "to it")
        try:
            conn = sqlite_file.open_writable(self.path, self._timeout, SYNC_LEVELS[self.sync])
        except ConfigError as e:
            raise StoreError(str(e)) from e
        self._conn.close()
        self._conn, self._writable = conn, True
        self._checkpointer = sqlite_file.Checkpointer(self.path, self._timeout)

    # --- errors ----------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"{what}: the store {self.path} is closed")

    def _damage(self, detail: Any) -> StoreDamaged:
        """The file is damaged: say so with the way out, and write nothing more to it."""
        self._damaged = True
        return sqlite_file.damaged(self.path, detail)

    def _read_error(self, e: sqlite3.Error, what: str) -> StoreError:
        """A read failed: nothing pending is touched (it is not the reader's to drop)."""
        if sqlite_file.is_damage(e):
            return self._damage(f"{what}: {e}")
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
        note = "; the uncommitted changes were discarded" if self._clear_pending() else ""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            note += "; rolling back failed too"
        if sqlite_file.is_damage(e):
            return self._damage(f"{what}: {e}{note}")
        return StoreError(f"{what} failed on the store {self.path}: {e}{note}")


