"""The PostgreSQL store's lease (issue 16, a standby that takes over): one holder at a
time; a standby takes it when the holder's session ends (kill -9) or when it expires
by the server's clock (a holder cut off, its session still open); every write checks
the epoch in its own transaction, so a master whose lease moved writes nothing more;
a write in flight and a takeover in flight are ordered by the lease row's lock."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.pg import database_for
from zq.core.tasks import TaskRecord
from zq.errors import LeaseLost, StoreUnavailable
from zq.testing.pgserver import PgServer
from zq.testing.processes import wait_until

psycopg = pytest.importorskip("psycopg")
from zq.store.postgres import SCHEMA_KEY, PostgresStore, pack  # noqa: E402 - after the importorskip


@pytest.fixture
def url(pg_server: PgServer, tmp_path: Path) -> str:
    return database_for(tmp_path / "store")


@pytest.fixture
def stores(url: str) -> Iterator[list[PostgresStore]]:
    """Stores opened by a test, closed after it."""
    opened: list[PostgresStore] = []
    yield opened
    for s in opened:
        s.close()


def open_store(stores: list[PostgresStore], url: str, **kw: Any) -> PostgresStore:
    s = PostgresStore(url, **kw)
    stores.append(s)
    return s


def task(i: int) -> TaskRecord:
    return TaskRecord(f"t{i}", "app:f", b"p%d" % i, seq=i)


def journal_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM zq_journal").fetchone()[0]


def end_session(store: PostgresStore, url: str) -> None:
    """The server ends the store's session, as when its master is killed -9."""
    pid = store._conn.info.backend_pid
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def test_one_holder_a_second_sees_who_and_where(stores: list, url: str) -> None:
    a, b = open_store(stores, url), open_store(stores, url)
    got = a.take_lease("master A", "tcp://a:5555", ttl=30)
    assert got.ours and got.live
    seen = b.take_lease("master B", "tcp://b:5555", ttl=30)
    assert not seen.ours and seen.live
    assert (seen.epoch, seen.holder, seen.endpoint) == (got.epoch, "master A", "tcp://a:5555")
    b.save([task(1)])
    with pytest.raises(StoreUnavailable, match="master A at tcp://a:5555"):
        b.commit()  # a standby cannot write
    assert journal_rows(url) == 0


def test_a_holder_killed_is_taken_over_at_once_and_writes_nothing_after(
        stores: list, url: str) -> None:
    """kill -9: the server ends the holder's session, so the lease is free although it
    has not expired; the taker's epoch is one more, and the old holder, should it still
    run and reconnect, fails its next commit as LeaseLost without writing it."""
    a, b = open_store(stores, url), open_store(stores, url)
    epoch = a.take_lease("master A", "tcp://a:5555", ttl=60).epoch
    a.save([task(1)])
    a.commit()
    end_session(a, url)
    taken = b.take_lease("master B", "tcp://b:5555", ttl=60)
    assert taken.ours and taken.epoch == epoch + 1
    assert [r.id for r in b.load()] == ["t1"]  # what A committed is B's
    a.save([task(2)])
    with pytest.raises(StoreUnavailable):
        a.commit()  # its session is gone, as a master finds out: it tries again
    with pytest.raises(LeaseLost):
        a.commit()  # on a new session: the lease moved
    assert [r.id for r in b.load()] == ["t1"] and journal_rows(url) == 1
    b.save([task(3)])
    b.commit()
    with pytest.raises(LeaseLost):  # nothing more: not even the fold
        a.compact(10)


def test_a_holder_cut_off_is_taken_over_once_its_lease_expires(
        stores: list, url: str) -> None:
    """A holder whose host is cut off keeps its session open on the server for a long
    time: its lease passes by the server's clock once not renewed for its ttl; its
    commits, when it comes back, fail as LeaseLost."""
    a, b = open_store(stores, url), open_store(stores, url)
    # 2 s, not less: B's first look must come before the expiry however slow the
    # machine is; wait_until below waits for the expiry itself.
    a.take_lease("master A", "", ttl=2)
    a.save([task(1)])
    a.commit()
    first = b.take_lease("master B", "", ttl=60)
    assert not first.ours  # A's session is alive: B waits for the expiry
    taken = wait_until(lambda: (lease := b.take_lease("master B", "", ttl=60)).ours and lease,
                       10, "A's lease to expire")
    assert taken.epoch == first.epoch + 1
    a.save([task(2)])
    with pytest.raises(LeaseLost, match="moved to epoch"):
        a.commit()  # on its old session, still open
    with pytest.raises(LeaseLost):
        a.renew_lease()
    assert [r.id for r in b.load()] == ["t1"]


def test_renewing_keeps_the_lease_from_a_standby(stores: list, url: str) -> None:
    # A 2 s lease (a 0.5 s one passed to B when the machine paused between two steps),
    # and each renewal pinned to the server's clock around it, not to elapsed time.
    ttl = timedelta(seconds=2)
    a, b = open_store(stores, url), open_store(stores, url)
    a.take_lease("master A", "", ttl=ttl.total_seconds())
    with psycopg.connect(url, autocommit=True) as conn:
        def server_now() -> datetime:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

        for _ in range(5):  # each renewal moves the expiry on from the server's now
            before = server_now()
            a.renew_lease()
            after = server_now()
            expires = conn.execute("SELECT expires FROM zq_lease").fetchone()[0]
            assert before + ttl <= expires <= after + ttl
            assert not b.take_lease("master B", "", ttl=60).ours


def test_a_clean_close_releases_the_lease_for_a_standby_at_once(
        stores: list, url: str) -> None:
    a, b = open_store(stores, url), open_store(stores, url)
    a.take_lease("master A", "", ttl=60)
    a.save([task(1)])
    a.commit()
    assert not b.take_lease("master B", "", ttl=60).ours
    a.close()
    assert b.take_lease("master B", "", ttl=60).ours
    assert [r.id for r in b.load()] == ["t1"]


def test_a_takeover_in_flight_makes_a_commit_wait_then_fail(stores: list, url: str) -> None:
    """The lease check holds the lease row FOR SHARE: a commit that starts while a
    takeover's transaction is open waits for it, then fails, instead of committing a
    turn the new holder's restore has not read (and the master acknowledging it)."""
    a = open_store(stores, url)
    a.take_lease("master A", "", ttl=60)
    a.save([task(1)])
    outcome: list[BaseException | None] = []
    with psycopg.connect(url) as taker:  # a transaction: the takeover, not committed yet
        taker.execute("UPDATE zq_lease SET epoch = epoch + 1 WHERE id = 1")

        def commit() -> None:
            try:
                a.commit()
                outcome.append(None)
            except BaseException as e:  # noqa: BLE001 - handed to the test
                outcome.append(e)

        thread = threading.Thread(target=commit)
        thread.start()
        a_pid = a._conn.info.backend_pid
        wait_until(lambda: taker.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
            (a_pid,)).fetchone()[0], 10, "the commit to wait for the lease row")
        taker.commit()
        thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], LeaseLost)
    assert journal_rows(url) == 0


def test_a_version_1_store_gets_the_lease_on_open(stores: list, url: str) -> None:
    a = open_store(stores, url)
    a.take_lease("master A", "", ttl=60)
    a.save([task(1)])
    a.commit()
    a.close()
    with psycopg.connect(url, autocommit=True) as conn:  # as zq of schema 1 left it
        conn.execute("DROP FUNCTION zq_lease_check(bigint)")
        conn.execute("DROP TABLE zq_lease")
        conn.execute("UPDATE zq_meta SET value = %s WHERE key = %s", (pack(1), SCHEMA_KEY))
    b = open_store(stores, url)
    assert b.take_lease("master B", "", ttl=60).ours
    assert [r.id for r in b.load()] == ["t1"]
    assert b._read_meta(SCHEMA_KEY) == 2


def test_a_standby_does_not_wait_out_a_commit_holding_the_lease_row(
        stores: list, url: str) -> None:
    """A holder cut off in the middle of a commit holds the lease row FOR SHARE until the
    server ends its session (up to 5 s). A standby trying to take the expired lease then
    hears "not taken" at once (its loop goes on answering peers that it is standby) and
    takes it at a later try, once the row is free."""
    a, b = open_store(stores, url), open_store(stores, url)
    a.take_lease("master A", "", ttl=0.5)
    with psycopg.connect(url) as in_flight:  # A's commit, its lease check done
        in_flight.execute("SELECT epoch FROM zq_lease WHERE id = 1 FOR SHARE")
        wait_until(lambda: not b.lease().live, 10, "A's lease to expire")
        assert not b.take_lease("master B", "", ttl=60).ours
    assert wait_until(lambda: b.take_lease("master B", "", ttl=60).ours, 10,
                      "B to take the lease once the row is free")
