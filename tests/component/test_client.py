"""zq.Client against a fake master (tests/component/fake_master.py): results, errors, cancel,
streams, map, back-pressure, BUSY/REJECTED/same_as, WATCH, queries, reconnects, close."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import threading
import time
from typing import Callable, Iterator

import pytest

import zq
from tests.apps import client_tasks as tasks
from tests.component.fake_master import FakeMaster
from zq.config import ClientConfig
from zq.core import messages as m
from zq.core import serde
from zq.core.messages import State

pytestmark = pytest.mark.timeout(30)

# Master lost after 1 s of silence: quick, yet longer than a pause of this process (the
# client's I/O thread, the fake master's and the test's share it) on a loaded machine.
FAST = dict(heartbeat_interval=0.05, heartbeat_liveness=20)


def io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zq-client-io"]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(io_threads())
    yield
    leaked = [t for t in io_threads() if t not in before]
    for t in leaked:
        t.join(5.0)
    assert not [t for t in leaked if t.is_alive()], "a client I/O thread outlived its test"


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    fm = FakeMaster(run=True)
    yield fm
    fm.stop()


@pytest.fixture
def manual() -> Iterator[FakeMaster]:
    """A master that neither accepts nor runs anything unless the test says so."""
    fm = FakeMaster(accept=False)
    yield fm
    fm.stop()


@contextlib.contextmanager
def connect(fm: FakeMaster, **cfg: object) -> Iterator[zq.Client]:
    """A client of fm; closed without waiting long for submissions fm never accepts."""
    client = zq.Client(fm.endpoint, config=ClientConfig(connect=fm.endpoint, **cfg))
    try:
        yield client
    finally:
        client.close(timeout=0.2)


def until(pred: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll pred until true, for state no event announces; fails after timeout."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def result_of(tid: str, value: object) -> m.Result:
    return m.Result([(tid, int(State.SUCCEEDED), serde.encode_value(value))])


# --- results and errors -------------------------------------------------------------------


def test_submit_returns_a_concurrent_future_with_the_result(master: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        f = client.submit(tasks.add, 2, 3)
        assert isinstance(f, cf.Future) and isinstance(f.id, str) and f.id
        assert f.result(timeout=5) == 5
        assert f.done() and not f.cancelled() and f.exception() is None
        by_name = client.submit("tests.apps.client_tasks:echo", 1, b"x", k=[1, 2])
        assert by_name.result(timeout=5) == [[1, b"x"], {"k": [1, 2]}]
    name, payload = master.submitted()[0][1:3]
    assert name == "tests.apps.client_tasks:add"
    assert serde.decode_call(payload) == ([2, 3], {})


def test_builtin_exception_is_raised_as_itself_with_the_remote_traceback(
        master: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        f = client.submit(tasks.fail_value, "boom")
        with pytest.raises(ValueError, match="boom") as info:
            f.result(timeout=5)
    assert isinstance(info.value.__cause__, zq.errors.RemoteTraceback)
    assert "fail_value" in info.value.__cause__.traceback


def test_custom_exception_becomes_task_error(master: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        err = client.submit(tasks.fail_custom, "bad").exception(timeout=5)
    assert isinstance(err, zq.TaskError)
    assert err.type_name == "CustomError" and err.message == "bad"


def test_unsendable_arguments_fail_at_once_and_nothing_is_sent(master: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        with pytest.raises(zq.SerializationError):
            client.submit(tasks.echo, object())
        with pytest.raises(zq.ConfigError):
            client.submit(lambda: 1)
        assert client.submit(tasks.add, 1, 1).result(timeout=5) == 2
    assert len(master.submitted()) == 1


def test_default_endpoint_comes_from_zq_connect(master: FakeMaster,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZQ_CONNECT", master.endpoint)
    with zq.Client() as client:
        assert client.submit(tasks.add, 1, 1).result(timeout=5) == 2


def test_threads_submit_concurrently_with_unique_ids(master: FakeMaster) -> None:
    with connect(master, batch_size=50, max_unacked=200) as client:
        futures: list[list[zq.Future]] = [[] for _ in range(4)]

        def work(k: int) -> None:
            futures[k].extend(client.submit(tasks.add, k, i) for i in range(300))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        flat = [f for fs in futures for f in fs]
        assert len({f.id for f in flat}) == 1200
        done, not_done = cf.wait(flat, timeout=10)
        assert not not_done
        assert [f.result() for f in futures[3]] == [3 + i for i in range(300)]


def test_large_arguments_and_results_travel_as_frames(master: FakeMaster) -> None:
    blob = bytes(range(256)) * 400  # 100 kB: over the codec's inline limit
    with zq.Client(master.endpoint) as client:
        assert client.submit(tasks.echo, blob).result(timeout=5) == [[blob], {}]


# --- cancel -------------------------------------------------------------------------------


def test_revoke_settles_locally_and_sends_cancel(master: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        f = client.submit(tasks.slow, 1)
        master.wait_submitted(1)
        assert f.revoke() is True  # cancel() would first ask the master (a QUERY)
        assert f.cancelled() and f.done() and f.cancel() is True
        with pytest.raises(cf.CancelledError):
            f.result(timeout=1)
        assert master.wait_for(lambda log: [x for x in log if isinstance(x, m.Cancel)])[0].ids \
            == [f.id]
        done = client.submit(tasks.add, 1, 2)
        assert done.result(timeout=5) == 3
        assert done.cancel() is False


def test_cancelled_by_the_master_cancels_the_future(manual: FakeMaster) -> None:
    with connect(manual) as client:
        f = client.submit(tasks.slow, 1)
        tid = manual.wait_submitted(1)[0][0]
        error = serde.encode_error("CancelledError", "cancelled")
        manual.send(m.Result([(tid, int(State.CANCELLED), error)]))
        done, _ = cf.wait([f], timeout=5)
        assert f in done and f.cancelled()


# --- streams and progress -----------------------------------------------------------------


def test_stream_yields_chunks_in_seq_order_even_if_they_came_early(manual: FakeMaster) -> None:
    with connect(manual) as client:
        f = client.submit(tasks.slow, 1)
        tid = manual.wait_submitted(1)[0][0]
        # Out of order, with a duplicate, all before stream() is called.
        for seq in (1, 0, 1):
            manual.send(m.Partial([(tid, 1, seq, serde.encode_value(f"c{seq}"))]))
        manual.send(m.Progress([(tid, 1, 2.0, 4.0)]))  # sent last on an ordered link:
        until(lambda: f.progress == (2.0, 4.0))  # once it is seen, the chunks were too
        stream = f.stream(timeout=5)
        assert next(stream) == "c0" and next(stream) == "c1"
        manual.send(m.Partial([(tid, 1, 2, serde.encode_value("c2"))]))
        assert next(stream) == "c2"
        manual.send(result_of(tid, "done"))
        assert list(stream) == []
        assert f.result(timeout=1) == "done"
        assert f.progress == (2.0, 4.0)
        assert list(f.stream()) == ["c0", "c1", "c2"]  # replayable


def test_stream_of_a_generator_task_then_its_error(master: FakeMaster,
                                                   manual: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        f = client.submit(tasks.count, 4)
        assert list(f.stream(timeout=5)) == [0, 1, 2, 3]
        assert f.result(timeout=5) == 4
    with connect(manual) as client:
        f = client.submit(tasks.slow, 1)
        tid = manual.wait_submitted(1)[0][0]
        manual.send(m.Partial([(tid, 1, 0, serde.encode_value("a"))]))
        manual.send(m.Result([(tid, int(State.FAILED), serde.encode_error("KeyError", "k"))]))
        got = []
        with pytest.raises(KeyError):
            for chunk in f.stream(timeout=5):
                got.append(chunk)
        assert got == ["a"]


# --- map ------------------------------------------------------------------------------------


def test_map_yields_in_order_and_submits_in_batches() -> None:
    fm = FakeMaster(run=True, reverse=True)  # results come back last first
    try:
        with connect(fm, batch_size=100, max_unacked=400) as client:
            xs = list(range(1000))
            assert list(client.map(tasks.add, xs, xs)) == [2 * x for x in xs]
        submits = fm.of(m.Submit)
        assert sum(len(s.entries) for s in submits) == 1000
        assert max(len(s.entries) for s in submits) > 1
        assert all(len(s.entries) <= 100 for s in submits)
    finally:
        fm.stop()


def test_map_raises_a_task_error_at_its_position_and_cancels_the_rest(
        master: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        results = client.map(tasks.echo, ["a", "b", object()])
        assert next(results) == [["a"], {}]
        assert next(results) == [["b"], {}]
        with pytest.raises(zq.SerializationError):
            next(results)
        it = client.map(tasks.fail_value, ["x"])
        with pytest.raises(ValueError):
            list(it)


def test_a_failed_map_task_cancels_the_tasks_after_it(manual: FakeMaster) -> None:
    """The rest of a map whose task failed is cancelled on the master, not left to run."""
    with connect(manual) as client:
        it = client.map(tasks.echo, range(5))
        ids = [e[0] for e in manual.wait_submitted(5)]
        manual.send(m.Accepted(ids, {}))
        manual.send(result_of(ids[0], "first"))
        manual.send(m.Result([(ids[1], int(State.FAILED),
                               serde.encode_error("ValueError", "second broke"))]))
        manual.send(result_of(ids[2], "third"))  # already done: nothing to cancel
        assert next(it) == "first"
        with pytest.raises(ValueError, match="second broke"):
            next(it)
        cancels = manual.wait_for(lambda log: [x for x in log if isinstance(x, m.Cancel)])
        cancelled = {tid for c in cancels for tid in c.ids}
        assert {ids[3], ids[4]} <= cancelled and ids[1] not in cancelled, cancelled


def test_map_stopped_early_cancels_what_is_left(manual: FakeMaster) -> None:
    with connect(manual) as client:
        it = client.map(tasks.slow, range(3))
        entries = manual.wait_submitted(3)
        manual.send(m.Accepted([e[0] for e in entries], {}))
        manual.send(result_of(entries[0][0], "first"))
        assert next(it) == "first"
        it.close()
        cancel = manual.wait_for(lambda log: [x for x in log if isinstance(x, m.Cancel)])[0]
        assert sorted(cancel.ids) == sorted(e[0] for e in entries[1:])


def test_executor_map_submit_and_shutdown(master: FakeMaster) -> None:
    with zq.Executor(master.endpoint) as ex:
        assert list(ex.map(tasks.add, [1, 2], [3, 4])) == [4, 6]
        f = ex.submit(tasks.add, 5, 5)
    assert f.result(timeout=0) == 10  # shutdown(wait=True) waited for it
    with pytest.raises(RuntimeError):
        ex.submit(tasks.add, 1, 1)


def test_executor_shutdown_can_cancel_what_is_left(manual: FakeMaster) -> None:
    ex = zq.Executor(manual.endpoint)
    f = ex.submit(tasks.slow, 1)
    tid = manual.wait_submitted(1)[0][0]
    manual.send(m.Accepted([tid], {}))
    # cancel_futures asks the master whether the task runs yet (Future.cancel()):
    # this fake master answers "queued", so it is cancelled.
    shutdown = threading.Thread(target=ex.shutdown, kwargs={"cancel_futures": True})
    shutdown.start()
    # (a 1.5 client first asks cancel_unstarted; this fake master refuses it as a 1.4
    # master does, and the client falls back to get)
    ask = manual.wait_for(lambda log: [x for x in log if isinstance(x, m.Query)
                                       and x.kind == "get"])[0]
    assert ask.args == {"id": tid}
    manual.send(m.Reply(ask.request_id, True, {"id": tid, "state": "queued"}))
    shutdown.join(10)
    assert not shutdown.is_alive()
    assert f.cancelled()
    assert manual.wait_for(lambda log: [x for x in log if isinstance(x, m.Cancel)])[0].ids == [tid]


# --- futures in concurrent.futures helpers ---------------------------------------------------


def test_wait_and_as_completed(master: FakeMaster, manual: FakeMaster) -> None:
    with zq.Client(master.endpoint) as client:
        fs = [client.submit(tasks.add, i, i) for i in range(50)]
        done, not_done = cf.wait(fs, timeout=5)
        assert len(done) == 50 and not not_done
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=5)) == \
            [2 * i for i in range(50)]
    with connect(manual) as client:  # waiters installed before the results arrive
        a, b = client.submit(tasks.slow, "a"), client.submit(tasks.slow, "b")
        entries = manual.wait_submitted(2)
        finished = []
        waiter = threading.Thread(target=lambda: finished.extend(
            cf.as_completed([a, b], timeout=5)))
        waiter.start()
        # as_completed yields what is done when it starts in set order, not in the order
        # it finished: B goes only once the waiter watches both (cf.Future._waiters).
        until(lambda: a._waiters and b._waiters)
        manual.send(result_of(entries[1][0], "B"))
        first, _ = cf.wait([a, b], timeout=5, return_when=cf.FIRST_COMPLETED)
        assert first == {b}
        manual.send(result_of(entries[0][0], "A"))
        waiter.join(5)
        assert finished == [b, a] and a.result(0) == "A"


# --- acceptance: back-pressure, REJECTED, BUSY, same_as ----------------------------------------


def test_submit_blocks_at_max_unacked_until_accepted(manual: FakeMaster) -> None:
    with connect(manual, batch_size=2, max_unacked=4) as client:
        for i in range(4):
            client.submit(tasks.slow, i)
        entries = manual.wait_submitted(4)
        returned = threading.Event()
        fifth = threading.Thread(target=lambda: (client.submit(tasks.slow, 4), returned.set()))
        fifth.start()
        assert not returned.wait(0.3), "submit() should block while 4 are unacknowledged"
        manual.send(m.Accepted([entries[0][0], entries[1][0]], {}))
        assert returned.wait(5)
        fifth.join(5)
        assert len(manual.wait_submitted(5)) == 5


def test_rejected_submission_raises_rejected(manual: FakeMaster) -> None:
    with connect(manual) as client:
        f = client.submit(tasks.add, 1, 2)
        tid = manual.wait_submitted(1)[0][0]
        manual.send(m.RejectedEntries([(tid, "queue is closed")]))
        with pytest.raises(zq.Rejected, match="queue is closed"):
            f.result(timeout=5)


def test_busy_submissions_are_sent_again(manual: FakeMaster) -> None:
    with connect(manual) as client:
        f = client.submit(tasks.slow, 1)
        tid = manual.wait_submitted(1)[0][0]
        manual.send(m.Busy([tid], 0.05))
        again = manual.wait_submitted(2)
        assert [e[0] for e in again] == [tid, tid]
        manual.send(m.Accepted([tid], {}))
        manual.send(result_of(tid, 7))
        assert f.result(timeout=5) == 7


def test_same_as_makes_the_future_follow_the_existing_task(manual: FakeMaster) -> None:
    with connect(manual) as client:
        f = client.options(key="k1").submit(tasks.slow, 1)
        entry = manual.wait_submitted(1)[0]
        assert entry[3] == {"key": "k1"}
        manual.send(m.Accepted([entry[0]], {entry[0]: "existing-1"}))
        watch = manual.wait_for(lambda log: [x for x in log if isinstance(x, m.Watch)])[0]
        assert watch.ids == ["existing-1"]
        manual.send(result_of("existing-1", "shared"))
        assert f.result(timeout=5) == "shared"
        assert f.id == "existing-1"


# --- options --------------------------------------------------------------------------------


def test_options_and_task_defaults_reach_the_wire(manual: FakeMaster) -> None:
    with connect(manual) as client:
        client.submit(tasks.decorated, 1)
        first = client.submit(tasks.slow, 0)
        eta = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        client.options(queue="q", priority=5, retries=1, timeout=2, delay=dt.timedelta(3),
                       eta=eta, key="k", after=[first, "other-id"], retry_on=[KeyError],
                       retry_backoff=0.5, result_ttl=60).submit(tasks.slow, 1)
        entries = manual.wait_submitted(3)
    assert entries[0][3] == {"queue": "special", "priority": 3, "retries": 2, "timeout": 7.0,
                             "retry_on": ["ValueError"]}
    assert entries[1][3] == {}
    assert entries[2][3] == {"queue": "q", "priority": 5, "retries": 1, "timeout": 2.0,
                             "delay": 3 * 86400.0, "eta": eta.timestamp(), "key": "k",
                             "after": [first.id, "other-id"], "retry_on": ["KeyError"],
                             "retry_backoff": 0.5, "result_ttl": 60.0}


def test_bad_options_fail_when_given(manual: FakeMaster) -> None:
    with connect(manual) as client:
        with pytest.raises(zq.ConfigError):
            client.options(colour="red")
        with pytest.raises(zq.ConfigError):
            client.options(priority="high")
        with pytest.raises(zq.ConfigError):
            client.options(key=5)


# --- WATCH, queries ---------------------------------------------------------------------------


def test_future_by_id_sends_watch_and_resolves(manual: FakeMaster) -> None:
    with connect(manual) as client:
        f = client.future("made-elsewhere")
        watch = manual.wait_for(lambda log: [x for x in log if isinstance(x, m.Watch)])[0]
        assert watch.ids == ["made-elsewhere"]
        manual.send(result_of("made-elsewhere", {"a": 1}))
        assert f.result(timeout=5) == {"a": 1}
        unknown = client.future("nobody")
        manual.wait_for(lambda log: sum(isinstance(x, m.Watch) for x in log) == 2)
        manual.send(m.RejectedEntries([("nobody", "unknown task")]))
        with pytest.raises(zq.Rejected):
            unknown.result(timeout=5)


def test_queries(manual: FakeMaster) -> None:
    manual.replies["status"] = (True, {"workers": [], "master_id": "m1"})
    manual.replies["get"] = (False, "unknown task 'x'")
    manual.replies["tasks"] = (True, [])
    with connect(manual) as client:
        assert client.status()["master_id"] == "m1"
        with pytest.raises(zq.Rejected, match="unknown task"):
            client.get("x")
        assert client.tasks(state=State.FAILED, limit=5) == []
        query = [x for x in manual.of(m.Query) if x.kind == "tasks"][0]
        assert query.args == {"state": "failed", "limit": 5}
        with pytest.raises(zq.ConnectionLost):
            client.query("purge", timeout=0.2, state="failed", older_than=1.0)


# --- liveness and reconnects ------------------------------------------------------------------


def test_idle_client_sends_heartbeats() -> None:
    fm = FakeMaster()
    try:
        with connect(fm, **FAST):
            fm.wait_for(lambda log: sum(isinstance(x, m.Heartbeat) for x in log) >= 3)
    finally:
        fm.stop()


def test_master_restart_resends_unacked_and_watches_the_rest() -> None:
    first = FakeMaster(accept=False)
    with connect(first, **FAST) as client:
        a, b, c = (client.submit(tasks.slow, i) for i in range(3))
        first.wait_submitted(3)
        first.send(m.Accepted([a.id, b.id], {}))  # c stays unacknowledged
        first.wait_for(lambda log: any(isinstance(x, m.Heartbeat) for x in log))
        port = first.port
        first.stop()
        second = FakeMaster(port=port, accept=False)
        try:
            resent = second.wait_submitted(1)
            assert [e[0] for e in resent] == [c.id]
            watched = second.wait_for(
                lambda log: {i for x in log if isinstance(x, m.Watch) for i in x.ids})
            assert watched == {a.id, b.id}
            second.send(m.Accepted([c.id], {}))
            second.send(m.Result([(f.id, int(State.SUCCEEDED), serde.encode_value(n))
                                  for n, f in enumerate((a, b, c))]))
            assert [f.result(timeout=5) for f in (a, b, c)] == [0, 1, 2]
        finally:
            second.stop()


def test_silent_master_is_left_for_a_fresh_socket() -> None:
    fm = FakeMaster(accept=False, heartbeat=False)  # alive but mute
    try:
        with connect(fm, **FAST) as client:
            f = client.submit(tasks.slow, 1)
            entries = fm.wait_submitted(2, timeout=5)  # the same SUBMIT, sent again
            assert entries[0][0] == entries[1][0] == f.id
            fm.heartbeat = True
            fm.send(m.Accepted([f.id], {}))
            fm.send(result_of(f.id, "ok"))
            assert f.result(timeout=5) == "ok"
    finally:
        fm.stop()


# --- closing ------------------------------------------------------------------------------------


def test_close_flushes_submissions_and_fails_waiting_futures(manual: FakeMaster) -> None:
    client = zq.Client(manual.endpoint)
    f = client.submit(tasks.slow, 1)
    closer = threading.Thread(target=client.close, kwargs={"timeout": 5})
    closer.start()
    tid = manual.wait_submitted(1)[0][0]
    manual.send(m.Accepted([tid], {}))
    closer.join(10)
    assert not closer.is_alive() and not io_threads()
    with pytest.raises(zq.ConnectionLost):
        f.result(timeout=1)
    with pytest.raises(zq.ZqError):
        client.submit(tasks.add, 1, 2)
    client.close()  # twice is fine


def test_flush_waits_until_every_submission_is_acknowledged(manual: FakeMaster) -> None:
    with connect(manual) as client:
        assert client.flush(0)  # nothing submitted
        f = client.submit(tasks.add, 1, 2)
        tid = manual.wait_submitted(1)[0][0]
        assert not client.flush(0.1)  # sent, not acknowledged
        manual.send(m.Accepted([tid], {}))
        assert client.flush(5) and not f.done()  # acknowledged, no result yet
        g = client.submit(tasks.add, 2, 2)
        manual.send(m.RejectedEntries([(manual.wait_submitted(2)[1][0], "no")]))
        assert client.flush(5)  # a rejection is an answer too
        with pytest.raises(zq.Rejected):
            g.result(timeout=1)
    assert not client.flush(0)  # closed


def test_a_cancel_just_before_close_still_reaches_the_master(manual: FakeMaster) -> None:
    for i in range(10):  # the close used to drop it now and then (linger 0)
        client = zq.Client(manual.endpoint)
        client.future(f"t{i}").revoke()  # cancel() would first ask the master
        client.close(timeout=1)
    manual.wait_for(lambda log: {i for x in log if isinstance(x, m.Cancel) for i in x.ids}
                    == {f"t{i}" for i in range(10)})
