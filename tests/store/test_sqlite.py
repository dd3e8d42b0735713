"""What only the SQLite store does: opening files, refusing foreign ones, sync levels,
errors translated at the boundary, and what a crash or a close leaves on disk."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.integration.harness import wait_until
from tests.store.stores import drop
from zq.core.messages import State
from zq.core.tasks import FIELDS, TaskRecord
from zq.errors import ConfigError, StoreError, StoreUnavailable, ZqError
from zq.store import open_store
from zq.store import sqlite as sqlite_store
from zq.store.journal import SAVE_FIELDS, UPDATE_FIELDS, save_row, update_row
from zq.store.memory import MemoryStore
from zq.store.sqlite import META_DDL, SCHEMA_KEY, SCHEMA_VERSION, SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def task(id: str, seq: int = 0, **kw: Any) -> TaskRecord:
    return TaskRecord(id, "app:f", b"p", seq=seq, **kw)


def pragma(store: SqliteStore, name: str) -> object:
    with sqlite3.connect(store.path) as db:  # a second connection sees the file's truth
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_open_store_picks_the_store_by_spec(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    store = open_store(str(tmp_path / "zq.db"))
    assert isinstance(store, SqliteStore) and store.sync == "normal"
    store.close()
    store = open_store(str(tmp_path / "zq.db"), "full")
    assert isinstance(store, SqliteStore)
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_missing_directories_are_created(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a" / "b" / "zq.db")
    store.close()
    assert (tmp_path / "a" / "b" / "zq.db").is_file()


def test_wal_and_the_sync_level_are_set(tmp_path: Path) -> None:
    normal = SqliteStore(tmp_path / "n.db")
    full = SqliteStore(tmp_path / "f.db", sync="full")
    assert pragma(normal, "journal_mode") == "wal"
    assert normal._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert full._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    normal.close()
    full.close()


def test_an_unknown_sync_level_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="normal"):
        SqliteStore(tmp_path / "zq.db", sync="off")


def test_a_file_that_is_not_sqlite_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    path.write_bytes(b"definitely not a database\n" * 200)
    with pytest.raises(ConfigError, match="not a SQLite database.*another store path"):
        SqliteStore(path)
    assert path.read_bytes().startswith(b"definitely")  # left untouched


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        SqliteStore(tmp_path)


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(ConfigError, match="not a zq store"):
        SqliteStore(path)
    with sqlite3.connect(path) as db:  # and not modified
        assert [n for (n,) in db.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?",
                   (msgpack.packb(SCHEMA_VERSION + 1), SCHEMA_KEY))
    with pytest.raises(ConfigError, match="newer zq.*upgrade zq"):
        SqliteStore(path)


def test_meta_keys_of_the_store_are_reserved(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    assert store.get_meta(SCHEMA_KEY) == SCHEMA_VERSION
    with pytest.raises(StoreError, match="reserved"):
        store.set_meta(SCHEMA_KEY, 99)
    store.close()


def test_a_failed_save_discards_the_pending_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    store.save([task("kept", 1)])
    store.commit()
    store.save([task("pending", 2)])
    with pytest.raises(StoreError, match="discarded") as caught:
        store.save([task("good", 3), TaskRecord("bad", "app:f", ["not", "bytes"])])
    assert "task 'bad' cannot be stored: payload is list" in str(caught.value)
    with pytest.raises(StoreError):
        store.set_meta("x", object())  # msgpack refuses it: translated too
    store.save([task("after", 4)])  # still usable
    store.commit()
    assert [r.id for r in store.load()] == ["kept", "after"]
    store.close()


def test_calls_after_close_raise_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    store.close()
    for call in (lambda: store.save([task("a")]), store.commit, store.load,
                 lambda: store.get_meta("x"), lambda: store.delete(["a"])):
        with pytest.raises(StoreError, match="closed"):
            call()
    assert issubclass(StoreError, ZqError)


def test_a_clean_close_leaves_one_consistent_file(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    store = SqliteStore(path)
    store.save(task(f"t{i}", i) for i in range(100))
    store.commit()
    store.save([task("uncommitted", 100)])
    store.close()
    assert not Path(f"{path}-wal").exists()  # folded back into the file
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM task").fetchone()[0] == 100


def test_a_crash_leaves_the_commits_in_the_wal_and_reopening_recovers_them(
        tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    child = subprocess.run([sys.executable, "-m", "tests.store.stores", "sqlite", str(path),
                            "sigkill"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert Path(f"{path}-wal").stat().st_size > 0  # never checkpointed: recovery reads it
    store = SqliteStore(path)
    assert len(list(store.load())) == 999
    store.close()


def test_load_orders_by_seq_not_by_insertion(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    store.save([task("late", 30), task("early", 10), task("tie-1", 20), task("tie-2", 20)])
    store.delete(["early"])
    store.save([task("early", 10)])  # a new rowid, still first by seq
    store.commit()
    assert [r.id for r in store.load()] == ["early", "tie-1", "tie-2", "late"]
    store.close()


def test_loaded_records_have_every_slot_set(tmp_path: Path) -> None:
    """load() builds records without TaskRecord.__init__: a new slot must be stored too."""
    store = SqliteStore(tmp_path / "zq.db")
    original = TaskRecord("t", "app:f", b"p", queue="q", priority=5, state=State.RETRYING,
                          attempt=2, retries=3, timeout=1.5, eta=9.0, key="k", after=["a"],
                          retry_backoff=2.0, retry_backoff_max=60.0, retry_on=["ValueError"],
                          result_ttl=10.0, created=1.0, updated=2.0, worker="w1",
                          result=b"r", progress=(1.0, 4.0), seq=7, started=3.0,
                          waited=0.25)
    store.save([original])
    store.commit()
    (loaded,) = store.load()
    for name in FIELDS:
        assert getattr(loaded, name) == getattr(original, name), name
    store.close()


def test_non_default_options_round_trip_with_their_types(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    store.save([task("defaults"), task("ints", retry_backoff=3, priority=-1)])
    store.commit()
    loaded = {r.id: r for r in store.load()}
    assert loaded["defaults"].retry_backoff == 1.0 and loaded["defaults"].key is None
    assert type(loaded["ints"].retry_backoff) is int and loaded["ints"].priority == -1
    store.close()


def test_a_crash_after_any_partial_fold_keeps_every_commit(tmp_path: Path) -> None:
    """Fold the oldest k tasks, then crash: the rest must still be in the journal."""
    for k in range(6):
        path = tmp_path / f"k{k}.db"
        store = SqliteStore(path)
        for i in range(4):  # one turn per task: t0 in turn 1 ... t3 in turn 4
            store.save([task(f"t{i}", i)])
            store.commit()
        done = task("t0", 0, state=State.SUCCEEDED, result=b"r")
        store.update([done])
        store.delete(["t2"])
        store.commit()
        store.compact(k)
        drop(store)
        again = SqliteStore(path)
        loaded = {r.id: r for r in again.load()}
        assert sorted(loaded) == ["t0", "t1", "t3"], k
        assert (loaded["t0"].state, loaded["t0"].result) == (State.SUCCEEDED, b"r"), k
        again.close()


def test_the_journal_is_folded_into_the_task_table(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    store = SqliteStore(path, fold_after=10)
    store.save(task(f"t{i}", i) for i in range(8))
    store.commit()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM task").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM journal").fetchone()[0] == 1
    assert store.get("t3") is not None  # unfolded changes are read back too
    assert store.compact(5) is True  # 3 left
    assert store.compact(5) is True  # all folded; the WAL is not checkpointed yet
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM task").fetchone()[0] == 8
        assert db.execute("SELECT count(*) FROM journal").fetchone()[0] == 0
    assert store.compact(5) is False

    def in_the_file_alone() -> int:
        """Tasks in a copy of the database file without its -wal."""
        alone = tmp_path / "copy.db"
        shutil.copyfile(path, alone)
        db = sqlite3.connect(alone)
        try:
            return db.execute("SELECT count(*) FROM task").fetchone()[0]
        except sqlite3.OperationalError:  # not even the schema is in the file yet
            return 0
        finally:
            db.close()
            alone.unlink()
    # Checkpointed (by the checkpointer's thread): the database file alone has every task.
    wait_until(lambda: in_the_file_alone() == 8, 10, "the checkpoint")
    assert not store.behind()
    store.save(task(f"u{i}", 10 + i) for i in range(12))  # over fold_after: behind
    store.commit()
    with sqlite3.connect(path) as db:  # a commit never folds (issue 10: it stalled)
        assert db.execute("SELECT count(*) FROM task").fetchone()[0] == 8
    db.close()
    assert store.behind()
    assert store.compact(1) is True  # a slice: indexes the turn, folds one task
    assert store.behind()
    assert store.compact(2) is True  # 9 unfolded left: under fold_after
    assert not store.behind()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM task").fetchone()[0] == 11
    db.close()
    store.close()


@pytest.mark.parametrize("bad, column", [
    (dict(id=7), "id is int 7"),
    (dict(seq=2**63), "seq is int"),
    (dict(payload="text"), "payload is str 'text'"),
])
def test_what_sqlite_would_refuse_is_refused_before_the_commit(
        tmp_path: Path, bad: dict, column: str) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    fields: dict[str, Any] = {"id": "bad", "name": "app:f", "payload": b"p", "seq": 1, **bad}
    with pytest.raises(StoreError, match=f"cannot be stored: {column}"):
        store.save([TaskRecord(**fields)])
    with pytest.raises(StoreError, match="id is int"):
        store.update([TaskRecord(7, "app:f", b"p")])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="a task id is a str, not int"):
        store.delete([7])  # type: ignore[list-item]
    store.commit()
    assert list(store.load()) == []
    store.close()


def test_a_store_of_an_older_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    with sqlite3.connect(path) as db:
        db.execute(META_DDL)
        db.execute("INSERT INTO meta VALUES (?, ?)", (SCHEMA_KEY, msgpack.packb(1)))
    db.close()
    with pytest.raises(ConfigError, match="older zq .schema 1.*finish its tasks"):
        SqliteStore(path)


def test_journal_rows_hold_the_fields_they_name() -> None:
    """save_row and update_row spell their fields out for speed: they must match the lists
    the fold reads them by, and every slot must be kept."""
    r = TaskRecord("t", "app:f", b"p", queue="q", priority=5, state=State.RETRYING,
                   attempt=2, retries=3, timeout=1.5, eta=9.0, key="k", after=["a"],
                   retry_backoff=2.5, retry_backoff_max=60.0, retry_on=["ValueError"],
                   result_ttl=10.0, created=1.0, updated=2.0, worker="w1", result=b"r",
                   progress=(1.0, 4.0), seq=7, started=3.0, waited=0.25, inputs=["i"])
    assert len({repr(getattr(r, name)) for name in FIELDS}) == len(
        FIELDS)  # every value distinct, so a swap shows
    assert save_row(r) == tuple(getattr(r, name) for name in SAVE_FIELDS)
    assert update_row(r) == tuple(getattr(r, name) for name in UPDATE_FIELDS)
    assert set(SAVE_FIELDS) == set(FIELDS)
    assert set(UPDATE_FIELDS) == set(FIELDS) - {"seq", "payload"}


def test_a_commit_the_store_cannot_write_now_keeps_everything_for_a_retry(
        tmp_path: Path) -> None:
    """A lock held elsewhere (like a full disk) fails the commit with StoreUnavailable;
    nothing pending is lost, and the same commit works once the obstacle is gone."""
    path = tmp_path / "zq.db"
    store = SqliteStore(path, timeout=0.05)
    store.save([task("before", 1)])
    store.commit()
    store.save([task("during", 2)])
    store.update([task("before", 1, state=State.SUCCEEDED, result=b"r")])
    store.set_meta("epoch", 2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="nothing was lost, it can be tried again"):
            store.commit()
    blocker.execute("ROLLBACK")
    blocker.close()
    store.commit()
    store.close()
    again = SqliteStore(path)
    loaded = {r.id: r for r in again.load()}
    assert sorted(loaded) == ["before", "during"] and loaded["before"].result == b"r"
    assert again.get_meta("epoch") == 2
    again.close()


def test_a_turn_too_large_for_one_journal_row_takes_several_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many large payloads in one turn: the journal splits the turn (SQLite refuses
    blobs over 1 GB), keeps the changes' order across the rows, and a crash before
    any fold loses none of them."""
    monkeypatch.setattr(sqlite_store, "JOURNAL_ROW_MAX", 2000)
    path = tmp_path / "zq.db"
    store = SqliteStore(path)
    big = [TaskRecord(f"t{i}", "app:f", bytes([i]) * 300, seq=i) for i in range(20)]
    store.save(big)
    store.delete(["t3"])
    store.save([TaskRecord("t3", "app:f", b"again", seq=3)])  # after its delete: kept
    store.update([TaskRecord("t5", "app:f", b"", seq=5, state=State.SUCCEEDED, result=b"r")])
    store.commit()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM journal").fetchone()[0] > 3
    db.close()
    drop(store)
    again = SqliteStore(path)
    loaded = {r.id: r for r in again.load()}
    assert sorted(loaded, key=lambda i: int(i[1:])) == [f"t{i}" for i in range(20)]
    assert loaded["t3"].payload == b"again" and loaded["t7"].payload == bytes([7]) * 300
    assert (loaded["t5"].state, loaded["t5"].result) == (State.SUCCEEDED, b"r")
    again.close()


def test_past_fold_bytes_of_journal_the_store_is_behind_until_compact_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """However few the changes: the in-memory index would otherwise keep every payload
    of the journal alive. A commit never folds; compact() slices bring it back."""
    monkeypatch.setattr(sqlite_store, "FOLD_BYTES", 10_000)
    path = tmp_path / "zq.db"
    store = SqliteStore(path)

    def counts() -> tuple[int, int]:
        with sqlite3.connect(path) as db:
            found = (db.execute("SELECT count(*) FROM journal").fetchone()[0],
                     db.execute("SELECT count(*) FROM task").fetchone()[0])
        db.close()
        return found

    for i in range(4):  # 3 kB each: journaled (under DIRECT_BYTES per change)
        assert not store.behind()
        store.save([TaskRecord(f"t{i}", "app:f", bytes(3000), seq=i)])
        store.commit()
        assert counts() == (i + 1, 0)
    assert store.behind()
    assert store.compact(1) is True  # t0 folded: its journal row goes, 9 kB left
    assert counts() == (3, 1) and not store.behind()
    store.close()


def test_large_payloads_are_written_once_straight_into_the_task_table(
        tmp_path: Path) -> None:
    """A turn of large payloads skips the journal (which would write the bytes twice),
    after folding what was unfolded, and keeps the turn's order."""
    path = tmp_path / "zq.db"
    store = SqliteStore(path)
    store.save([task("small", 1)])
    store.commit()  # journaled, not folded
    big = bytes(100_000)
    store.save([TaskRecord("big", "app:f", big, seq=2)])
    store.delete(["big"])
    store.save([TaskRecord("big", "app:f", big + b"!", seq=2)])
    store.update([task("small", 1, state=State.SUCCEEDED, result=b"r")])
    store.commit()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM journal").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM task").fetchone()[0] == 2
    db.close()
    drop(store)
    again = SqliteStore(path)
    loaded = {r.id: r for r in again.load()}
    assert loaded["big"].payload == big + b"!"
    assert (loaded["small"].state, loaded["small"].result) == (State.SUCCEEDED, b"r")
    again.close()
