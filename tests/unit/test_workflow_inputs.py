"""Futures as arguments (issue 17): the master's rules for a task whose arguments take
other tasks' results (zq.core.workflows). It holds the task until its inputs succeed,
ships their result payloads with its TASK without reading them, fails it with
DependencyFailed when an input fails for good, cancels it when one is cancelled, keeps
an input's result until every task taking it is final (whatever the ttl), and all of
this survives a restart. Driven through the MasterCore harness, which validates the
core (the `kept` counts included) after every step."""

from __future__ import annotations

from typing import Any

from tests.unit.test_master_core import C2, ERR, FATAL, OK, W1, C, Harness, S, make
from zq.core import messages as m
from zq.core import queries, serde
from zq.core.parts import Refs
from zq.core.tasks import TaskRecord


def _task_payloads(h: Harness) -> dict[str, Any]:
    """Task id -> the payload its TASK entry carried, in the last flush."""
    return {e[0]: e[3] for _, msg in h.last.messages if isinstance(msg, m.Task)
            for e in msg.entries}


def _error(h: Harness, tid: str) -> dict[str, Any]:
    return serde.decode_error(h.s.tasks[tid].result)


def test_a_task_is_held_until_its_inputs_succeed_then_ships_their_results() -> None:
    h = make()
    h.hello(W1, credit=4)
    h.submit("a", "b")
    h.submit("c", inputs=["a", "b"])
    h.dispatch()
    h.out()
    assert h.state("c") is S.PENDING
    h.results(W1, ("a", 1, OK))
    h.dispatch()
    assert h.state("c") is S.PENDING
    h.results(W1, ("b", 1, OK))
    h.dispatch()
    h.out()
    sent = _task_payloads(h)["c"]
    assert type(sent) is Refs and sent.payload == b"args"
    assert sent.refs == [("a", b"ok:a"), ("b", b"ok:b")]


def test_an_input_that_already_succeeded_ships_at_once() -> None:
    h = make()
    h.hello(W1)
    h.submit("a")
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.out()
    h.submit("b", inputs=["a"], after=["a"])
    h.dispatch()
    h.out()
    assert _task_payloads(h)["b"].refs == [("a", b"ok:a")]


def test_a_task_without_inputs_ships_its_payload_as_it_is() -> None:
    h = make()
    h.hello(W1, credit=3)
    h.submit("a")
    h.submit("b", inputs=["a"])
    h.submit("plain", after=["a"])
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.dispatch()
    h.out()
    assert _task_payloads(h)["plain"] == b"args"


def test_an_input_that_fails_for_good_fails_the_task_with_dependency_failed() -> None:
    h = make()
    h.hello(W1)
    h.submit("a", retries=1)
    h.submit("b", inputs=["a"], rid=C2)
    h.dispatch()
    h.out()
    h.results(W1, ("a", 1, ERR))  # it will retry: b keeps waiting
    assert h.state("b") is S.PENDING
    h.later(1)
    h.tick()
    h.dispatch()
    h.results(W1, ("a", 2, ERR))
    out = h.out()
    assert (C2, "RESULT", [("b", S.FAILED, "DependencyFailed")]) in out
    err = _error(h, "b")
    assert err["input"] == "a" and "input task a (job) ended dead" in err["message"]
    assert serde.decode_error(err["cause"])["type"] == "ValueError"
    exc = serde.exception_from_error(err)
    assert type(exc).__name__ == "DependencyFailed" and exc.input == "a"  # type: ignore[attr-defined]
    assert isinstance(exc.__cause__, ValueError) and str(exc.__cause__) == "a broke"


def test_an_input_failed_already_fails_the_task_at_submit() -> None:
    h = make()
    h.hello(W1)
    h.submit("a")
    h.dispatch()
    h.results(W1, ("a", 1, FATAL))
    h.out()
    h.submit("b", inputs=["a"])
    assert h.out() == [(C, "ACCEPTED", ["b"]), (C, "RESULT", [("b", S.FAILED,
                                                                "DependencyFailed")])]


def test_a_failed_chain_names_the_first_failure_as_the_cause() -> None:
    h = make()
    h.hello(W1)
    h.submit("a")
    h.submit("b", inputs=["a"])
    h.submit("c", inputs=["b"])
    h.dispatch()
    h.results(W1, ("a", 1, FATAL))
    h.out()
    assert h.state("c") is S.FAILED
    err = _error(h, "c")
    assert err["input"] == "b" and "ValueError: a broke" in err["message"]
    assert serde.decode_error(err["cause"])["message"] == "a broke"


def test_a_cancelled_input_cancels_the_task() -> None:
    h = make()
    h.submit("a")
    h.submit("b", inputs=["a"], rid=C2)
    h.cancel("a")
    out = h.out()
    assert (C2, "RESULT", [("b", S.CANCELLED, "CancelledError")]) in out


def test_an_after_dependency_that_fails_still_cancels() -> None:
    """after= keeps its rule: only an input fails the task."""
    h = make()
    h.hello(W1, credit=2)
    h.submit("a", "x")
    h.submit("b", inputs=["a"], after=["x"])
    h.dispatch()
    h.results(W1, ("x", 1, FATAL))
    h.out()
    assert h.state("b") is S.CANCELLED


def test_unknown_and_forgotten_inputs_are_rejected() -> None:
    h = make(result_ttl=1.0)
    h.submit("b", inputs=["ghost"])
    assert h.out() == [(C, "REJECTED", ["b"])]
    h.hello(W1)
    h.submit("a")
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.later(5)
    h.heartbeat(W1)
    h.tick()
    h.out()
    assert "a" not in h.s.tasks
    h.submit("c", inputs=["a"])
    assert h.out() == [(C, "REJECTED", ["c"])]


def _keep_scenario(h: Harness) -> None:
    """a succeeds (result_ttl 1 s); c takes a and b, and b runs long."""
    h.hello(W1, credit=3)
    h.submit("a", result_ttl=1.0)
    h.submit("b")
    h.submit("c", inputs=["a", "b"])
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.out()


def test_a_result_is_kept_past_its_ttl_until_every_taker_is_final() -> None:
    h = make(durable=True)
    _keep_scenario(h)
    h.later(30)
    h.heartbeat(W1)
    h.tick()
    h.out()
    assert "a" in h.s.tasks and "a" not in h.last.deletes  # past its ttl, kept for c
    h.results(W1, ("b", 1, OK))
    h.dispatch()
    h.out()
    assert _task_payloads(h)["c"].refs == [("a", b"ok:a"), ("b", b"ok:b")]
    h.later(1)
    h.heartbeat(W1)
    h.tick()
    h.out()
    assert "a" in h.s.tasks  # c has started, not finished: a retry would need it
    h.results(W1, ("c", 1, OK))
    h.tick()
    h.out()
    assert "a" not in h.s.tasks and "a" in h.last.deletes  # released: expired at once


def test_a_kept_result_is_not_evicted_by_max_finished_nor_purged() -> None:
    h = make(max_finished=1)
    _keep_scenario(h)
    h.submit("x")
    h.dispatch()
    h.results(W1, ("x", 1, OK))
    h.tick()
    assert "a" in h.s.tasks and "x" not in h.s.tasks  # x made way, a is kept for c
    assert queries.purge(h.s, "succeeded", 0.0) == 0
    assert "a" in h.s.tasks


def test_a_task_retried_by_hand_takes_its_inputs_again() -> None:
    h = make()
    h.hello(W1, credit=3)
    h.submit("a", result_ttl=1.0)
    h.submit("b", inputs=["a"])
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.dispatch()
    h.results(W1, ("b", 1, FATAL))
    queries.retry(h.s, "b")
    assert h.s.kept == {"a": 1}
    h.later(30)
    h.heartbeat(W1)
    h.tick()
    h.dispatch()
    h.out()
    assert _task_payloads(h)["b"].refs == [("a", b"ok:a")]


def test_held_tasks_and_kept_results_survive_a_restart() -> None:
    h = make(durable=True)
    _keep_scenario(h)
    stored = {t.id: t for t in h.last.saves + h.last.updates}
    assert stored["c"].inputs == ["a", "b"]
    records = [TaskRecord(t.id, t.name, t.payload, state=t.state, attempt=t.attempt,
                          after=t.after, inputs=t.inputs, result=t.result,
                          result_ttl=t.result_ttl, updated=t.updated, seq=t.seq)
               for t in h.s.tasks.values()]
    h2 = make(durable=True)
    h2.wall = h.wall
    h2.s.advance(h2.now, h2.wall)
    h2.s.restore(records)
    assert h2.s.kept == {"a": 1, "b": 1}
    h2.hello(W1, credit=3)
    h2.later(30)  # past a's ttl and the recovery hold
    h2.heartbeat(W1)
    h2.tick()
    h2.dispatch()
    h2.out()
    assert "a" in h2.s.tasks and h2.state("c") is S.PENDING
    h2.results(W1, ("b", h2.attempt("b"), OK))  # b ran again after the restart
    h2.dispatch()
    h2.out()
    assert _task_payloads(h2)["c"].refs == [("a", b"ok:a"), ("b", b"ok:b")]


def test_an_input_id_given_twice_is_counted_and_released_consistently() -> None:
    h = make()
    h.hello(W1, credit=2)
    h.submit("a")
    h.submit("b", inputs=["a", "a"])
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.dispatch()
    h.results(W1, ("b", 1, OK))
    assert h.s.kept == {}


def test_a_chord_callback_is_checked_once_not_once_per_input(monkeypatch) -> None:
    """A task taking 2,000 results is released by counting: the full check of its
    dependencies (a scan of all of them) runs once, not once per input that succeeds
    (which made a 10,000-task chord quadratic)."""
    n = 2000
    h = make()
    h.hello(W1, credit=n)
    ids = [f"m{i}" for i in range(n)]
    h.s.on_submit(C, [(tid, "job", b"args", {}) for tid in ids])
    h.s.on_submit(C, [("cb", "job", b"args", {"inputs": ids})])
    h.dispatch()
    calls = []
    real = h.s._deps_done
    monkeypatch.setattr(h.s, "_deps_done", lambda t: calls.append(t.id) or real(t))
    w = h.s.touch_worker(W1)
    for tid in ids:  # one RESULT each: each release is a step of its own
        h.s.on_worker_results(w, [(tid, 1, int(OK), b"r")])
    assert calls.count("cb") == 1 and h.state("cb") is S.QUEUED
    h.dispatch()
    h.out()
    assert len(_task_payloads(h)["cb"].refs) == n
