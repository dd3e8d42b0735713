"""One bad entry is refused alone, over real sockets (issue 9, finding 4): a worker's
RESULT with one malformed entry still settles the others, and a SUBMIT with an unknown
option gets that entry REJECTED while the rest is accepted."""

from __future__ import annotations

import msgpack

import zq
from tests.integration.raw_peer import RawPeer
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Cmd, Role


def test_a_results_message_with_one_bad_entry_settles_the_others(cluster):
    cluster.liveness = 40  # 10 s: the raw worker sends no heartbeat while it holds a task
    cluster.start_master("memory")
    with RawPeer(cluster.endpoint, Role.WORKER) as worker, zq.Client(cluster.endpoint) as client:
        worker.hello("raw", credit=3, concurrency=3)
        futures = [client.submit("app:f", i) for i in range(3)]
        tasks = worker.recv_until(lambda x: isinstance(x, m.Task))
        ids = [e[0] for e in tasks.entries]
        while len(ids) < 3:  # they may come in more than one TASK
            more = worker.recv_until(lambda x: isinstance(x, m.Task))
            ids += [e[0] for e in more.entries]
        by_id = {f.id: f for f in futures}
        good = [ids[0], ids[2]]
        # The second entry is CANCELLED with nil where the protocol wants an empty bin.
        worker.send_raw([codec.SIGNATURES[Role.WORKER], msgpack.packb([Cmd.RESULT, [
            [ids[0], 1, 0, msgpack.packb("one")], [ids[1], 1, 3, None],
            [ids[2], 1, 0, msgpack.packb("three")]]])])
        seen: list[m.Message] = []
        ack = worker.recv_until(lambda x: isinstance(x, m.Ack), seen=seen)
        assert sorted(ack.ids) == sorted(good)  # the good ones are settled and ACKed
        error = next((x for x in seen if isinstance(x, m.Error)), None) or \
            worker.recv_until(lambda x: isinstance(x, m.Error))
        assert ids[1] in error.reason and "payload" in error.reason
        assert by_id[ids[0]].result(timeout=10) == "one"
        assert by_id[ids[2]].result(timeout=10) == "three"
        assert client.get(ids[1])["state"] == "running"  # the bad entry changed nothing


def test_an_unknown_option_rejects_that_entry_and_accepts_the_rest(cluster):
    cluster.start_master("memory")
    with RawPeer(cluster.endpoint, Role.CLIENT) as raw:
        raw.send_raw([codec.SIGNATURES[Role.CLIENT], msgpack.packb([Cmd.SUBMIT, [
            ["ok1", "app:f", b"", {}], ["new1", "app:f", b"", {"deadline": 5}],
            ["ok2", "app:f", b"", {"priority": 1}]]])])
        seen: list[m.Message] = []
        rejected = raw.recv_until(lambda x: isinstance(x, m.RejectedEntries), seen=seen)
        assert [tid for tid, _ in rejected.entries] == ["new1"]
        assert "unknown option 'deadline'" in rejected.entries[0][1]
        accepted = [x for x in seen if isinstance(x, m.Accepted)]
        while sum(len(a.ids) for a in accepted) < 2:
            accepted.append(raw.recv_until(lambda x: isinstance(x, m.Accepted)))
        assert sorted(i for a in accepted for i in a.ids) == ["ok1", "ok2"]
