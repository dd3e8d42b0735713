"""The client's side of cancel-unless-started (protocol 1.5, zq.client.cancels): one
query per 10,000 ids; Future.cancel() settles as the master answered; an id the master
does not hold yet (not accepted) is cancelled locally; a master older than 1.5 (the
query answered ok=false) gets the behaviour of 1.4 (ask the state, CANCEL unless
running; a map's tasks left to run, or cancelled when the map is abandoned). No sockets:
a fake mailbox records what would be sent."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from zq.client import cancels
from zq.client.future import Future, cancel_all
from zq.client.mapping import MapRun
from zq.errors import ConnectionLost, Rejected

OLD_MASTER = Rejected("unknown query 'cancel_unstarted'; known: get, purge, ...")


class FakeMailbox:
    """What Future and MapRun use of a Mailbox; `answers` says what the master says."""

    def __init__(self, answers: dict[str, Any] | Exception | None = None,
                 states: dict[str, dict[str, Any]] | None = None) -> None:
        self.guard = threading.Lock()
        self.answers, self.states = answers, states or {}
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.cancelled: list[list[str]] = []  # CANCELs posted (ids)
        self.later: list[tuple[str, dict[str, Any], Any]] = []

    def ask(self, kind: str, **args: Any) -> Any:
        self.asked.append((kind, args))
        if kind == "get":
            return self.states[args["id"]]
        if isinstance(self.answers, Exception):
            raise self.answers
        return self.answers

    def ask_later(self, kind: str, args: dict[str, Any], sink: Any) -> None:
        self.later.append((kind, args, sink))

    def on_io_thread(self) -> bool:
        return False

    def cancel(self, ids: list[str], sink: Any) -> None:
        self.cancelled.append(list(ids))


def body(cancelled: list[str] = (), **kept: str) -> dict[str, Any]:  # type: ignore[assignment]
    return {"cancelled": list(cancelled), "kept": kept, "refused": []}


def test_a_cancelled_answer_settles_the_future_with_one_query() -> None:
    box = FakeMailbox(body(["t1"]))
    f = Future(box, "t1")  # type: ignore[arg-type]
    assert f.cancel() is True and f.cancelled() and f.done()
    assert box.asked == [("cancel_unstarted", {"ids": ["t1"]})]
    assert box.cancelled == []  # the master cancelled it: no CANCEL after it
    assert f.cancel() is True and len(box.asked) == 1  # cancelled already: no query


@pytest.mark.parametrize("why", ["running", "succeeded", "failed", "dead", "denied"])
def test_a_kept_task_is_not_cancelled(why: str) -> None:
    box = FakeMailbox(body(**{"t1": why}))
    f = Future(box, "t1")  # type: ignore[arg-type]
    assert f.cancel() is False and not f.cancelled() and not f.done()
    assert box.cancelled == []


def test_a_task_the_master_does_not_hold_yet_is_cancelled_here() -> None:
    """Not accepted yet (its SUBMIT still unacknowledged or held after BUSY): it cannot
    have started, and the client's CANCEL drops it from what it sends."""
    box = FakeMailbox(body(t1="unknown"))
    f = Future(box, "t1")  # type: ignore[arg-type]
    assert f.cancel() is True and f.cancelled()
    assert box.cancelled == [["t1"]]


@pytest.mark.parametrize("state, cancelled", [
    ({"state": "queued"}, True),
    ({"state": "running", "started": None}, True),  # waits in a worker's queue
    ({"state": "running", "started": 12.5}, False),
    ({"state": "succeeded"}, False),
])
def test_a_master_before_1_5_gets_the_old_state_then_cancel(state: dict[str, Any],
                                                            cancelled: bool) -> None:
    box = FakeMailbox(OLD_MASTER, {"t1": state})
    f = Future(box, "t1")  # type: ignore[arg-type]
    assert f.cancel() is cancelled
    assert [k for k, _ in box.asked] == ["cancel_unstarted", "get"]
    assert box.cancelled == ([["t1"]] if cancelled else [])


@pytest.mark.parametrize("answer", [ConnectionLost("no answer"), None, [], {"cancelled": 3},
                                    {"cancelled": [], "kept": []}])
def test_no_answer_or_a_malformed_one_falls_back_too(answer: Any) -> None:
    box = FakeMailbox(answer, {"t1": {"state": "running", "started": 1.0}})
    f = Future(box, "t1")  # type: ignore[arg-type]
    assert f.cancel() is False
    assert [k for k, _ in box.asked] == ["cancel_unstarted", "get"]


def test_entries_of_a_bad_type_in_the_answer_are_ignored_one_by_one() -> None:
    """A `cancelled` list holding a list or a dict (unhashable) must not raise out of
    Future.cancel(): those entries are not ids, so they cancel nothing."""
    box = FakeMailbox({"cancelled": [["t1"], {"t1": 1}, 7], "kept": {"t1": "running"}}, {})
    f = Future(box, "t1")  # type: ignore[arg-type]
    assert f.cancel() is False
    assert [k for k, _ in box.asked] == ["cancel_unstarted"]


def test_cancel_all_asks_once_per_ten_thousand() -> None:
    ids = [f"t{i}" for i in range(10_001)]
    box = FakeMailbox(body(ids[:5000], **{i: "running" for i in ids[5000:]}))
    futures = [Future(box, i) for i in ids]  # type: ignore[arg-type]
    cancel_all(futures)
    assert [len(a["ids"]) for _, a in box.asked] == [10_000, 1]
    assert sum(f.cancelled() for f in futures) == 5000
    assert cancels.batches(ids[:3]) == [ids[:3]] and cancels.batches([]) == []


def test_cancel_all_falls_back_per_future_with_an_old_master() -> None:
    box = FakeMailbox(OLD_MASTER, {"a": {"state": "queued"}, "b": {"state": "running"}})
    a, b = Future(box, "a"), Future(box, "b")  # type: ignore[arg-type]
    cancel_all([a, b])
    assert a.cancelled() and not b.cancelled()
    assert [k for k, _ in box.asked] == ["cancel_unstarted", "get", "get"]


def map_run(box: FakeMailbox, ids: list[str]) -> MapRun:
    run = MapRun(box, ("app:f", {}), iter(()), 1, 10)  # type: ignore[arg-type]
    run.index = {tid: pos for pos, tid in enumerate(ids)}
    run.count = len(ids)
    return run


def answer_later(box: FakeMailbox, ok: bool, answer: Any) -> None:
    for kind, _args, sink in box.later:
        assert kind == "cancel_unstarted"
        sink.on_reply(ok, answer)
    box.later.clear()


def test_cancel_rest_cancels_the_maps_unstarted_tasks_without_waiting() -> None:
    box = FakeMailbox()
    run = map_run(box, ["a", "b", "c", "d"])
    run.cancel_rest()
    assert [args for _, args, _ in box.later] == [{"ids": ["a", "b", "c", "d"]}]
    answer_later(box, True, body(["c"], a="running", b="succeeded", d="unknown"))
    # c's cancelled result comes from the master; d was never accepted: cancelled here
    assert box.cancelled == [["d"]] and run.done == {3: (5, b"")}
    assert set(run.index) == {"a", "b", "c"}


def test_an_old_master_leaves_a_shut_down_maps_tasks_running() -> None:
    box = FakeMailbox()
    run = map_run(box, ["a", "b"])
    run.cancel_rest()
    answer_later(box, False, OLD_MASTER.args[0])
    assert box.cancelled == [] and set(run.index) == {"a", "b"}


def test_an_abandoned_map_cancels_only_what_has_not_started() -> None:
    box = FakeMailbox()
    run = map_run(box, ["a", "b", "c"])
    results = run.results(None)
    run.on_result("a", 3, b"\x01")  # a's result
    assert next(results) == 1
    results.close()  # left early (a break, a timeout)
    assert [args for _, args, _ in box.later] == [{"ids": ["b", "c"]}]
    answer_later(box, True, body(["c"], b="running"))
    assert box.cancelled == []  # b runs on, c was cancelled by the master


def test_an_abandoned_map_with_an_old_master_is_cancelled_as_before() -> None:
    box = FakeMailbox()
    run = map_run(box, ["a", "b", "c"])
    results = run.results(None)
    run.on_result("a", 3, b"\x01")
    assert next(results) == 1
    results.close()
    answer_later(box, False, OLD_MASTER.args[0])
    assert box.cancelled == [["b", "c"]]


def test_a_lost_or_expired_query_counts_as_no_answer() -> None:
    got: list[cancels.Answer] = []
    box = FakeMailbox()
    cancels.ask_later(box, ["a"], got.append)  # type: ignore[arg-type]
    cancels.ask_later(box, ["b"], got.append)  # type: ignore[arg-type]
    box.later[0][2].on_lost(ConnectionLost("gone"))
    box.later[1][2].on_expired()
    assert [a.unanswered for a in got] == [["a"], ["b"]]
