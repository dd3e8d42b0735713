"""The store fails under a running master (issue 11, claim 1, without root), or its file is
damaged before it starts (issue 10's fault list).

- A store whose commit fails (StoreUnavailable: a full disk, an I/O error) produces BUSY,
  never ACCEPTED, and no ACK: what waits for the commit goes out once a commit works,
  and the loop keeps going meanwhile (heartbeats: no peer takes the master for lost).
- A store that fails for good (StoreError) stops the master; a restart on the same file
  recovers everything committed.
- `zq master` on a truncated, corrupt or foreign file exits non-zero with a message that
  names the file and the way out, and the file is byte for byte what it was.

The in-process tests run a real Master in a thread with its store wrapped (FlakyStore)
and talk to it over loopback with raw DEALER sockets, so every message is seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import zmq

from tests.integration.harness import ROOT, free_port, wait_until
from tests.store.test_damaged_file import DAMAGE, good_store_bytes
from zq.config import MasterConfig
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Outcome, Role, State
from zq.errors import StoreError, StoreUnavailable
from zq.master import Master
from zq.store.sqlite import SqliteStore


class FlakyStore:
    """A store whose commit fails while `failing` (StoreUnavailable: pending changes are
    kept for the retry) or for good once `broken` (StoreError); the rest is the store's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing = False
        self.broken = False
        self.refused = 0  # commits refused so far

    def commit(self) -> None:
        if self.broken:
            self.refused += 1
            raise StoreError("the store's disk said EIO (a test)")
        if self.failing:
            self.refused += 1
            raise StoreUnavailable("the disk is full (a test); nothing was lost, it can "
                                   "be tried again")
        self.inner.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Peer:
    """A raw DEALER in one role; every message it receives is kept, in order."""

    def __init__(self, ctx: zmq.Context, endpoint: str, role: Role) -> None:
        self.role = role
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seen: list[m.Message] = []

    def send(self, msg: m.Message) -> None:
        self.sock.send_multipart(codec.encode(self.role, msg))

    def read(self) -> list[m.Message]:
        """Everything waiting now (without blocking), kept in `seen` too."""
        got = []
        while self.sock.poll(0):
            got.append(codec.decode(self.sock.recv_multipart())[1])
        self.seen += got
        return got

    def wait_for(self, kind: type, what: str, timeout: float = 10.0) -> Any:
        """The next message of this kind (others are kept in `seen`)."""
        found: list[Any] = []

        def arrived() -> bool:
            found.extend(msg for msg in self.read() if isinstance(msg, kind))
            return bool(found)
        wait_until(arrived, timeout, what, interval=0.01)
        return found[0]

    def kinds(self) -> set[str]:
        return {type(msg).__name__ for msg in self.seen}


@pytest.fixture
def master(tmp_path: Path) -> Iterator[tuple[Master, FlakyStore, str]]:
    """A master on a SQLite file in this process, its commits in the test's hands."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = MasterConfig(bind=endpoint, store=str(tmp_path / "zq.db"),
                          heartbeat_interval=0.25, heartbeat_liveness=4)
    master = Master(config)
    flaky = master.store = FlakyStore(master.store)  # type: ignore[assignment]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            master.run()
        except BaseException as e:  # the test looks at it
            errors.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert master.ready.wait(10)
    master.errors = errors  # type: ignore[attr-defined]
    master.thread = thread  # type: ignore[attr-defined]
    try:
        yield master, flaky, endpoint
    finally:
        master.stop()
        thread.join(20)
        assert not thread.is_alive()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def submit(client: Peer, *ids: str) -> None:
    client.send(m.Submit([(tid, "app:f", b"\x90", {}) for tid in ids]))


def test_while_commits_fail_submissions_get_busy_never_accepted_and_nothing_is_acked(
        master: tuple[Master, FlakyStore, str], ctx: zmq.Context, tmp_path: Path) -> None:
    _, flaky, endpoint = master
    worker, client = Peer(ctx, endpoint, Role.WORKER), Peer(ctx, endpoint, Role.CLIENT)
    worker.send(m.Hello("w1", "host", 1, ["default"], 1, "raw", 1, []))
    worker.wait_for(m.Welcome, "the WELCOME")
    submit(client, "a")
    assert client.wait_for(m.Accepted, "a accepted").ids == ["a"]
    assert [e[0] for e in worker.wait_for(m.Task, "a leased").entries] == ["a"]

    flaky.failing = True
    before = len(client.seen)
    worker.send(m.Result([("a", 1, int(Outcome.OK), b"\xa2ok")]))
    submit(client, "b", "c")
    busy = client.wait_for(m.Busy, "BUSY for b and c")
    assert busy.ids == ["b", "c"] and busy.retry_after > 0
    wait_until(lambda: flaky.refused >= 2, 10, "a second commit to be tried and refused")
    submit(client, "b", "c")  # sent again, as a client does after BUSY
    assert client.wait_for(m.Busy, "BUSY again").ids == ["b", "c"]
    worker.wait_for(m.Heartbeat, "a heartbeat: the loop goes on")
    client.read()
    worker.read()
    while_failing = client.seen[before:]
    assert not [msg for msg in while_failing if isinstance(msg, (m.Accepted, m.Result))]
    assert not [msg for msg in worker.seen if isinstance(msg, m.Ack)]

    flaky.failing = False
    assert worker.wait_for(m.Ack, "the ACK once a commit works").ids == ["a"]
    assert client.wait_for(m.Result, "a's result").entries[0][:2] == ("a", int(State.SUCCEEDED))
    submit(client, "b", "c")
    assert client.wait_for(m.Accepted, "b and c accepted now").ids == ["b", "c"]

    st = ctx.socket(zmq.DEALER)  # the master's own account, after all that
    st.setsockopt(zmq.LINGER, 0)
    st.connect(endpoint)
    st.send_multipart(codec.encode(Role.CLIENT, m.Query(1, "status", {})))
    assert st.poll(10_000)
    counts = codec.decode(st.recv_multipart())[1].body["counts"]
    st.close(0)
    assert (counts["succeeded"], counts["queued"] + counts["running"]) == (1, 2)


def test_a_store_that_fails_for_good_stops_the_master_and_a_restart_has_every_commit(
        master: tuple[Master, FlakyStore, str], ctx: zmq.Context, tmp_path: Path) -> None:
    running, flaky, endpoint = master
    client = Peer(ctx, endpoint, Role.CLIENT)
    submit(client, "a", "b")
    assert client.wait_for(m.Accepted, "a and b accepted").ids == ["a", "b"]
    flaky.broken = True
    submit(client, "c")
    running.thread.join(20)  # type: ignore[attr-defined]
    assert not running.thread.is_alive()  # type: ignore[attr-defined]
    assert [type(e) for e in running.errors] == [StoreError]  # type: ignore[attr-defined]
    assert not [msg for msg in client.read() if isinstance(msg, m.Accepted)]
    store = SqliteStore(tmp_path / "zq.db")
    try:
        assert sorted(r.id for r in store.load()) == ["a", "b"]
    finally:
        store.close()


# --- a damaged file at start-up ------------------------------------------------------------


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return good_store_bytes(tmp_path_factory.mktemp("good"))


def run_master(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zq", "master", "--bind", f"tcp://127.0.0.1:{free_port()}",
         "--store", str(path)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how", sorted(DAMAGE) + ["not sqlite"])
def test_zq_master_on_a_damaged_store_exits_with_the_way_out_and_changes_nothing(
        tmp_path: Path, good_store: bytes, how: str) -> None:
    path = tmp_path / "zq.db"
    data = os.urandom(50_000) if how == "not sqlite" else DAMAGE[how](good_store)
    path.write_bytes(data)
    done = run_master(path)
    assert done.returncode != 0
    message = " ".join(done.stderr.split())  # typer wraps long lines
    assert f"error: the store {path}" in message, done.stderr
    if how == "not sqlite":
        assert "restore it from a backup" in message and "move the file away" in message
    else:
        assert "Restore it from a backup" in message and f"mv {path} {path}.damaged" in message
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zq.db"]
