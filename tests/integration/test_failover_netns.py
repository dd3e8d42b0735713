"""Issue 16, the failover test on separate hosts: two `zq master` processes, each in a
network namespace of its own, on one PostgreSQL store (a server in the root namespace,
reached over the namespaces' switch), two workers in namespaces of their own and a
client in the test process, all given both masters. A durable storm, then the active
master's end: (a) kill -9; (b) its host cut off (its cable pulled: its database
connection and every peer go dark at once, no reset sent, the process keeps running).

Each time: every task accepted has exactly one recorded result and ran (counted on the
workers' side, tests/integration/storm.py), and no two masters served at once, shown two
ways:
- the masters' serving intervals, from their logs: a master serves from its "took the
  store's lease" line until it was killed, or (cut off) until its self-fence, which its
  fence line dates (the lease not renewed for FENCE_AT of it); the next master's
  interval begins after it ends;
- every write to the store, recorded by a trigger the test adds to the store's tables:
  each was made by the database session holding the lease, under its epoch, and the
  writes of one epoch all come before those of the next.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

import zq
from tests.integration.harness import Cluster, Proc, free_port, skip_needing_root, wait_until
from tests.integration.netns import Lan, skip_unless_available
from tests.integration.storm import WAVE, Storm, assert_one_result_each, runs
from tests.pg import unavailable
from zq.lease import FENCE_AT  # a master serves nothing once its lease is this old
from zq.testing.pgserver import PgServer, PgUnavailable

pytestmark = pytest.mark.netns
psycopg = pytest.importorskip("psycopg")

APP = "tests.apps.e2e_tasks"
HEARTBEAT, LIVENESS = 0.25, 4
LEASE = HEARTBEAT * LIVENESS  # a master's lease lasts one liveness window
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
TOOK = re.compile(STAMP + r".*took the store's lease \(epoch (\d+)\)", re.M)
FENCED = re.compile(STAMP + r".*the store's lease \(epoch (\d+)\) was not renewed for "
                    r"([\d.]+) s", re.M)
HOSTS = ["a", "b", "w1", "w2"]  # the masters' hosts, the workers'

# Every write to the store, with the lease as the writing transaction sees it (its
# zq_lease_check holds the lease row FOR SHARE until the commit) and the writer's session.
AUDIT = """
CREATE TABLE zq_test_audit (epoch bigint, holder_pid integer, writer_pid integer,
                            at timestamptz, tx bigint);
CREATE FUNCTION zq_test_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO zq_test_audit SELECT epoch, pid, pg_backend_pid(), clock_timestamp(),
                                     txid_current() FROM zq_lease WHERE id = 1;
    RETURN NULL;
END $$;
""" + "".join(f"""
CREATE TRIGGER zq_test_audit AFTER INSERT OR UPDATE OR DELETE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION zq_test_audit();
""" for table in ("zq_task", "zq_journal", "zq_meta"))


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    skip_unless_available("the failover test on separate hosts")
    try:
        hosts = Lan(HOSTS).__enter__()
    except Exception as e:  # noqa: BLE001 - a kernel without bridges, say
        skip_needing_root(f"the failover test on separate hosts needs a bridge between "
                          f"network namespaces: {e}")
    try:
        yield hosts
    finally:
        hosts.__exit__()


@pytest.fixture(scope="module")
def lan_pg(lan: Lan) -> Iterator[PgServer]:
    """A PostgreSQL server of its own, listening on the root's address on the switch and
    admitting the hosts there (the session's server listens on loopback only)."""
    try:
        server = PgServer.start(listen=(lan.root_addr,), trust=(lan.subnet,))
    except PgUnavailable as e:
        unavailable(str(e))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(lan_pg: PgServer) -> Iterator[str]:
    with lan_pg.scratch_database() as url:
        yield url


def stamp(text: str) -> float:
    """Wall-clock seconds of a log line's timestamp (the hosts share this machine's
    clock)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def took(master: Proc) -> list[tuple[float, int]]:
    """(when, epoch) of each lease the master took."""
    return [(stamp(at), int(epoch)) for at, epoch in TOOK.findall(master.output())]


class Failover:
    """Masters a and b on hosts of their own, a first (it takes the lease), workers w1
    and w2 on theirs, each given `order` of the masters; a storm from the test."""

    def __init__(self, lan: Lan, database: str, tmp: Path, order: str) -> None:
        self.lan, self.database = lan, database
        self.cluster = Cluster(tmp, heartbeat=HEARTBEAT, liveness=LIVENESS)
        self.ends = {m: f"tcp://{lan.addr(m)}:{free_port()}" for m in ("a", "b")}
        self.connect = [self.ends[m] for m in order]
        self.storm = Storm(self.cluster, tmp / "runs")

    def start(self) -> tuple[Proc, Proc]:
        c = self.cluster
        c.endpoint = self.ends["a"]
        a = self._master("a")
        c.wait_master()
        with psycopg.connect(self.database, autocommit=True) as conn:
            conn.execute(AUDIT)  # the tables exist now: a made them
        b = self._master("b")
        c.master = a
        wait_until(lambda: "standby:" in b.output(), 20, "b to wait as a standby")
        for w in ("w1", "w2"):
            c.start_worker(APP, name=w, pool="thread", concurrency=4,
                           connect=",".join(self.connect), prefix=self.lan.exec_prefix(w))
        return a, b

    def _master(self, m: str) -> Proc:
        return self.cluster.start_master(self.database, "--insecure", bind=self.ends[m],
                                         prefix=self.lan.exec_prefix(m), wait=False)

    def finish(self, client: zq.Client, b: Proc) -> None:
        """b serves now: two more waves, then every result, each task's one."""
        wait_until(lambda: took(b), 30, "b to take the lease")
        self.cluster.endpoint, self.cluster.master = self.ends["b"], b
        for _ in range(2):
            self.storm.wave(client)
        futures = self.storm.futures
        results = [f.result(timeout=60) for f in futures]
        assert [r.partition(":")[0] for r in results] == [str(i) for i in range(len(futures))]
        assert_one_result_each(client, futures)
        assert set(runs(self.storm.log)) == {str(i) for i in range(len(futures))}

    def audited_writes(self) -> list[tuple[int, int, int, float]]:
        """(epoch, lease holder's session, writer's session, when) of every write."""
        with psycopg.connect(self.database) as conn:
            rows = conn.execute("SELECT epoch, holder_pid, writer_pid,"
                                " extract(epoch FROM at)::float8 FROM zq_test_audit"
                                " ORDER BY at").fetchall()
        return [(int(e), h, w, float(at)) for e, h, w, at in rows]

    def close(self) -> None:
        self.cluster.close()


def check_writes_one_holder_at_a_time(writes: list[tuple[int, int, int, float]],
                                      epochs: tuple[int, int]) -> None:
    """Each write was made by the lease holder's own session, under the two masters'
    epochs only, and in time order the epochs never go back: a's writes, then b's."""
    assert writes, "no write was recorded"
    strangers = [w for w in writes if w[1] != w[2]]
    assert not strangers, f"writes by a session not holding the lease: {strangers[:5]}"
    seen = [e for e, *_ in writes]
    assert set(seen) == set(epochs), (seen, epochs)
    assert seen == sorted(seen), "writes of two epochs interleave"


@pytest.fixture
def failover(lan: Lan, database: str, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[Failover]:
    f = Failover(lan, database, tmp_path, getattr(request, "param", "ab"))
    try:
        yield f
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(f.cluster.logs())
        f.close()


@pytest.mark.parametrize("failover", ["ba"], indirect=True)
def test_kill9_of_the_active_master_on_its_own_host(failover: Failover):
    """kill -9 of a, the active master (the workers and the client know b first: b
    sends them to a). b takes the lease after a is dead and serves every task."""
    a, b = failover.start()
    storm = failover.storm
    with zq.Client(failover.connect) as client:
        storm.under_way(client)
        a.kill()
        assert a.wait(10) != 0
        killed = time.time()  # a serves nothing after this
        assert storm.ran() < 6 * WAVE, "the storm was over before the kill"
        storm.release()
        storm.wave(client)  # submitted while b takes over
        failover.finish(client, b)
    ((a_took, a_epoch),), ((b_took, b_epoch),) = took(a), took(b)
    assert a_took < killed < b_took and a_epoch < b_epoch
    check_writes_one_holder_at_a_time(failover.audited_writes(), (a_epoch, b_epoch))
    failover.cluster.wait_workers({"w1", "w2"})  # both on b now
    assert b.alive()


def test_the_active_masters_host_cut_off(failover: Failover, lan: Lan):
    """a's host unplugged: its database connection and its peers go dark, no reset
    sent. a fences itself (its lease unrenewed for FENCE_AT of it: it serves nothing
    more), b takes the expired lease and serves every task; plugged back in, a finds the
    lease moved and exits with code 3."""
    a, b = failover.start()
    storm = failover.storm
    with zq.Client(failover.connect) as client:
        storm.under_way(client)
        lan.cut("a")
        try:
            assert storm.ran() < 6 * WAVE, "the storm was over before the cut"
            storm.release()
            storm.wave(client)
            failover.finish(client, b)
            wait_until(lambda: FENCED.search(a.output()), 30, "a to fence itself")
            assert a.alive()
        finally:
            lan.cut("a", off=False)
        assert a.wait(30) == 3  # it reaches the database again: the lease moved
    assert "Stopped serving at once (exit code 3)" in a.output()
    ((a_took, a_epoch),), ((b_took, b_epoch),) = took(a), took(b)
    fenced_at, epoch, unrenewed = FENCED.search(a.output()).groups()  # type: ignore[union-attr]
    # a served until FENCE_AT of its lease after its last renewal began, which its
    # fence line dates (the line may come later: its loop may have hung on the dark link)
    served_until = stamp(fenced_at) - float(unrenewed) + FENCE_AT * LEASE
    assert int(epoch) == a_epoch
    assert a_took < served_until < b_took and a_epoch < b_epoch
    check_writes_one_holder_at_a_time(failover.audited_writes(), (a_epoch, b_epoch))
    failover.cluster.wait_workers({"w1", "w2"})


# A master's commit cut off half-way: its pipeline (BEGIN, the lease row FOR SHARE, more
# statements) reached the server, its Sync did not. Run in a host of its own.
HALF_A_COMMIT = """
import sys, time
import psycopg
from zq.store.postgres import link_params
url = sys.argv[1]
conn = psycopg.connect(url, **link_params(url, 5))
pg = conn.pgconn
pg.enter_pipeline_mode()
pg.send_query_params(b"BEGIN", None)
pg.send_query_params(b"SELECT id FROM lease_row WHERE id = 1 FOR SHARE", None)
pg.send_query_params(b"SELECT pg_sleep(1)", None)  # its reply goes out after the cut
pg.send_flush_request()
while pg.flush():
    pass
print("sent", flush=True)
time.sleep(600)
"""


def test_a_session_cut_off_mid_commit_ends_and_frees_the_lease_row(
        lan: Lan, database: str, tmp_path: Path):
    """The server waits for the rest of a pipeline cut off before its Sync with the row
    lock held, no idle-in-transaction timer armed (no ReadyForQuery went out) and its
    last replies unacknowledged (so no keepalive): the session must still end within
    seconds (the store's server-side tcp_user_timeout), or a standby could not take the
    lease for about 15 minutes (TCP's retransmissions)."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE lease_row (id int PRIMARY KEY);"
                     " INSERT INTO lease_row VALUES (1)")
    out = tmp_path / "half"
    holder = Proc([database], out, lan.exec_prefix("a"),
                  program=[sys.executable, "-c", HALF_A_COMMIT])
    try:
        wait_until(lambda: "sent" in holder.output(), 30, "the half commit to be sent")
        lan.cut("a")

        def row_free() -> bool:
            with psycopg.connect(database) as conn:
                conn.execute("SET lock_timeout = '500ms'")
                try:
                    conn.execute("SELECT id FROM lease_row WHERE id = 1 FOR UPDATE")
                except psycopg.errors.LockNotAvailable:
                    return False
                return True
        assert not row_free(), "the half commit did not take the row lock"
        wait_until(row_free, 30, "the cut-off session to end and free the row")
    finally:
        lan.cut("a", off=False)
        holder.close()
