"""The SQLite store's file: the checks made before anything is written to it (a foreign,
damaged or newer file is refused and left byte for byte as it was), the schema, and the
settings of the connection that writes.

An existing file is checked through a read-only connection: the header, the schema
version and SQLite's `quick_check` (every page read once: ~0.3 s for a 240 MB store).
A read-only connection writes nothing, not even the WAL checkpoint that closing the last
connection to a database may do, so a file refused here is exactly as it was found.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import msgpack

from zq.errors import ConfigError, StoreDamaged, StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the journal; one msgpack `record` for the fields not in columns
SCHEMA_KEY = "zq.schema"  # meta keys starting with "zq." belong to the store itself
WAL_PAGES = 16_384  # the WAL file is cut back to this many pages (4 KiB) after a checkpoint
CHECKPOINT_BYTES = 16 * 2**20  # WAL bytes past which the checkpointer copies them back
CHECKPOINT_EVERY = 0.2  # seconds between the checkpointer's looks at the WAL's size
MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
# SQLite's result codes for a file that is damaged or not a database.
DAMAGE_CODES = {getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)}

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
SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"


def open_file(path: Path, timeout: float, sync: str) -> tuple[sqlite3.Connection, bool]:
    """(connection, writable): a new store (no file, an empty one, or a SQLite database
    without tables) gets its schema and a writable connection; an existing zq store is
    checked and given a read-only one, to be swapped for open_writable() once the
    store has read what it needs (nothing is written before)."""
    if path.is_dir():
        raise ConfigError(f"the store {path} is a directory: give the path of a file in it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the directory of the store {path}: {e}") from e
    if _holds_data(path):
        sidecars = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
        had = [p.exists() for p in sidecars]
        conn = _connect(path, timeout, read_only=True)
        try:
            if _check_existing(conn, path):
                return conn, False
        except BaseException:
            conn.close()
            _remove_new_sidecars(sidecars, had)
            raise
        conn.close()  # a SQLite database without tables: as good as new
    return open_writable(path, timeout, sync, create=True), True


def open_writable(path: Path, timeout: float, sync: str,
                  create: bool = False) -> sqlite3.Connection:
    """The connection that writes: WAL, the sync level, the checkpoint settings; with
    create, the schema is made if the file has none."""
    conn = _connect(path, timeout)
    try:
        _configure(conn, path, sync)
        if create:
            _create_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def is_damage(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(e, sqlite3.DatabaseError) and code in DAMAGE_CODES


def damaged(path: Path, detail: Any) -> StoreDamaged:
    """The error for a damaged file: what is wrong, and the way out."""
    return StoreDamaged(
        f"the store {path} is damaged ({detail}). zq stopped without changing it. Restore "
        f"it from a backup, or move it aside to start with an empty store (mv {path} "
        f"{path}.damaged, and its -wal and -shm files if there are any); `sqlite3 {path} "
        "'.recover'` may save what is still readable")


def _remove_new_sidecars(sidecars: list[Path], had: list[bool]) -> None:
    """A refused file leaves no -wal and -shm that opening it made (empty ones: the
    read-only connection wrote nothing into them)."""
    wal, _ = sidecars
    try:
        if had[0] or wal.stat().st_size:
            return
    except OSError:
        return
    for p, existed in zip(sidecars, had):
        if not existed:
            p.unlink(missing_ok=True)


def _holds_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False
    except OSError as e:
        raise ConfigError(f"cannot read the store {path}: {e}") from e


def _connect(path: Path, timeout: float, read_only: bool = False) -> sqlite3.Connection:
    target, uri = str(path), False
    if read_only:
        target, uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", True
    try:
        return sqlite3.connect(target, timeout=timeout, isolation_level=None,
                               check_same_thread=False, uri=uri)
    except sqlite3.Error as e:
        raise ConfigError(f"cannot open the store {path}: {e}") from e


def _check_existing(conn: sqlite3.Connection, path: Path) -> bool:
    """Refuse a file zq must not use, before anything is written to it. False for a
    SQLite database without tables (a new store may be made in it)."""
    try:
        with open(path, "rb") as f:
            header = f.read(len(MAGIC))
    except OSError as e:
        raise ConfigError(f"cannot read the store {path}: {e}") from e
    if header != MAGIC:
        raise ConfigError(f"the store {path} is not a SQLite database (it does not start "
                          "like one; if it was a zq store, it is damaged: restore it from a "
                          "backup): move the file away or give another store path")
    try:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return False
        _check_version(conn, path, tables)
        problems = [p for (p,) in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as e:
        if is_damage(e):
            raise damaged(path, e) from e
        raise StoreError(f"cannot read the store {path}: {e}") from e
    if problems != ["ok"]:
        raise damaged(path, "; ".join(line for p in problems for line in p.splitlines()
                                      if not line.startswith("***")))
    return True


def _check_version(conn: sqlite3.Connection, path: Path, tables: set[str]) -> None:
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()
    if row is None:
        raise ConfigError(f"{path} is a SQLite database but not a zq store: give the "
                          "path of a new file or of an existing zq store")
    try:
        version = int(msgpack.unpackb(row[0]))
    except (ValueError, TypeError) as e:
        raise damaged(path, f"its schema version cannot be read: {e}") from e
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the store {path} was written by a newer zq (schema {version}; this zq reads "
            f"up to {SCHEMA_VERSION}): upgrade zq, or give another store path")
    if version < SCHEMA_VERSION:
        raise ConfigError(
            f"the store {path} was written by an older zq (schema {version}; this zq reads "
            f"schema {SCHEMA_VERSION}) and cannot be upgraded in place: finish its tasks "
            "with the zq that wrote it, or give another store path")


def _configure(conn: sqlite3.Connection, path: Path, sync: str) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute(f"PRAGMA synchronous={sync}")
        # Copying the WAL into the file (a checkpoint, two fsyncs) is most of what a
        # commit costs when SQLite does it every 1,000 pages, and a commit that does a
        # 64 MiB one stalls the master 0.3-0.6 s: this connection never checkpoints; the
        # Checkpointer does, on a connection and thread of its own. Cap what stays on disk.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
    except sqlite3.DatabaseError as e:
        if is_damage(e):
            raise ConfigError(
                f"the store {path} is not a SQLite database zq can use ({e}): move the "
                "file away or give another store path") from e
        raise StoreError(f"cannot open the store {path}: {e}") from e
    if mode != "wal":
        raise ConfigError(
            f"the store {path} cannot use SQLite's WAL journal (got {mode!r}); WAL needs a "
            "local filesystem with shared memory: put the store on a local disk")


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    """The schema, in a file without tables; two masters starting at once make it once
    (and the second checks what the first made)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {n for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if tables:
                _check_version(conn, path, tables)
            else:
                for statement in (TASK_DDL, META_DDL, JOURNAL_DDL):
                    conn.execute(statement)
                conn.execute(SET_META, (SCHEMA_KEY, msgpack.packb(SCHEMA_VERSION)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as e:
        raise ConfigError(f"cannot read the schema of the store {path}: {e}") from e


class Checkpointer:
    """Copies the WAL back into the database file (a PASSIVE checkpoint) from a thread
    and a connection of its own, whenever the WAL passes CHECKPOINT_BYTES or poke() asks.
    SQLite releases the GIL while it checkpoints and a PASSIVE checkpoint never blocks
    the writer, so the master's loop never pays for one (issue 10). `done` counts the
    checkpoints completed, for the store to tell when its writes are in the file."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self.done = 0
        self._wake = threading.Event()
        self._stop = False
        self._conn = _connect(path, timeout)
        self._thread = threading.Thread(target=self._run, name=f"zq-checkpoint {path.name}",
                                        daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be doing) and close."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while not self._stop:
            poked = self._wake.wait(CHECKPOINT_EVERY)
            self._wake.clear()
            if self._stop:
                return
            if poked or self._wal_size() > CHECKPOINT_BYTES:
                self._checkpoint()

    def _wal_size(self) -> int:
        try:
            return os.stat(self.wal).st_size
        except OSError:
            return 0

    def _checkpoint(self) -> None:
        try:
            busy, frames, copied = self._conn.execute(
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:  # the WAL stays as it is: nothing is lost, later
            log.warning("checkpointing the store %s failed: %s", self.path, e)
            return
        if not busy and frames == copied:
            self.done += 1
