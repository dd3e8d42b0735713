"""The SQLite store's deferred work in bounded slices (issue 10, finding 7): a commit
never folds, compact() does a bounded slice, and a turn of large payloads written
straight into the task table folds only the tasks it touches, marking them so that a
replay of the journal after a crash cannot fold their older changes over them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.store.stores import drop
from zq.core.messages import State
from zq.core.tasks import TaskRecord
from zq.store import sqlite as sqlite_store
from zq.store.sqlite import SqliteStore


def task(id: str, seq: int = 0, **kw: Any) -> TaskRecord:
    return TaskRecord(id, "app:f", b"p", seq=seq, **kw)


def counts(path: Path) -> tuple[int, int]:
    """(journal rows, task rows) as another connection sees the file."""
    db = sqlite3.connect(path)
    try:
        return (db.execute("SELECT count(*) FROM journal").fetchone()[0],
                db.execute("SELECT count(*) FROM task").fetchone()[0])
    finally:
        db.close()


def test_a_commit_never_folds_however_much_waits(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    store = SqliteStore(path, fold_after=5)
    for i in range(30):
        store.save([task(f"t{i}", i)])
        store.commit()
    assert counts(path) == (30, 0)
    assert store.behind()
    store.close()


def test_compact_folds_at_most_its_limit_and_indexes_a_bounded_number_of_changes(
        tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    store = SqliteStore(path)
    for i in range(10):  # one change per turn
        store.save([task(f"t{i}", i)])
        store.commit()
    assert store.compact(2) is True
    assert counts(path)[1] == 2
    # 2 * INDEX_PER_FOLD changes indexed so far: the rest still waits, unindexed.
    assert store._unindexed_rows == 10 - 2 * sqlite_store.INDEX_PER_FOLD
    for _ in range(10):
        if not store.compact(3):
            break
    assert counts(path) == (0, 10)
    store.close()


def test_a_direct_turn_over_unfolded_changes_survives_a_crash(tmp_path: Path) -> None:
    """t1 is saved (journal), then updated with a large result in a direct turn; t0,
    older and untouched, keeps the journal from being emptied. After a crash the
    replay must not fold t1's saved state over its direct update."""
    path = tmp_path / "zq.db"
    store = SqliteStore(path, direct_bytes=100)
    store.save([task("t0", 0)])
    store.commit()
    store.save([task("t1", 1), task("t2", 2)])
    store.commit()
    big = bytes(range(256)) * 2
    store.update([task("t1", 1, state=State.SUCCEEDED, result=big, attempt=1)])
    store.delete(["t2"])
    store.commit()  # direct: a result of 512 bytes
    journal, table = counts(path)
    assert journal == 3 and table == 1  # t0's and t1's turns kept, and the marker
    assert store.get("t1").result == big and store.get("t2") is None
    drop(store)
    again = SqliteStore(path, direct_bytes=100)
    loaded = {r.id: r for r in again.load()}
    assert sorted(loaded) == ["t0", "t1"]
    assert (loaded["t1"].state, loaded["t1"].result, loaded["t1"].attempt) == (
        State.SUCCEEDED, big, 1)
    for _ in range(10):  # the fold after the crash must not bring t1's save back either
        if not again.compact(1):
            break
    assert counts(path) == (0, 2)
    assert again.get("t1").result == big
    again.close()


def test_a_large_turn_waits_in_the_journal_while_much_is_unindexed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Merging a direct turn needs every unfolded change indexed; past DIRECT_INDEX_MAX
    waiting, indexing them would stall the turn, so it is journaled instead."""
    monkeypatch.setattr(sqlite_store, "DIRECT_INDEX_MAX", 1)
    path = tmp_path / "zq.db"
    store = SqliteStore(path, direct_bytes=100)
    for i in range(3):
        store.save([task(f"t{i}", i)])
        store.commit()
    store.update([task("t0", 0, state=State.SUCCEEDED, result=bytes(500))])
    store.commit()
    assert counts(path) == (4, 0)  # journaled, nothing folded
    drop(store)
    again = SqliteStore(path)
    loaded = {r.id: r for r in again.load()}
    assert sorted(loaded) == ["t0", "t1", "t2"] and loaded["t0"].result == bytes(500)
    again.close()


def test_the_connection_that_commits_never_checkpoints(tmp_path: Path) -> None:
    """A checkpoint of a 64 MiB WAL inside a commit stalled the master 0.3-0.6 s: the
    writing connection leaves them all to the checkpointer's own thread."""
    store = SqliteStore(tmp_path / "zq.db")
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert store._checkpointer is not None and store._checkpointer._thread.is_alive()
    store.close()
    assert not store._checkpointer._thread.is_alive()
