"""The durable store: every TaskRecord in one SQLite file (WAL), group committed.

Sync level. The promise is "a submission is acknowledged only after it is committed,
and a commit survives kill -9 of the master". With WAL and synchronous=NORMAL a commit
is a write() into the -wal file (fsync waits for the next checkpoint): it survives the
process dying at any instant, since the OS holds the data, but an OS crash or power
loss may lose the last commits (never corrupt the file). synchronous=FULL fsyncs the
WAL on every commit and survives power loss too. The default is "normal": it keeps
exactly the promise made, and each fsync would stall the master's one-thread loop
(dispatch, heartbeats) for as long as the disk takes. Measured by bench/store.py on a
2-core VM whose fsync is cheap (~0.25 ms): commits of 1 record 13.8k/s normal vs
3.6k/s full, batches of 1000 63k vs 55k records/s; SSDs and cloud disks take 1-10 ms
per fsync. Choose sync="full" where a power loss must lose nothing.

close() commits nothing: only commit() makes changes durable, so a clean close and a
crash agree. close() rolls back what is pending (logging a warning), and SQLite folds
the WAL back into the file, which leaves one consistent file behind.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgpack

from zq.core.messages import State
from zq.core.tasks import TaskRecord
from zq.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA_KEY = "zq.schema"  # meta keys starting with "zq." belong to the store itself
SYNC_LEVELS = {"normal": "NORMAL", "full": "FULL"}

# DDL next to the code that reads it, as Huey's SqliteStorage keeps it. Rows are read
# in rowid order (first-insert order, which upserts keep) and sorted by seq in Python:
# that is linear for data already nearly in order, and spares every write an index.
# Columns a `zq tasks` query may filter on are real columns; the fields only the
# scheduler reads are one msgpack array in `extra` (NULL when all are the defaults).
DDL = (
    """CREATE TABLE task (
        id      TEXT NOT NULL UNIQUE,
        seq     INTEGER NOT NULL,
        state   INTEGER NOT NULL,  -- zq.core.messages.State value
        queue   TEXT NOT NULL,
        name    TEXT NOT NULL,
        created REAL NOT NULL,     -- wall clock
        updated REAL NOT NULL,     -- wall clock
        key     TEXT,
        payload BLOB,
        result  BLOB,
        extra   BLOB               -- msgpack array in EXTRA_FIELDS order
    )""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
)

EXTRA_FIELDS = ("priority", "attempt", "retries", "timeout", "eta", "after",
                "retry_backoff", "retry_backoff_max", "retry_on", "result_ttl", "worker",
                "progress")
# The values a NULL `extra` stands for. Frozen here, not read from TaskRecord, so that a
# later change of TaskRecord's defaults cannot change what an old row means.
EXTRA_DEFAULTS = (0, 0, 0, None, None, None, 1.0, 600.0, None, None, None, None)

# Binding None costs sqlite3 an adapter lookup (~1 us, as much as the rest of a
# column), so the nullable TEXT/BLOB columns take 0 for NULL: no text or blob equals 0.
_UPSERT = (
    "INSERT INTO task (id, seq, state, queue, name, created, updated, key, payload, result,"
    " extra) VALUES (?,?,?,?,?,?,?,NULLIF(?,0),?,NULLIF(?,0),NULLIF(?,0))"
    " ON CONFLICT (id) DO UPDATE SET"
    " seq=excluded.seq, state=excluded.state, queue=excluded.queue, name=excluded.name,"
    " created=excluded.created, updated=excluded.updated, key=excluded.key,"
    " payload=excluded.payload, result=excluded.result, extra=excluded.extra")
_SELECT = ("SELECT id, seq, state, queue, name, created, updated, key, payload, result,"
           " extra FROM task ORDER BY rowid")
_UPDATE = ("UPDATE task SET state=?, updated=?, result=NULLIF(?,0), extra=NULLIF(?,0)"
           " WHERE id=?")
_SELECT_ONE = ("SELECT id, seq, state, queue, name, created, updated, key, payload, result,"
               " extra FROM task WHERE id = ?")
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"

_extra = attrgetter(*EXTRA_FIELDS)
_seq = attrgetter("seq")
_pack = msgpack.Packer(use_bin_type=True).pack
_STATES = {s.value: s for s in State}


def _unpack(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False)


def _row(r: TaskRecord) -> tuple:
    # 0 stands for NULL (see _UPSERT); int() for the same reason: sqlite3 binds exact
    # ints, floats and strs directly but looks up an adapter for None and IntEnum.
    extra = _extra(r)
    return (r.id, r.seq, int(r.state), r.queue, r.name, r.created, r.updated,
            0 if r.key is None else r.key, r.payload, 0 if r.result is None else r.result,
            0 if extra == EXTRA_DEFAULTS else _pack(extra))


def _update_row(r: TaskRecord) -> tuple:
    extra = _extra(r)
    return (int(r.state), r.updated, 0 if r.result is None else r.result,
            0 if extra == EXTRA_DEFAULTS else _pack(extra), r.id)


class SqliteStore:
    """The Store protocol over one SQLite file. Not thread-safe: one thread at a time
    (it may be opened in one thread and used in another)."""

    durable = True

    def __init__(self, path: str | os.PathLike[str], *, sync: str = "normal",
                 timeout: float = 5.0) -> None:
        if sync not in SYNC_LEVELS:
            raise ConfigError(f"store sync must be one of {sorted(SYNC_LEVELS)}, not {sync!r}")
        self.path = Path(path).expanduser()
        self.sync = sync
        self._closed = False
        self._conn = _connect(self.path, timeout)
        try:
            _configure(self._conn, self.path, SYNC_LEVELS[sync])
            _check_schema(self._conn, self.path)
        except BaseException:
            self._conn.close()
            raise

    def load(self) -> Iterator[TaskRecord]:
        """Every record kept (pending writes of this connection included), by seq."""
        try:
            records = _read_all(self._conn.execute(_SELECT))
        except (sqlite3.Error, ValueError, KeyError) as e:
            raise self._fail(e, "loading the tasks") from e
        records.sort(key=_seq)  # stable: equal seqs keep insertion order
        return iter(records)

    def get(self, task_id: str) -> TaskRecord | None:
        """One task by id (an old result being fetched), or None."""
        try:
            rows = _read_all(self._conn.execute(_SELECT_ONE, (task_id,)))
        except (sqlite3.Error, ValueError, KeyError) as e:
            raise self._fail(e, "reading a task") from e
        return rows[0] if rows else None

    def save(self, records: Iterable[TaskRecord]) -> None:
        try:
            self._begin()
            self._conn.executemany(_UPSERT, map(_row, records))
        except (sqlite3.Error, TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, "saving tasks") from e

    def update(self, records: Iterable[TaskRecord]) -> None:
        """Tasks saved before: write only what changes after the insert (state, times,
        result, the packed rest), never the payload again."""
        try:
            self._begin()
            self._conn.executemany(_UPDATE, map(_update_row, records))
        except (sqlite3.Error, TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, "updating tasks") from e

    def delete(self, ids: Iterable[str]) -> None:
        try:
            self._begin()
            self._conn.executemany("DELETE FROM task WHERE id = ?", [(i,) for i in ids])
        except (sqlite3.Error, ValueError) as e:
            raise self._fail(e, "deleting tasks") from e

    def get_meta(self, key: str) -> Any:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else _unpack(row[0])
        except (sqlite3.Error, ValueError) as e:
            raise self._fail(e, f"reading meta {key!r}") from e

    def set_meta(self, key: str, value: Any) -> None:
        if key.startswith("zq."):
            raise StoreError(f"meta key {key!r} is reserved: keys starting with 'zq.' "
                             "belong to the store")
        try:
            self._begin()
            self._conn.execute(_SET_META, (key, _pack(value)))
        except (sqlite3.Error, TypeError, ValueError, OverflowError) as e:
            raise self._fail(e, f"setting meta {key!r}") from e

    def commit(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._fail(e, "committing") from e

    def close(self) -> None:
        """Discard what is not committed and close; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._conn.in_transaction:
                log.warning("closing the store %s with uncommitted changes: discarded",
                            self.path)
                self._conn.execute("ROLLBACK")
            self._conn.close()  # the last connection checkpoints and removes the -wal
        except sqlite3.Error as e:
            raise StoreError(f"closing the store {self.path} failed: {e}") from e

    def _begin(self) -> None:
        # Explicit transactions (isolation_level=None): the group commit is ours.
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")

    def _fail(self, e: Exception, what: str) -> StoreError:
        """The error to raise; the pending transaction is rolled back first, so that a
        failed save never half-survives into the next commit."""
        if self._closed:
            return StoreError(f"{what}: the store {self.path} is closed")
        note = ""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
                note = "; the uncommitted changes were discarded"
        except sqlite3.Error:
            note = "; rolling back failed too"
        return StoreError(f"{what} failed on the store {self.path}: {e}{note}")


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
        # A burst can grow the WAL far past the checkpoint size; cap what stays on disk.
        conn.execute("PRAGMA journal_size_limit=67108864")
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
    """The file's schema version, creating the schema in an empty file."""
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        for statement in DDL:
            conn.execute(statement)
        conn.execute(_SET_META, (SCHEMA_KEY, _pack(SCHEMA_VERSION)))
        return SCHEMA_VERSION
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()
    if row is None:
        raise ConfigError(f"{path} is a SQLite database but not a zq store: give the "
                          "path of a new file or of an existing zq store")
    return int(_unpack(row[0]))


def _read_all(rows: sqlite3.Cursor) -> list[TaskRecord]:
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
        for id_, seq, state, queue, name, created, updated, key, payload, result, extra in rows:
            r = new(TaskRecord)
            (r.priority, r.attempt, r.retries, r.timeout, r.eta, r.after, r.retry_backoff,
             r.retry_backoff_max, r.retry_on, r.result_ttl, worker, progress) = (
                EXTRA_DEFAULTS if extra is None else unpack(extra))
            r.id = id_
            r.seq = seq
            r.state = states[state]
            r.queue = intern(queue, queue)
            r.name = intern(name, name)
            if created == created_before:
                created = created_before
            if updated == created:
                updated = created
            elif updated == updated_before:
                updated = updated_before
            r.created = created_before = created
            r.updated = updated_before = updated
            r.key = key
            r.payload = payload
            r.result = result
            r.worker = None if worker is None else intern(worker, worker)
            r.progress = None if progress is None else tuple(progress)
            append(r)
    finally:
        if paused:
            gc.enable()
    return out
