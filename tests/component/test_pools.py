"""The three pools driven directly (no worker, no sockets): results, errors, retry_on,
unknown tasks, streaming, progress, current_task(), time limits, crashes and cancel."""

from __future__ import annotations

import select
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from zq.core import serde
from zq.core.messages import Outcome
from zq.errors import ConfigError
from zq.pools import AsyncPool, Pool, ProcessPool, ThreadPool, classify, error_payload, make_pool

APP = "tests.apps.worker_tasks"
POOLS = ["process", "thread", "async"]


def task(task_id: str, fn: str, *args: Any, timeout: float | None = None,
         retry_on: list[str] | None = None, attempt: int = 1) -> tuple:
    name = fn if ":" in fn or fn == "custom-name" else f"{APP}:{fn}"
    return (task_id, attempt, name, serde.encode_call(args, {}), timeout, retry_on)


class Driver:
    """Runs a pool's side of the worker loop: poll its fds, collect, remember everything."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.results: dict[str, tuple] = {}
        self.order: list[str] = []
        self.partials: list[tuple] = []
        self.progress: list[tuple] = []
        self.returned: list[str] = []
        self.collects = 0
        self._poll = select.poll()
        self._fds: set[int] = set()

    def _sync(self) -> None:
        fds = set(self.pool.fds())
        for fd in self._fds - fds:
            self._poll.unregister(fd)
        for fd in fds - self._fds:
            self._poll.register(fd, select.POLLIN)
        self._fds = fds

    def pump(self, until: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not until():
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"timed out waiting for {what or until}; "
                                     f"results so far: {sorted(self.results)}")
            self._sync()
            nd = self.pool.next_deadline(now)
            wait = min(deadline, nd if nd is not None else deadline, now + 0.5) - now
            events = self._poll.poll(max(0.0, wait) * 1000)
            report = self.pool.collect(time.monotonic(), {fd for fd, _ in events})
            if report is None:
                continue
            self.collects += 1
            for e in report.results:
                assert e[0] not in self.results, f"two outcomes for {e[0]}"
                self.results[e[0]] = tuple(e)
                self.order.append(e[0])
            self.partials += [tuple(p) for p in report.partials]
            ids = [p[0] for p in report.progress]
            assert len(ids) == len(set(ids)), "progress is coalesced per task"
            self.progress += [tuple(p) for p in report.progress]
            self.returned += report.returned

    def wait_for(self, *ids: str, timeout: float = 10.0) -> list[tuple]:
        self.pump(lambda: all(i in self.results for i in ids), timeout, f"results of {ids}")
        return [self.results[i] for i in ids]

    def run(self, *entries: tuple, timeout: float = 10.0) -> list[tuple]:
        self.pool.submit(list(entries))
        return self.wait_for(*(e[0] for e in entries), timeout=timeout)

    def wait_started(self, task_id: str, timeout: float = 10.0) -> None:
        """Tasks used with this report progress(0, 1) first thing."""
        self.pump(lambda: any(p[0] == task_id for p in self.progress), timeout,
                  f"{task_id} to start")


def value(e: tuple) -> Any:
    assert e[2] == Outcome.OK, serde.decode_error(e[3])
    return serde.decode_value(e[3])


def error(e: tuple) -> dict[str, str]:
    assert e[2] in (Outcome.ERROR, Outcome.FATAL), e
    return serde.decode_error(e[3])


def started(kind: str, concurrency: int = 2) -> Pool:
    pool = make_pool(kind, [APP], concurrency)
    pool.start()
    return pool


@pytest.fixture(params=POOLS)
def drv(request: pytest.FixtureRequest) -> Iterator[Driver]:
    pool = started(request.param)
    yield Driver(pool)
    pool.close(kill=True)


@pytest.fixture
def make_driver() -> Iterator[Callable[..., Driver]]:
    pools: list[Pool] = []

    def make(kind: str, concurrency: int = 2) -> Driver:
        pool = started(kind, concurrency)
        pools.append(pool)
        return Driver(pool)

    yield make
    for p in pools:
        p.close(kill=True)


# --- pure helpers ---------------------------------------------------------------------

class Sub(KeyError):
    pass


@pytest.mark.parametrize("retry_on, exc, expected", [
    (None, ValueError(), Outcome.ERROR),  # nil: everything may be retried
    (["ValueError"], ValueError(), Outcome.ERROR),
    (["LookupError"], Sub(), Outcome.ERROR),  # a base class's name counts
    (["Sub"], Sub(), Outcome.ERROR),
    (["TypeError"], ValueError(), Outcome.FATAL),
    ([], ValueError(), Outcome.FATAL),
])
def test_classify_by_class_names_in_the_mro(retry_on: list[str] | None, exc: Exception,
                                            expected: Outcome) -> None:
    assert classify(exc, retry_on) == expected


def test_error_payload_has_type_message_and_traceback_without_our_frame() -> None:
    def runner() -> None:
        try:
            inner()
        except Exception as e:
            payload.append(error_payload(e))

    def inner() -> None:
        raise ValueError("bad value")

    payload: list[bytes] = []
    runner()
    info = serde.decode_error(payload[0])
    assert (info["type"], info["message"]) == ("ValueError", "bad value")
    assert "in inner" in info["traceback"] and "in runner" not in info["traceback"]
    assert info["traceback"].rstrip().endswith("ValueError: bad value")


def test_unknown_pool_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        make_pool("gevent", [APP], 1)


def test_make_pool_kinds() -> None:
    assert isinstance(make_pool("process", [APP], 1), ProcessPool)
    assert isinstance(make_pool("thread", [APP], 1), ThreadPool)
    assert isinstance(make_pool("async", [APP], 1), AsyncPool)


# --- every pool -----------------------------------------------------------------------

def test_result(drv: Driver) -> None:
    a, b = drv.run(task("a", "add", 1, 2), task("b", "custom-name", 21))
    assert (value(a), a[1]) == (3, 1)
    assert value(b) == 42


def test_exception_becomes_an_error_payload(drv: Driver) -> None:
    (e,) = drv.run(task("e", "fail", "ValueError", "boom"))
    assert e[2] == Outcome.ERROR
    info = error(e)
    assert (info["type"], info["message"]) == ("ValueError", "boom")
    assert "worker_tasks.py" in info["traceback"] and "ValueError: boom" in info["traceback"]


def test_retry_on_decides_error_or_fatal(drv: Driver) -> None:
    got = drv.run(task("none", "fail", "ValueError", "x"),
                  task("same", "fail", "ValueError", "x", retry_on=["ValueError"]),
                  task("base", "fail_custom", "x", retry_on=["LookupError"]),
                  task("other", "fail", "ValueError", "x", retry_on=["TypeError"]),
                  task("empty", "fail", "ValueError", "x", retry_on=[]))
    assert [e[2] for e in got] == [Outcome.ERROR, Outcome.ERROR, Outcome.ERROR,
                                   Outcome.FATAL, Outcome.FATAL]
    assert error(got[2])["type"] == "CustomError"


def test_unknown_task_is_fatal_and_the_pool_keeps_serving(drv: Driver) -> None:
    bad, missing, good = drv.run(task("u", "tests.apps.nope:fn"), task("m", "no_such_function"),
                                 task("g", "add", 1, 1))
    for e in (bad, missing):
        assert e[2] == Outcome.FATAL and error(e)["type"] == "UnknownTask"
    assert "tests.apps.nope" in error(bad)["message"]
    assert value(good) == 2


def test_undecodable_arguments_are_fatal(drv: Driver) -> None:
    (e,) = drv.run(("x", 1, f"{APP}:add", b"\xc1", None, None))
    assert e[2] == Outcome.FATAL and error(e)["type"] == "SerializationError"


def test_unserialisable_result_is_a_serialization_error(drv: Driver) -> None:
    plain, strict = drv.run(task("p", "unserialisable"),
                            task("s", "unserialisable", retry_on=["ValueError"]))
    assert plain[2] == Outcome.ERROR and error(plain)["type"] == "SerializationError"
    assert strict[2] == Outcome.FATAL


def test_generator_streams_chunks_then_its_return_value(drv: Driver) -> None:
    (e,) = drv.run(task("g", "chunks", 3))
    assert value(e) == "done"
    mine = [p for p in drv.partials if p[0] == "g"]
    assert [(p[1], p[2], serde.decode_value(p[3])) for p in mine] == [
        (1, 0, {"i": 0}), (1, 1, {"i": 1}), (1, 2, {"i": 2})]


def test_current_task_knows_id_attempt_and_name(drv: Driver) -> None:
    (e,) = drv.run(task("who", "whoami", attempt=3))
    assert value(e) == ["who", 3, f"{APP}:whoami", False]


def test_progress_is_reported_latest_first(drv: Driver) -> None:
    (e,) = drv.run(task("p", "progress", 50))
    assert value(e) == 50
    mine = [p for p in drv.progress if p[0] == "p"]
    assert mine and mine[-1] == ("p", 1, 50.0, 50.0)
    assert len(mine) <= drv.collects  # at most one per task per report


def test_cancel_of_a_queued_task_drops_it(make_driver: Callable[..., Driver]) -> None:
    for kind in POOLS:
        drv = make_driver(kind, concurrency=1)
        waiter = "wait_cancelled" if kind == "thread" else "sleep_then_add"
        args = (10.0,) if kind == "thread" else (10.0, 1, 2)
        drv.pool.submit([task("long", waiter, *args), task("queued", "add", 1, 1)])
        drv.wait_started("long")
        drv.pool.cancel(["queued"])
        (q,) = drv.wait_for("queued")
        assert (q[2], q[3]) == (Outcome.CANCELLED, b""), kind
        drv.pool.cancel(["long"])
        (lg,) = drv.wait_for("long", timeout=5.0)
        assert lg[2] == Outcome.CANCELLED, kind


def test_withdraw_unstarted_gives_back_queued_tasks(make_driver: Callable[..., Driver],
                                                   tmp_path: Path) -> None:
    for kind in POOLS:
        drv = make_driver(kind, concurrency=1)
        gate = tmp_path / f"gate-{kind}"  # "run" holds the single runner until it opens
        drv.pool.submit([task("run", "wait_for_file", str(gate)),
                         task("q1", "add", 1, 1), task("q2", "add", 2, 2)])
        drv.wait_started("run")
        now = drv.pool.withdraw_unstarted()
        gate.touch()
        drv.wait_for("run")
        drv.pump(lambda: set(now) | set(drv.returned) | set(drv.results) >= {"q1", "q2"},  # noqa: B023 - called in this iteration
                 what="withdrawn tasks")
        given_back = set(now) | set(drv.returned)
        assert given_back == {"q1", "q2"} - set(drv.results), kind
        assert given_back, kind  # the single runner was busy: nothing else started


# --- process pool ---------------------------------------------------------------------

def test_process_timeout_kills_and_replaces_the_child(make_driver: Callable[..., Driver],
                                                       tmp_path: Path) -> None:
    drv = make_driver("process", concurrency=1)
    (before,) = drv.run(task("p1", "pid"))
    never = str(tmp_path / "never-opened")  # the task would wait for it 60 s
    (late, after) = drv.run(task("slow", "wait_for_file", never, 60, timeout=0.3),
                            task("p2", "pid"))
    assert late[2] == Outcome.ERROR and error(late)["type"] == "TaskTimeout"
    assert "0.3" in error(late)["message"]
    assert value(after) != value(before)  # a fresh child ran the next task


def test_process_crash_loses_only_its_own_task(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver("process", concurrency=2)
    drv.run(*[task(f"warm{i}", "add", i, i) for i in range(50)])  # many per child now
    got = drv.run(task("other", "sleep_then_add", 0.3, 1, 2), task("exit", "crash", 3),
                  task("kill", "kill_self"), *[task(f"q{i}", "add", i, 1) for i in range(20)])
    other, exited, killed = got[:3]
    assert value(other) == 3
    # a lost attempt (outcome 3 the master did not ask for), not a failure: issue 10 #6
    assert (exited[2], exited[3]) == (Outcome.CANCELLED, b"")
    assert (killed[2], killed[3]) == (Outcome.CANCELLED, b"")
    assert [value(e) for e in got[3:]] == [i + 1 for i in range(20)]


def test_process_cancel_of_a_running_task_kills_its_child(
        make_driver: Callable[..., Driver]) -> None:
    drv = make_driver("process", concurrency=1)
    (before,) = drv.run(task("p1", "pid"))
    drv.pool.submit([task("long", "sleep_then_add", 30, 1, 2)])
    drv.wait_started("long")
    drv.pool.cancel(["long"])
    (e,) = drv.wait_for("long", timeout=5)
    assert (e[2], e[3]) == (Outcome.CANCELLED, b"")
    (after,) = drv.run(task("p2", "pid"))
    assert value(after) != value(before)


def test_process_async_functions_run_too(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver("process", concurrency=1)
    a, g = drv.run(task("a", "async_add", 2, 3), task("g", "async_chunks", 3))
    assert value(a) == 5 and value(g) is None
    assert [serde.decode_value(p[3]) for p in drv.partials if p[0] == "g"] == [0, 1, 2]


def test_process_idle_child_takes_work_queued_behind_a_long_task(
        make_driver: Callable[..., Driver], tmp_path: Path) -> None:
    drv = make_driver("process", concurrency=2)
    drv.run(*[task(f"warm{i}", "noop") for i in range(200)])  # both children hold many now
    gate = tmp_path / "gate"
    quick = [task(f"q{i}", "add", i, 0) for i in range(40)]
    drv.pool.submit([task("long", "wait_for_file", str(gate)), *quick])
    drv.wait_for(*(q[0] for q in quick))  # while the long task still waits: not after it
    assert "long" not in drv.results
    gate.touch()
    assert value(drv.wait_for("long")[0]) == "opened"


def test_process_pool_with_a_bad_app_fails_to_start() -> None:
    pool = make_pool("process", ["tests.apps.no_such_module"], 1)
    with pytest.raises(ConfigError, match="no_such_module"):
        pool.start()


# --- thread and async pools -----------------------------------------------------------

def test_thread_timeout_is_reported_at_the_deadline_and_the_pool_keeps_n_threads(
        make_driver: Callable[..., Driver], tmp_path: Path) -> None:
    """docs/TASKS.md, thread pool: the task is reported as timed out at once,
    current_task().cancelled becomes True, a fresh thread takes its place, and whatever
    the old thread returns is discarded."""
    drv = make_driver("thread", concurrency=1)
    gate, told = tmp_path / "gate", tmp_path / "told"
    late, nxt = drv.run(task("slow", "wait_for_file_then_tell", str(gate), str(told),
                             timeout=0.2), task("n", "add", 1, 1))
    assert late[2] == Outcome.ERROR and error(late)["type"] == "TaskTimeout"
    assert value(nxt) == 2  # while the old thread is still stuck: a new thread ran it
    assert not told.exists()
    gate.touch()  # the stuck thread goes on and returns "late value"
    drv.pump(told.exists, what="the old thread to finish")
    assert told.read_text() == "True"  # it could see it was cancelled
    (again,) = drv.run(task("n2", "add", 2, 2))  # a pump after the late return:
    assert value(again) == 4 and drv.results["slow"] == late  # ... discarded (Driver fails
    assert drv.order.count("slow") == 1                         # on a second outcome)


def test_thread_cancel_is_cooperative(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver("thread", concurrency=1)
    drv.pool.submit([task("c", "wait_cancelled", 10.0), task("g", "chunks", 10**6)])
    drv.wait_started("c")
    drv.pool.cancel(["c"])
    (c,) = drv.wait_for("c")
    assert (c[2], c[3]) == (Outcome.CANCELLED, b"")
    drv.pump(lambda: any(p[0] == "g" for p in drv.partials), what="the generator to start")
    drv.pool.cancel(["g"])  # a generator stops at its next yield
    (g,) = drv.wait_for("g")
    assert g[2] == Outcome.CANCELLED


def test_async_pool_runs_coroutines_concurrently_with_timeouts(
        make_driver: Callable[..., Driver], tmp_path: Path) -> None:
    drv = make_driver("async", concurrency=11)
    gate = tmp_path / "gate"
    ids = [f"s{i}" for i in range(10)]
    drv.pool.submit([task(i, "async_wait_for_file", str(gate)) for i in ids]
                    + [task("late", "async_wait_for_file", str(gate), timeout=0.2)])
    assert error(drv.wait_for("late")[0])["type"] == "TaskTimeout"
    started = lambda: {p[0] for p in drv.progress} >= set(ids)  # noqa: E731
    drv.pump(started, what="all ten to start")  # ten at once, not one after the other
    assert not set(ids) & set(drv.results)
    gate.touch()
    assert [value(e) for e in drv.wait_for(*ids)] == ["opened"] * 10


def test_async_pool_coroutine_errors_generators_and_context(
        make_driver: Callable[..., Driver]) -> None:
    drv = make_driver("async", concurrency=2)
    fail, gen, who = drv.run(task("f", "async_fail", "no"), task("g", "async_chunks", 3),
                             task("w", "async_whoami", attempt=2))
    assert fail[2] == Outcome.ERROR and error(fail)["message"] == "no"
    assert [serde.decode_value(p[3]) for p in drv.partials if p[0] == "g"] == [0, 1, 2]
    assert value(gen) is None
    assert value(who) == ["w", 2, f"{APP}:async_whoami"]


def test_async_cancel_cancels_the_coroutine(make_driver: Callable[..., Driver]) -> None:
    drv = make_driver("async", concurrency=2)
    drv.pool.submit([task("c", "async_sleep", 30)])
    drv.wait_started("c")
    drv.pool.cancel(["c"])
    (c,) = drv.wait_for("c")
    assert (c[2], c[3]) == (Outcome.CANCELLED, b"")
