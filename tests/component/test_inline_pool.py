"""The thread pool's inline running (ThreadPool inline_under, zq worker --inline-under),
driven directly as the worker loop drives it: which tasks run in the calling (loop)
thread and which go to pool threads, results, errors, streams, order, a task that turns
out long, time limits after the fact, and cancel / withdraw of what waits its turn."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.component.test_pools import Driver, error, task, value
from zq.core import serde
from zq.core.messages import Outcome
from zq.errors import ConfigError
from zq.pools import make_pool
from zq.pools import thread as thread_pool
from zq.pools.thread import INLINE_BUDGET, PROVEN_RUNS, STRIKES, ThreadPool

APP = "tests.apps.inline_tasks"
LOOP = threading.current_thread().name  # the thread that calls submit()/collect()
UNDER = 0.5  # the pool's inline_under
LONG = 0.55  # a task that sleeps this long is over it


def t(task_id: str, fn: str, *args: Any, timeout: float | None = None) -> tuple:
    return task(task_id, f"{APP}:{fn}", *args, timeout=timeout)


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    # Generous, so a short task on a loaded machine stays short; LONG sleeps past it.
    p = ThreadPool((APP,), 2, inline_under=UNDER)
    p.start()
    yield p
    p.close(kill=True)


def prove(drv: Driver, fn: str, *args: Any) -> None:
    """Run fn PROVEN_RUNS times one after the other, in pool threads: proven short."""
    for _ in range(PROVEN_RUNS):
        drv.run(t(f"prove-{len(drv.results)}", fn, *args))


def test_a_name_runs_in_threads_until_proven_short_then_inline(pool: ThreadPool) -> None:
    drv = Driver(pool)
    for i in range(PROVEN_RUNS):
        (e,) = drv.run(t(f"a{i}", "where", i))
        assert value(e) == ["zq-task", i]  # not proven yet: a pool thread
    entries = [t(f"b{i}", "where", i) for i in range(20)]
    drv.run(*entries)
    assert [value(drv.results[f"b{i}"]) for i in range(20)] == [[LOOP, i] for i in range(20)]
    assert drv.order[-20:] == [f"b{i}" for i in range(20)]  # in order


def test_without_inline_under_every_task_runs_in_a_thread() -> None:
    p = make_pool("thread", [APP], 1)
    p.start()
    try:
        drv = Driver(p)
        for i in range(PROVEN_RUNS + 3):
            (e,) = drv.run(t(f"a{i}", "where", i))
            assert value(e) == ["zq-task", i]
    finally:
        p.close(kill=True)


def test_errors_streams_and_progress_inline(pool: ThreadPool) -> None:
    drv = Driver(pool)
    prove(drv, "fail", "x")
    prove(drv, "chunks", 2)
    prove(drv, "progress_then", 0)
    (e,) = drv.run(t("f", "fail", "boom"))
    assert e[2] == Outcome.ERROR and error(e)["type"] == "ValueError"
    assert error(e)["message"] == "boom"
    (e,) = drv.run(t("s", "chunks", 3))
    assert value(e) == LOOP
    assert [serde.decode_value(p[3]) for p in drv.partials if p[0] == "s"] == [0, 1, 2]
    (e,) = drv.run(t("p", "progress_then", "done"))
    assert value(e) == "done"
    drv.pump(lambda: any(p[0] == "p" for p in drv.progress), what="p's progress")
    assert [p[2:] for p in drv.progress if p[0] == "p"] == [(1.0, 2.0)]


def test_nothing_runs_inline_while_a_thread_has_work(pool: ThreadPool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    drv = Driver(pool)
    prove(drv, "where")
    # "held" (never run before: not proven) waits in a thread for the gate; tasks proven
    # short may not run inline meanwhile, else the pool would run more than it would
    # without inline running, and out of order
    pool.submit([t("held", "where_unless_file", str(gate))])
    pool.submit([t("w1", "where", 1), t("w2", "where", 2)])  # held is queued or running
    drv.pump(lambda: "w1" in drv.results and "w2" in drv.results, what="w1 and w2")
    assert value(drv.results["w1"]) == ["zq-task", 1]
    assert value(drv.results["w2"]) == ["zq-task", 2]
    assert "held" not in drv.results
    gate.touch()
    assert value(drv.wait_for("held")[0]) == "zq-task"
    (e,) = drv.run(t("after", "where", 3))  # nothing left in the threads: inline again
    assert value(e) == [LOOP, 3]


def test_a_name_long_inline_goes_back_to_threads_and_after_strikes_stays(
        pool: ThreadPool) -> None:
    drv = Driver(pool)
    for strike in range(STRIKES):
        prove(drv, "where_after", 0)
        (e,) = drv.run(t(f"long{strike}", "where_after", LONG))  # over inline_under
        assert value(e) == LOOP  # proven short, so it ran inline: the loop waited
        (e,) = drv.run(t(f"next{strike}", "where_after", 0))
        assert value(e) == "zq-task"  # not proven any more
    prove(drv, "where_after", 0)
    for i in range(3):  # barred: threads only, however short
        (e,) = drv.run(t(f"after{i}", "where_after", 0))
        assert value(e) == "zq-task"


def test_long_inline_runs_far_apart_do_not_bar_a_name(pool: ThreadPool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded machine takes the CPU from a short task now and then: such runs, far
    apart, send the name back to the threads each time but never bar it."""
    monkeypatch.setattr(thread_pool, "STRIKE_WINDOW", 5)
    drv = Driver(pool)
    for strike in range(STRIKES + 1):
        prove(drv, "where_after", 0)
        for i in range(6):  # more than STRIKE_WINDOW inline runs since the last strike
            (e,) = drv.run(t(f"short{strike}-{i}", "where_after", 0))
            assert value(e) == LOOP
        (e,) = drv.run(t(f"long{strike}", "where_after", LONG))
        assert value(e) == LOOP
    prove(drv, "where_after", 0)
    (e,) = drv.run(t("still", "where_after", 0))
    assert value(e) == LOOP


def test_a_time_limit_overrun_inline_is_a_timeout_after_the_fact(pool: ThreadPool) -> None:
    drv = Driver(pool)
    prove(drv, "where_after", 0)
    (e,) = drv.run(t("ok", "where_after", 0, timeout=LONG))
    assert value(e) == LOOP
    (e,) = drv.run(t("late", "where_after", LONG + 0.05, timeout=LONG))
    assert e[2] == Outcome.ERROR and error(e)["type"] == "TaskTimeout"
    assert "inline" in error(e)["message"]


def test_a_thread_run_past_its_time_limit_counts_as_long(pool: ThreadPool) -> None:
    """A run abandoned at its deadline still ends some time later: its length resets the
    name's count of short runs, so it is not proven short by the runs around it."""
    drv = Driver(pool)
    name = f"{APP}:where_after"
    for i in range(PROVEN_RUNS - 1):
        drv.run(t(f"s{i}", "where_after", 0))
    (e,) = drv.run(t("late", "where_after", LONG, timeout=0.05))
    assert error(e)["type"] == "TaskTimeout"
    deadline = time.monotonic() + 10  # the abandoned thread returns after LONG seconds
    while pool._short.get(name) != 0:
        assert time.monotonic() < deadline, "the abandoned run was never counted"
        time.sleep(0.01)
    drv.run(t("s9", "where_after", 0))
    (e,) = drv.run(t("next", "where_after", 0))
    assert value(e) == "zq-task"  # one short run since the long one: not proven


def test_a_task_with_a_limit_under_inline_under_never_runs_inline(pool: ThreadPool) -> None:
    drv = Driver(pool)
    prove(drv, "where")
    (e,) = drv.run(t("tight", "where", 1, timeout=UNDER / 2))
    assert value(e) == ["zq-task", 1]


def test_what_waits_past_the_turns_budget_runs_later_cancels_and_withdraws(
        pool: ThreadPool) -> None:
    drv = Driver(pool)
    prove(drv, "where_after", 0.01)
    n = int(INLINE_BUDGET / 0.01) + 8
    entries = [t(f"q{i}", "where_after", 0.01) for i in range(n)]
    pool.submit(entries)  # the budget runs out after a few: the rest wait their turn
    waiting = [e[0] for e in pool._pending]
    assert len(waiting) >= 4 and pool.next_deadline(0.0) == 0.0
    pool.cancel([waiting[0]])
    assert pool.withdraw_unstarted() == waiting[1:]
    drv.pump(lambda: waiting[0] in drv.results, what="the cancelled one")
    assert drv.results[waiting[0]][2] == Outcome.CANCELLED
    ran = [e[0] for e in entries if e[0] not in waiting]
    drv.pump(lambda: all(i in drv.results for i in ran), what="the ones that ran")
    assert all(value(drv.results[i]) == LOOP for i in ran)
    assert not set(waiting[1:]) & set(drv.results)  # withdrawn: no outcome at all


def test_left_over_inline_work_runs_at_the_next_collect(pool: ThreadPool) -> None:
    drv = Driver(pool)
    prove(drv, "where_after", 0.01)
    n = int(INLINE_BUDGET / 0.01) + 5
    drv.run(*[t(f"r{i}", "where_after", 0.01) for i in range(n)])
    assert [value(drv.results[f"r{i}"]) for i in range(n)] == [LOOP] * n
    assert drv.order[-n:] == [f"r{i}" for i in range(n)]


def test_inline_under_is_for_the_thread_pool_only() -> None:
    with pytest.raises(ConfigError):
        make_pool("process", [APP], 1, inline_under=0.001)
    with pytest.raises(ConfigError):
        make_pool("async", [APP], 1, inline_under=0.001)
