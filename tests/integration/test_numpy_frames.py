"""numpy arrays as frames of their own through a real master and worker (protocol 1.4,
issue 13): large arrays go both ways without being copied into the payload and arrive
writable over the received frame, in batches of many tasks, with a memory or a SQLite
store; a durable task's array survives a master restart; a peer's bad frame references
are refused per entry and the master serves on; a result is bounded per frame."""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
import pytest

import zq
from tests.apps import array_tasks as t
from tests.integration.harness import Cluster
from tests.integration.raw_peer import RawPeer
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Cmd, Role
from zq.core.values import ARRAY_FRAME

np = pytest.importorskip("numpy", reason="numpy is not installed (pip install -e '.[test]')")

APP = "tests.apps.array_tasks"


@pytest.fixture(params=["memory", "sqlite"])
def running(cluster: Cluster, tmp_path, request) -> Iterator[Cluster]:
    store = "memory" if request.param == "memory" else str(tmp_path / "zq.db")
    cluster.start_master(store)
    cluster.start_worker(APP, name="w1", pool="thread")
    yield cluster


def test_large_arrays_go_both_ways_as_frames_without_a_copy(running):
    big = np.arange(1_000_000, dtype="<f8").reshape(1000, 1000)  # 8 MB
    dates = np.arange(ARRAY_FRAME).astype(">M8[s]")  # big-endian, 8 x the threshold
    small = np.arange(10, dtype="<i2")
    with zq.Client(running.endpoint) as client:
        got = client.submit(t.describe, big, dates, small).result(timeout=60)
        assert got == [("<f8", (1000, 1000), True, "Frame", t.digest(big)),
                       (">M8[s]", dates.shape, True, "Frame", t.digest(dates)),
                       ("<i2", (10,), True, "bytearray", t.digest(small))]
        back = client.submit(t.twice, big).result(timeout=60)
        assert back.dtype == big.dtype and back.shape == big.shape and (back == big * 2).all()
        assert back.flags.writeable and t.memory_of(back) == "Frame"  # the client's frame
        back[0, 0] = -1


def test_a_batch_of_tasks_with_arrays_of_both_sizes(running):
    arrays = [np.full(n, i, dtype="<i4") for i, n in enumerate(
        [ARRAY_FRAME // 4 - 1, ARRAY_FRAME // 4, 3, 100_000] * 25)]
    with zq.Client(running.endpoint) as client:
        results = list(client.map(t.twice, arrays, timeout=120))
    for a, r in zip(arrays, results):
        assert r.dtype == a.dtype and (r == a * 2).all()


def test_a_durable_array_payload_survives_a_master_restart(cluster, tmp_path):
    store = str(tmp_path / "zq.db")
    cluster.start_master(store)
    big = np.random.default_rng(1).random(300_000)  # 2.4 MB: frames of the args
    with zq.Client(cluster.endpoint) as client:
        future = client.submit(t.twice, big)
        assert client.flush(timeout=20)  # ACCEPTED: durable in the store
        cluster.master.kill()  # kill -9: only what the store kept remains
        cluster.start_master(store)
        cluster.start_worker(APP, name="w1", pool="thread")
        got = future.result(timeout=60)
    assert (got == big * 2).all()


def test_a_result_is_bounded_per_frame_not_as_a_whole(cluster):
    cluster.start_master("memory", "--max-message", str(1_000_000))
    cluster.start_worker(APP, name="w1", pool="thread")
    with zq.Client(cluster.endpoint) as client:
        three = client.submit(t.ones, 600_000, 3).result(timeout=60)  # 1.8 MB in all
        assert [len(a) for a in three] == [600_000] * 3
        with pytest.raises(zq.TaskError, match="frame of 2000000 bytes, over the master's "
                           "limit of 1000000") as err:
            client.submit(t.ones, 2_000_000).result(timeout=60)
        assert err.value.type_name == "SerializationError"


def _submit(entries: list, frames: int) -> list[bytes]:
    return [codec.SIGNATURES[Role.CLIENT], msgpack.packb([int(Cmd.SUBMIT), entries]),
            *(bytes([i]) * 100 for i in range(frames))]


def test_bad_frame_references_are_refused_per_entry_and_the_master_serves_on(cluster):
    cluster.liveness = 40  # 10 s: the raw worker sends no heartbeat while it holds a task
    cluster.start_master("memory")
    body = msgpack.packb([[], {}])
    with RawPeer(cluster.endpoint, Role.CLIENT) as raw:
        raw.send_raw(_submit([
            ["ok", "app:f", [body, 0], {}],
            ["range", "app:f", [body, 7], {}],  # no frame 7
            ["twice", "app:f", [body, 0], {}],  # frame 0 is ok's
            ["many", "app:f", [body, *range(1, 1500)], {}],
            ["nobody", "app:f", [None, 1], {}],
            ["bare", "app:f", [body], {}],
            ["ok2", "app:f", [body, 1, 2], {}],
        ], frames=3))
        seen: list[m.Message] = []
        rejected = raw.recv_until(lambda x: isinstance(x, m.RejectedEntries), seen=seen)
        why = dict(rejected.entries)
        assert sorted(why) == ["bare", "many", "nobody", "range", "twice"]
        assert "frame index 7 is not one of the message's 3 payload frames" in why["range"]
        assert "referred to twice" in why["twice"]
        assert "1 to 1023 frame indexes" in why["many"]
        accepted = [x for x in seen if isinstance(x, m.Accepted)]
        while sum(len(a.ids) for a in accepted) < 2:
            accepted.append(raw.recv_until(lambda x: isinstance(x, m.Accepted)))
        assert sorted(i for a in accepted for i in a.ids) == ["ok", "ok2"]
    with RawPeer(cluster.endpoint, Role.WORKER) as worker, zq.Client(cluster.endpoint) as client:
        worker.hello("raw", credit=4, concurrency=4)  # also gets "ok" and "ok2"
        futures = [client.submit("app:f", i) for i in range(2)]
        ids: list[str] = []
        while len(ids) < 2:
            ids += [e[0] for e in worker.recv_until(lambda x: isinstance(x, m.Task)).entries
                    if e[0] in {f.id for f in futures}]
        value = msgpack.packb(msgpack.ExtType(15, msgpack.packb(["|u1", [100], 0])))
        worker.send_raw([codec.SIGNATURES[Role.WORKER], msgpack.packb([int(Cmd.RESULT), [
            [ids[0], 1, 0, [value, 0]], [ids[1], 1, 0, [value, 9]]]]), bytes(100)])
        error = worker.recv_until(lambda x: isinstance(x, m.Error))
        assert ids[1] in error.reason and "frame index 9" in error.reason
        by_id = {f.id: f for f in futures}
        got = by_id[ids[0]].result(timeout=20)  # the good entry settled, its array intact
        assert got.dtype == np.uint8 and got.tobytes() == bytes(100)
        assert client.get(ids[1])["state"] == "running"  # the bad one changed nothing
