"""Every store the contract suite runs against, and the child process of its crash test.
A PostgreSQL kind needs the pg_server fixture (tests/pg.py); the child finds the server
through the ZQ_TEST_PG_URL it sets.

    python -m tests.store.stores KIND PATH HOW   # save and commit, then die without closing
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

from zq.core.tasks import TaskRecord
from zq.store import Store
from zq.store.memory import MemoryStore
from zq.store.sqlite import SqliteStore


def _postgres(path: Path, **options: Any) -> Store:
    """The PostgreSQL store, in a schema of the session's server named after path."""
    from tests.pg import database_for
    from zq.store.postgres import PostgresStore
    return PostgresStore(database_for(path), **options)


# kind -> open the store kept at `path` (a volatile store ignores it)
STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda path: MemoryStore(),
    "sqlite": lambda path: SqliteStore(path),
    "sqlite-full": lambda path: SqliteStore(path, sync="full"),
    # Folds its journal after every commit with more than 2 unfolded tasks.
    "sqlite-fold-2": lambda path: SqliteStore(path, fold_after=2),
    # Turns with a payload or result of 150 bytes or more go straight into the task
    # table (as turns with large payloads do), the others into the journal: both mix.
    "sqlite-direct": lambda path: SqliteStore(path, direct_bytes=150),
    "postgres": _postgres,
    # Folds its journal after every commit with more than 2 unfolded tasks.
    "postgres-fold-2": lambda path: _postgres(path, fold_after=2),
}
# The stores that need the session's PostgreSQL server (the pg_server fixture).
NEEDS_PG = {"postgres", "postgres-fold-2"}


def drop(store: Store) -> None:
    """What kill -9 leaves of a store, in this process: its connection goes, and
    nothing of what the store would do on close (fold the journal) is done."""
    if isinstance(store, SqliteStore):
        store._conn.close()
        if store._checkpointer is not None:
            store._checkpointer.close()
        store._closed = True
    elif type(store).__name__ == "PostgresStore":
        conn = store._conn
        pid = None if conn is None or conn.closed else conn.info.backend_pid
        store._drop_connection()  # the server rolls back what was not committed
        store._closed = True
        if pid is not None:
            _wait_session_gone(store.url, pid)


def _wait_session_gone(url: str, pid: int, timeout: float = 10.0) -> None:
    """Until the server has ended the dropped session (asynchronously, as after kill -9),
    its writer lock is held: a store opened next would find its commits BUSY."""
    import time

    import psycopg
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                           (pid,)).fetchone() is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server kept session {pid} for {timeout} s")
            time.sleep(0.01)  # polls the condition itself, bounded by the deadline


CRASH_BATCHES = 5
CRASH_BATCH = 200


def committed_ids() -> set[str]:
    """The ids the crash child commits before it dies."""
    return {f"t{b}-{i}" for b in range(CRASH_BATCHES) for i in range(CRASH_BATCH)
            if (b, i) != (0, 0)}


def crash(kind: str, path: Path, how: str) -> None:
    store = STORES[kind](path)
    for b in range(CRASH_BATCHES):
        store.save(TaskRecord(f"t{b}-{i}", "app:f", bytes([i % 256]) * 300,
                              seq=b * CRASH_BATCH + i) for i in range(CRASH_BATCH))
        if b == 1:
            store.delete(["t0-0"])
        store.commit()
    # Neither of these is committed: the crash must lose both.
    store.save([TaskRecord("uncommitted", "app:f", b"x", seq=10**9)])
    store.delete(["t1-0"])
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


if __name__ == "__main__":
    crash(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
