"""The `get` query in detail (protocol 1.5, issue 15): the first bytes of a task's
arguments and their size, its parents and children, its latest streamed chunks and its
attempts, each bounded."""

from __future__ import annotations

from typing import Any

from tests.unit.test_master_core import ERR, OK, W1, Harness
from zq.core import detail, serde
from zq.core import master_events as ev
from zq.core import messages as m
from zq.core.access import Caller
from zq.core.messages import State
from zq.core.parts import Parts
from zq.core.tasks import TaskRecord

ADMIN = Caller(b"admin")


def get(h: Harness, tid: str) -> dict[str, Any]:
    h.s.on_query(ADMIN, 7, "get", {"id": tid})
    h.s.validate()
    replies = [msg for rid, msg in h.s.flush().messages if isinstance(msg, m.Reply)]
    assert len(replies) == 1 and replies[0].ok, replies
    return replies[0].body


def submit(h: Harness, tid: str, payload: Any = b"\x92\x90\x80", **opts: Any) -> None:
    h.s.on_submit(b"client-1", [(tid, "job", payload, opts)])
    h.s.validate()


def harness(credit: int = 10) -> Harness:
    h = Harness(durable=True)
    h.hello(W1, credit=credit)
    return h


def run(h: Harness) -> None:
    h.tick()
    h.dispatch()
    h.out()


# --- arguments ---------------------------------------------------------------------------

def test_get_shows_the_head_of_the_arguments_and_their_size() -> None:
    h = harness()
    small = serde.encode_call([1, "two"], {"x": 3})
    big = serde.encode_call(["y" * 10_000], {})
    submit(h, "small", small)
    submit(h, "big", big)
    one, two = get(h, "small"), get(h, "big")
    assert one["args_head"] == small and one["args_size"] == len(small)
    assert two["args_head"] == big[:detail.ARGS_HEAD] and two["args_size"] == len(big)
    assert len(two["args_head"]) == detail.ARGS_HEAD == 4096


def test_arguments_with_frames_show_the_body_and_count_every_byte() -> None:
    h = harness()
    payload = Parts(b"\x92\x91\xc7\x05\x0f" + b"x" * 5 + b"\x80", [b"\0" * 50_000])
    submit(h, "arr", payload)
    body = get(h, "arr")
    assert body["args_head"] == bytes(payload.body) and body["args_size"] == len(payload)


def test_a_success_frees_the_arguments_and_the_store_gives_them_back() -> None:
    h = harness()
    call = serde.encode_call([1], {})
    submit(h, "t", call)
    run(h)
    h.results(W1, ("t", 1, OK))
    h.out()
    body = get(h, "t")  # freed, and nothing read back: nil, not a wrong preview
    assert body["args_head"] is None and body["args_size"] is None
    from zq.core import queries
    assert queries.args_to_load(h.s, ADMIN.rid, "get", {"id": "t"}) == ["t"]
    h.s.handle(ev.RecordsLoaded([], {"t": call}, ADMIN.rid))
    body = get(h, "t")
    assert body["args_head"] == call and body["args_size"] == len(call)
    assert get(h, "t")["args_head"] is None  # read back for one answer only


def test_arguments_read_back_cost_their_size_and_none_are_read_past_the_budget() -> None:
    """A client asking `get` of an old task with large arguments again and again makes
    the loop read them from the store each time: each read costs the asker the payload's
    whole size, and once its budget is spent nothing more is read."""
    from zq.core import queries
    h = harness()
    big = serde.encode_call(["x" * 3_000_000], {})
    submit(h, "t", big)
    run(h)
    h.results(W1, ("t", 1, OK))
    h.out()
    reads = 0
    for _ in range(5):
        if queries.args_to_load(h.s, ADMIN.rid, "get", {"id": "t"}):
            reads += 1
            h.s.handle(ev.RecordsLoaded([], {"t": big}, ADMIN.rid))
        h.s.on_query(ADMIN, 7, "get", {"id": "t"})
        h.s.flush()
    assert reads == 2  # 4 MiB of budget: a 3 MB read, another, then refused


def test_a_volatile_store_asks_for_nothing_to_be_read_back() -> None:
    from zq.core import queries
    h = Harness(durable=False)
    assert queries.args_to_load(h.s, ADMIN.rid, "get", {"id": "t"}) == []


# --- parents and children ----------------------------------------------------------------

def test_parents_and_children_name_each_other_with_their_states() -> None:
    h = harness()
    submit(h, "a")
    submit(h, "b")
    submit(h, "c", after=["a", "b"])
    submit(h, "d", after=["a"])
    body = get(h, "c")
    assert body["parents"] == [{"id": "a", "name": "job", "state": "queued", "input": False},
                               {"id": "b", "name": "job", "state": "queued", "input": False}]
    assert body["parents_total"] == 2
    a = get(h, "a")
    assert a["children"] == [{"id": "c", "name": "job", "state": "pending"},
                             {"id": "d", "name": "job", "state": "pending"}]
    assert a["children_total"] == 2 and a["children_partial"] is False
    assert get(h, "d")["children"] == [] and get(h, "d")["children_total"] == 0


def test_a_finished_parent_still_names_its_children() -> None:
    h = harness()
    submit(h, "a")
    submit(h, "x")  # unrelated, newer than a
    submit(h, "c", after=["a"])
    run(h)
    h.results(W1, ("a", 1, OK))
    h.out()
    assert h.state("a") is State.SUCCEEDED and h.state("c") is State.QUEUED
    a = get(h, "a")
    assert a["children"] == [{"id": "c", "name": "job", "state": "queued"}]
    assert a["children_total"] == 1 and a["children_partial"] is False


def test_a_forgotten_parent_shows_its_id_only() -> None:
    h = harness()
    submit(h, "a")
    submit(h, "c", after=["a"])
    h.s.tasks["c"].set_options(after=["gone", "a"])  # as a purge of "gone" would leave it
    assert get(h, "c")["parents"][0] == {"id": "gone", "name": None, "state": None,
                                         "input": False}


def test_dependencies_are_listed_up_to_a_hundred_and_counted() -> None:
    h = harness()
    for i in range(150):
        submit(h, f"p{i}")
    submit(h, "child", after=[f"p{i}" for i in range(150)])
    for i in range(120):
        submit(h, f"c{i}", after=["p0"])
    body = get(h, "child")
    assert len(body["parents"]) == detail.DEPS_SHOWN == 100 and body["parents_total"] == 150
    assert [p["id"] for p in body["parents"]] == [f"p{i}" for i in range(100)]
    p0 = get(h, "p0")
    assert len(p0["children"]) == 100 and p0["children_total"] == 121


def test_the_look_for_a_final_tasks_children_is_bounded() -> None:
    h = harness()
    submit(h, "a")
    run(h)
    h.results(W1, ("a", 1, OK))
    h.out()
    for i in range(detail.CHILD_SCAN + 5):  # newer tasks, none naming a
        h.s.tasks[f"n{i}"] = TaskRecord(f"n{i}", "job", b"", state=State.SUCCEEDED)
    h.s.counts[State.SUCCEEDED] += detail.CHILD_SCAN + 5
    body = get(h, "a")
    assert body["children"] == [] and body["children_partial"] is True


def test_inputs_are_marked_among_the_parents() -> None:
    h = harness()
    submit(h, "a")
    submit(h, "f", inputs=["a"])
    assert get(h, "f")["parents"] == [{"id": "a", "name": "job", "state": "queued",
                                       "input": True}]


# --- chunks ----------------------------------------------------------------------------

def test_the_latest_chunks_are_kept_bounded_and_counted() -> None:
    h = harness()
    submit(h, "s")
    run(h)
    w = h.s.touch_worker(W1)
    big = b"z" * 5000
    h.s.on_partial(w, [("s", 1, i, big if i == 3 else bytes([i])) for i in range(30)])
    h.s.validate()
    h.out()
    body = get(h, "s")
    assert body["chunks_total"] == 30 and len(body["chunks"]) == detail.CHUNKS_KEPT == 20
    assert [c["seq"] for c in body["chunks"]] == list(range(10, 30))
    assert body["chunks"][0] == {"attempt": 1, "seq": 10, "size": 1, "head": bytes([10])}
    h.s.on_partial(w, [("s", 1, 30, big)])
    last = get(h, "s")["chunks"][-1]
    assert last["size"] == 5000 and last["head"] == big[:detail.CHUNK_HEAD]


def test_chunks_from_a_worker_not_running_the_task_are_not_kept() -> None:
    h = harness()
    h.hello(b"w2")
    submit(h, "s")
    run(h)
    runner = h.s.lease["s"]
    other = h.s.touch_worker(b"w2" if runner == W1 else W1)
    h.s.on_partial(other, [("s", 1, 0, b"forged")])
    assert get(h, "s")["chunks"] == [] and get(h, "s")["chunks_total"] == 0


def test_chunks_are_kept_for_a_bounded_number_of_tasks() -> None:
    h = harness(credit=detail.STREAMS_KEPT + 1)
    ids = [f"s{i}" for i in range(detail.STREAMS_KEPT + 1)]
    for tid in ids:
        submit(h, tid)
    run(h)
    w = h.s.touch_worker(W1)
    h.s.on_partial(w, [(tid, 1, 0, b"c") for tid in ids])
    assert len(h.s.recent.chunks) == detail.STREAMS_KEPT
    assert get(h, ids[0])["chunks"] == []  # the one that streamed longest ago
    assert get(h, ids[-1])["chunks_total"] == 1


def test_a_new_task_of_a_forgotten_ones_id_shows_none_of_its_chunks() -> None:
    h = harness()
    submit(h, "s")
    run(h)
    h.s.on_partial(h.s.touch_worker(W1), [("s", 1, 0, b"old")])
    h.results(W1, ("s", 1, OK))
    h.out()
    h.s.on_query(ADMIN, 1, "purge", {"state": "succeeded"})
    h.out()
    assert "s" not in h.s.tasks
    submit(h, "s")
    assert get(h, "s")["chunks"] == [] and get(h, "s")["chunks_total"] == 0


# --- attempts --------------------------------------------------------------------------

def test_attempts_list_each_with_its_worker_timing_and_outcome() -> None:
    h = harness()
    submit(h, "t", retries=2, retry_backoff=0.01)
    assert get(h, "t")["attempts"] == []  # not started
    run(h)
    started1 = h.wall
    h.later(2)
    h.results(W1, ("t", 1, ERR))
    h.out()
    failed_at = h.wall
    body = get(h, "t")
    assert body["attempts"] == [{"attempt": 1, "worker": "w1", "started": started1,
                                 "finished": failed_at, "outcome": "failed",
                                 "error": {"type": "ValueError", "message": "t broke"}}]
    h.later(1)
    run(h)
    started2 = h.wall
    assert get(h, "t")["attempts"][-1] == {"attempt": 2, "worker": "w1", "started": started2,
                                           "finished": None, "outcome": "running",
                                           "error": None}
    h.later(3)
    h.results(W1, ("t", 2, OK))
    h.out()
    got = get(h, "t")["attempts"]
    assert len(got) == 2 and got[1] == {"attempt": 2, "worker": "w1", "started": started2,
                                        "finished": h.wall, "outcome": "succeeded",
                                        "error": None}


def test_a_lost_worker_ends_an_attempt_without_ending_the_task() -> None:
    h = harness()
    submit(h, "t")
    run(h)
    h.bye(W1)
    h.out()
    assert h.state("t") is State.QUEUED
    [a] = get(h, "t")["attempts"]
    assert a["attempt"] == 1 and a["worker"] == "w1" and a["outcome"] == "lost"


def test_a_task_cancelled_while_it_waits_to_retry_lists_its_attempt_once() -> None:
    h = harness()
    submit(h, "t", retries=3, retry_backoff=60)
    run(h)
    h.results(W1, ("t", 1, ERR))
    h.cancel("t")
    h.out()
    assert h.state("t") is State.CANCELLED
    assert [a["outcome"] for a in get(h, "t")["attempts"]] == ["failed"]


def test_attempts_kept_are_bounded() -> None:
    h = harness()
    submit(h, "t", retries=40, retry_backoff=0.001, retry_backoff_max=0.001)
    for attempt in range(1, 31):
        h.later(1)
        run(h)
        h.results(W1, ("t", attempt, ERR))
        h.out()
    got = get(h, "t")["attempts"]
    assert len(got) == detail.ATTEMPTS_KEPT == 20
    assert [a["attempt"] for a in got] == list(range(11, 31))


def test_a_get_costs_its_asker_about_what_its_detail_weighs() -> None:
    """The query budget (PROTOCOL §1) counts a get's heads and listed rows: a get of a
    task with 4 KiB of arguments and 100 parents costs far more than a bare one."""
    from zq.core.queries import QUERY_BYTES, QUERY_COST, ROW_COST
    h = harness()
    submit(h, "bare")
    parents = [f"p{i}" for i in range(100)]
    for p in parents:
        submit(h, p)
    submit(h, "heavy", serde.encode_call(["x" * 8000], {}), after=parents)

    def cost(tid: str) -> float:
        before = h.s.query_budget.get(ADMIN.rid, [float(QUERY_BYTES)])[0]
        get(h, tid)
        return before - h.s.query_budget[ADMIN.rid][0]

    bare, heavy = cost("bare"), cost("heavy")
    assert bare < QUERY_COST + 2 * ROW_COST  # the task map and its own attempt
    assert heavy >= QUERY_COST + 100 * ROW_COST + detail.ARGS_HEAD
