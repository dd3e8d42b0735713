"""The thread pool's one-lock hand-off (a thread ends its task and takes the next under
one lock; outcomes gather until the loop's next collect): every outcome comes back
once, a task's chunks never after its result, started ids are only of tasks still
running, and a cancel of queued tasks keeps the threads on the same queue."""

from __future__ import annotations

import select
import time
from pathlib import Path

from tests.component.test_pools import task, value
from zq.core import serde
from zq.core.messages import Outcome
from zq.pools import ThreadPool

APP = "tests.apps.worker_tasks"


def pump(pool: ThreadPool, until, timeout: float = 30.0) -> list:
    """collect() as the worker loop does; returns the reports."""
    poll = select.poll()
    for fd in pool.fds():
        poll.register(fd, select.POLLIN)
    reports = []
    deadline = time.monotonic() + timeout
    while not until(reports):
        assert time.monotonic() < deadline, "timed out"
        nd = pool.next_deadline(time.monotonic())
        events = poll.poll(0 if nd is not None and nd <= time.monotonic() else 50)
        report = pool.collect(time.monotonic(), {fd for fd, _ in events})
        if report is not None:
            reports.append(report)
    return reports


def results_of(reports) -> dict:
    out: dict = {}
    for r in reports:
        for e in r.results:
            assert e[0] not in out, f"two outcomes for {e[0]}"
            out[e[0]] = e
    return out


def test_many_tasks_on_many_threads_each_outcome_once() -> None:
    pool = ThreadPool((APP,), 4)
    pool.start()
    try:
        n = 3000
        for k in range(0, n, 100):
            pool.submit([task(f"t{i}", "add", i, 1) for i in range(k, k + 100)])
        reports = pump(pool, lambda rs: len(results_of(rs)) == n)
        got = results_of(reports)
        assert {i: value(got[f"t{i}"]) for i in range(n)} == {i: i + 1 for i in range(n)}
        done: set = set()
        for r in reports:  # started: only tasks whose outcome was not in yet
            assert not set(r.started) & done
            done |= {e[0] for e in r.results}
    finally:
        pool.close(kill=True)


def test_chunks_never_come_after_their_result() -> None:
    pool = ThreadPool((APP,), 3)
    pool.start()
    try:
        ids = [f"g{i}" for i in range(60)]
        pool.submit([task(i, "chunks", 20) for i in ids])
        reports = pump(pool, lambda rs: len(results_of(rs)) == len(ids))
        seen_result: set = set()
        chunks: dict = {i: [] for i in ids}
        for r in reports:
            for p in r.partials:
                assert p[0] not in seen_result, f"a chunk of {p[0]} after its result"
                chunks[p[0]].append(serde.decode_value(p[3]))
            seen_result |= {e[0] for e in r.results}
        assert all(c == [{"i": k} for k in range(20)] for c in chunks.values())
    finally:
        pool.close(kill=True)


def test_a_result_ending_between_the_two_takes_waits_for_its_chunks(tmp_path: Path) -> None:
    """Deterministic: right after the sink was read, the task yields one more chunk and
    ends. collect() reads the outcomes before the sink, so that result is reported with
    (or after) the chunk, never before it."""
    pool = ThreadPool((APP,), 1)
    pool.start()
    gate = tmp_path / "gate"
    sink = pool._sink
    take = sink.take
    state = {"armed": False, "fired": False}

    def take_then_finish():
        report = take()
        if state["armed"] and not state["fired"]:
            state["fired"] = True
            deadline = time.monotonic() + 10
            while not sink._report.partials:  # one more chunk is in, after this take
                assert time.monotonic() < deadline
                time.sleep(0.001)
            gate.touch()
            while not pool._done:  # and the task has ended
                assert time.monotonic() < deadline
                time.sleep(0.001)
        return report

    sink.take = take_then_finish  # type: ignore[method-assign]
    try:
        pool.submit([task("s", "stream_until_file", str(gate), 0.005)])
        first = pump(pool, lambda rs: any(r.partials for r in rs))
        state["armed"] = True
        rest = pump(pool, lambda rs: bool(results_of(rs)))
        late = pool.collect(time.monotonic(), set())  # whatever the sink still holds
        rest += [late] if late is not None else []
        assert state["fired"]
        chunks_after = [p for r in rest[rest.index(next(r for r in rest if r.results)) + 1:]
                        for p in r.partials]
        assert not chunks_after, "a chunk came after its task's result"
        assert first
    finally:
        pool.close(kill=True)


def test_cancel_of_queued_tasks_while_threads_work(tmp_path: Path) -> None:
    pool = ThreadPool((APP,), 1)
    pool.start()
    gate = str(tmp_path / "gate")
    try:
        pool.submit([task("held", "wait_for_file", gate)])
        pool.submit([task(f"q{i}", "add", i, 0) for i in range(10)])
        pool.cancel(["q3", "q7"])
        Path(gate).touch()
        got = results_of(pump(pool, lambda rs: len(results_of(rs)) == 11))
        assert got["q3"][2] == got["q7"][2] == Outcome.CANCELLED
        assert [value(got[f"q{i}"]) for i in range(10) if i not in (3, 7)] == [
            i for i in range(10) if i not in (3, 7)]
    finally:
        pool.close(kill=True)


def test_an_outcome_that_lands_while_collect_runs_still_wakes_the_loop(tmp_path: Path) -> None:
    """collect() takes the threads' outcomes, then empties the wake-up pipe: a task that
    ends between the two must not leave its result waiting for an unrelated wake-up (a
    heartbeat, seconds later). Reproduced by ending the task inside the sink's take."""
    gate = tmp_path / "gate"
    pool = ThreadPool((APP,), 1)
    pool.start()
    try:
        pool.submit([task("slow", "wait_for_file", str(gate))])
        pump(pool, lambda rs: any("slow" in r.started for r in rs))
        sink = pool._sink
        assert sink is not None
        take = sink.take

        def take_after_the_task_ends():
            gate.touch()
            deadline = time.monotonic() + 30
            while not pool._done:  # the thread ends the task now, in the gap
                assert time.monotonic() < deadline, "the task did not end"
                time.sleep(0.001)
            return take()

        sink.take = take_after_the_task_ends  # type: ignore[method-assign]
        report = pool.collect(time.monotonic(), set())
        sink.take = take  # type: ignore[method-assign]
        assert report is None or not report.results  # it ended after collect took outcomes
        readable, _, _ = select.select(pool.fds(), [], [], 0)
        now = time.monotonic()
        due = pool.next_deadline(now)
        assert readable or (due is not None and due <= now), \
            "a finished task's result waits for an unrelated wake-up"
        assert value(results_of(pump(pool, lambda rs: "slow" in results_of(rs)))["slow"]) \
            == "opened"
    finally:
        pool.close(kill=True)
