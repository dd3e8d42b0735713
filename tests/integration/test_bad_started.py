"""Hostile STARTED notices (protocol 1.4): a malformed message gets an ERROR, malformed
entries are refused one by one (named in an ERROR) while the good ones apply, and an
entry for a task the sender does not run (unknown, another worker's, queued) changes
nothing. The master keeps serving everyone."""

from __future__ import annotations

from pathlib import Path

import msgpack

import zq
from tests.apps import futures_tasks as t
from tests.integration.harness import wait_until
from tests.integration.raw_peer import RawPeer
from zq.core import messages as m
from zq.core.messages import Cmd, Role

APP = "tests.apps.futures_tasks"
SESSION = "f" * 32


def raw_worker(endpoint: str) -> RawPeer:
    """A registered worker that offers STARTED and takes no task (credit 0)."""
    peer = RawPeer(endpoint, Role.WORKER)
    peer.send(m.Hello("raw", "raw-host", 4242, ["default"], 1, "thread", 0, [], SESSION, {},
                      started=True))
    welcome = peer.recv_until(lambda x: isinstance(x, m.Welcome))
    assert isinstance(welcome, m.Welcome) and welcome.started is True
    return peer


def error_after(peer: RawPeer, frames: list[bytes]) -> str:
    peer.send(m.Heartbeat())  # alive (a malformed message is no sign of life)
    peer.send_raw(frames)
    reply = peer.recv_until(lambda x: isinstance(x, m.Error))
    assert isinstance(reply, m.Error)
    return reply.reason


def started_frames(*entries: object) -> list[bytes]:
    return [b"ZQW1", msgpack.packb([int(Cmd.STARTED), list(entries)])]


def send_hostile_notices(raw: RawPeer, a: str, b: str) -> None:
    """a runs on another worker, b waits in that worker's queue."""
    # whole messages that are not STARTED messages
    for frames in ([b"ZQW1", msgpack.packb([int(Cmd.STARTED)])],
                   [b"ZQW1", msgpack.packb([int(Cmd.STARTED), "not a list"])],
                   [b"ZQW1", msgpack.packb([int(Cmd.STARTED), [["t", 1]] * 10_001])]):
        assert "STARTED" in error_after(raw, frames)
    # entries: garbage ones refused alone; another worker's task and unknown ids dropped;
    # the answer (an ERROR naming the refused entries) comes after all of it is handled
    reason = error_after(raw, started_frames(
        [b, 1], ["no-such-task", 1], [1, 2], [b, "one"], ["x" * 200, 1], [b], None, [a, -1]))
    assert "6 entries refused" in reason, reason


def test_hostile_started_notices_change_nothing_and_the_master_serves_on(cluster,
                                                                         tmp_path: Path):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1,
                         extra=("--prefetch", "2"))
    s1, g1, s2, g2 = (str(tmp_path / n) for n in ("s1", "g1", "s2", "g2"))
    with zq.Client(cluster.endpoint) as client:
        a = client.submit(t.gated, s1, g1, "a")
        wait_until(lambda: Path(s1).exists(), 30, "a to start")
        b = client.submit(t.gated, s2, g2, "b")  # held by w1, behind a
        wait_until(lambda: client.get(b.id)["state"] == "running", 30, "b to reach w1")
        assert client.get(b.id)["started"] is None
        with raw_worker(cluster.endpoint) as raw:
            send_hostile_notices(raw, a.id, b.id)

        assert client.get(b.id)["started"] is None  # still waiting on w1: not started
        assert not b.running() and not Path(s2).exists()

        # the client, the real worker and the master go on as before
        assert b.cancel() is True
        # w1 drops b (answers CANCELLED) before a ends, so b never starts
        wait_until(lambda: client.get(b.id)["state"] == "cancelled", 30, "b cancelled")
        Path(g1).touch()
        assert a.result(timeout=30) == "a"
        assert client.submit(t.echo, 7).result(timeout=30) == 7
    assert not Path(s2).exists()
