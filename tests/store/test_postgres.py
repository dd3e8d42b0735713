"""The PostgreSQL store beyond the shared contract: a lost connection is "cannot write
now" (StoreUnavailable, nothing pending lost, the next commit reconnects), the schema it
makes and the versions it refuses, and URLs shown without their password."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.pg import database_for
from zq.core.messages import State
from zq.core.tasks import TaskRecord
from zq.errors import StoreError, StoreUnavailable
from zq.testing.pgserver import PgServer
from zq.testing.processes import free_port

psycopg = pytest.importorskip("psycopg")
from zq.store.postgres import SCHEMA_KEY, PostgresStore, pack  # noqa: E402 - after the importorskip


@pytest.fixture
def url(pg_server: PgServer, tmp_path: Path) -> str:
    return database_for(tmp_path / "store")


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url)
    yield s
    s.close()


def task(i: int, **kw: Any) -> TaskRecord:
    return TaskRecord(f"t{i}", "app:f", b"p%d" % i, seq=i, **kw)


def cut(store: PostgresStore, url: str) -> None:
    """The server ends the store's session, as a restart or a network cut would."""
    pid = store._conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_lost_connection_keeps_the_turn_and_the_next_commit_reconnects(
        store: PostgresStore, url: str) -> None:
    store.save([task(1)])
    store.commit()
    cut(store, url)
    store.save([task(2)])
    store.update([task(1, state=State.SUCCEEDED, result=b"r")])
    store.set_meta("epoch", 2)
    with pytest.raises(StoreUnavailable, match="nothing was lost"):
        store.commit()
    store.commit()  # the same turn, on a new connection
    again = PostgresStore(url)
    try:
        got = {r.id: (r.state, r.result) for r in again.load()}
        assert got == {"t1": (State.SUCCEEDED, b"r"), "t2": (State.QUEUED, None)}
        assert again.get_meta("epoch") == 2
    finally:
        again.close()


def test_one_writer_per_store_a_second_waits_busy_until_the_first_is_gone(
        store: PostgresStore, url: str) -> None:
    """Two masters on one store must not interleave journal turns: the second one's
    commits fail as "cannot write now" (kept pending), naming why, until the first
    session ends; then they land, and nothing of either is lost."""
    store.save([task(1)])
    store.commit()  # the first writer
    second = PostgresStore(url)
    try:
        assert [r.id for r in second.load()] == ["t1"]  # reading needs no lock
        second.save([task(2)])
        with pytest.raises(StoreUnavailable, match="another session writes to the store"):
            second.commit()
        store.close()  # the first master goes away
        second.commit()  # the same turn, now the writer
        assert [r.id for r in second.load()] == ["t1", "t2"]
    finally:
        second.close()


def test_a_server_that_cannot_be_reached_is_unavailable_and_shows_no_password() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore(f"postgresql://zq:s3cret@127.0.0.1:{port}/zq", connect_timeout=2)
    assert "s3cret" not in str(caught.value)
    assert f"postgresql://zq:***@127.0.0.1:{port}/zq" in str(caught.value)


def test_a_new_database_gets_the_documented_layout(store: PostgresStore, url: str) -> None:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
        indexes = {name for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}
    assert columns == [("zq_journal", "turn", "bigint"), ("zq_journal", "changes", "bytea"),
                       ("zq_lease", "id", "smallint"), ("zq_lease", "epoch", "bigint"),
                       ("zq_lease", "holder", "text"), ("zq_lease", "endpoint", "text"),
                       ("zq_lease", "pid", "integer"),
                       ("zq_lease", "started", "timestamp with time zone"),
                       ("zq_lease", "expires", "timestamp with time zone"),
                       ("zq_meta", "key", "text"), ("zq_meta", "value", "bytea"),
                       ("zq_task", "id", "bytea"), ("zq_task", "seq", "bigint"),
                       ("zq_task", "state", "smallint"), ("zq_task", "payload", "bytea"),
                       ("zq_task", "record", "bytea")]
    assert indexes == {"zq_journal_pkey", "zq_lease_pkey", "zq_meta_pkey", "zq_task_pkey",
                       "zq_task_seq"}
    assert store._read_meta(SCHEMA_KEY) == 2


def test_a_commit_is_one_journal_row_folded_later_into_the_task_table(
        store: PostgresStore, url: str) -> None:
    """The turn's changes go into zq_journal as one row; compact() moves them into
    zq_task and trims the journal; a reader sees the same tasks before and after."""
    store.save([task(i) for i in range(50)])
    store.update([task(3, state=State.SUCCEEDED, result=b"r")])
    store.delete(["t7"])
    store.commit()

    def tables() -> tuple[int, int]:
        with psycopg.connect(url) as conn:
            return (conn.execute("SELECT count(*) FROM zq_journal").fetchone()[0],
                    conn.execute("SELECT count(*) FROM zq_task").fetchone()[0])

    assert tables() == (1, 0)
    before = [(r.id, r.state, r.result) for r in store.load()]
    for _ in range(100):  # bounded: each slice folds 10 tasks
        if not store.compact(10):
            break
    assert tables() == (0, 49)
    assert [(r.id, r.state, r.result) for r in store.load()] == before
    assert store.get("t3").result == b"r" and store.get("t7") is None


def test_a_store_made_by_a_newer_zq_is_refused_untouched(store: PostgresStore, url: str) -> None:
    store.save([task(1)])
    store.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE zq_meta SET value = %s WHERE key = %s", (pack(99), SCHEMA_KEY))
    with pytest.raises(StoreError, match="schema version 99, this zq knows 2"):
        PostgresStore(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM zq_journal),"
                            " (SELECT count(*) FROM zq_task)").fetchone() == (1, 0)


def test_reserved_meta_keys_are_refused(store: PostgresStore) -> None:
    with pytest.raises(StoreError, match="reserved"):
        store.set_meta("zq.schema", 2)


def test_a_value_the_server_refuses_fails_the_commit_and_drops_the_turn(
        store: PostgresStore) -> None:
    """Not a connection problem: retrying cannot help, so the turn is discarded (as
    SQLite does) and the master stops rather than acknowledge it."""
    store.save([task(1)])
    store.save([TaskRecord("bad\udc80", "app:f", b"x", seq=2)])  # not UTF-8 encodable
    with pytest.raises(StoreError, match="discarded") as caught:
        store.commit()
    assert not isinstance(caught.value, StoreUnavailable)
    store.commit()  # nothing left pending
    assert list(store.load()) == []
