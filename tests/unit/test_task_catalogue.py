"""Issue 10, finding 3: the options a task declares (@zq.task) hold wherever it is
submitted from. Workers announce their task catalogue in HELLO; the master fills in
what a submission by name left unset; what a submission gives wins."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_master_core import ERR, W1, C, Harness, S, make  # noqa: F401
from zq.core import codec, queries
from zq.core import messages as m
from zq.core.catalogue import MAX_NAMES, Catalogue
from zq.core.master_core import MasterCore
from zq.core.messages import Role
from zq.errors import ProtocolError
from zq.registry import Registry, TaskOptions

BOOM = "mod:boom"
DECLARED = {"queue": "io", "retries": 3, "timeout": 5.0, "retry_on": ["OSError"]}
TOKEN = "f" * 32


def announce(h: Harness, rid: bytes = W1, catalogue: dict | None = None,
             queues: tuple[str, ...] = ("io", "default"), credit: int = 0) -> None:
    cat = {BOOM: dict(DECLARED), "mod:plain": {}} if catalogue is None else catalogue
    h.s.on_hello(rid, m.Hello(rid.decode(), "host", 1, list(queues), 1, "thread", credit, [],
                              TOKEN + rid.hex()[:8], cat))
    h.s.validate()


def record(h: Harness, tid: str) -> Any:
    return h.s.tasks[tid]


def test_a_submission_by_name_gets_the_declared_options() -> None:
    h = make()
    announce(h)
    h.submit("t1", name=BOOM)
    t = record(h, "t1")
    assert (t.queue, t.retries, t.timeout, t.retry_on) == ("io", 3, 5.0, ["OSError"])
    assert h.s.depth == {"io": 1}


def test_what_the_submission_gives_wins_even_at_the_default() -> None:
    h = make()
    announce(h)
    h.submit("t1", name=BOOM, queue="default", retries=0)
    t = record(h, "t1")
    assert (t.queue, t.retries, t.timeout) == ("default", 0, 5.0)


def test_a_name_that_declares_nothing_stays_on_the_fast_path() -> None:
    h = make()
    announce(h)
    h.submit("t1", name="mod:plain")
    assert record(h, "t1").queue == "default" and "mod:plain" not in h.s.unannounced


def test_a_schedule_without_a_queue_runs_in_the_declared_one() -> None:
    h = make()
    announce(h)
    h.s.add_schedule({"name": "s", "task": BOOM, "every": 10.0})
    h.s.add_schedule({"name": "t", "task": BOOM, "every": 10.0, "queue": "default"})
    h.later(10.5)
    h.tick()
    by_schedule = {t.id.split("@")[0]: t for t in h.s.tasks.values()}
    assert (by_schedule["s"].queue, by_schedule["s"].retries) == ("io", 3)
    assert (by_schedule["t"].queue, by_schedule["t"].retries) == ("default", 3)


def test_tasks_submitted_before_the_name_was_announced_get_its_options_then() -> None:
    h = make()
    h.submit("early", "late", name=BOOM)
    h.submit("explicit", name=BOOM, queue="other", priority=2)
    assert h.s.depth == {"default": 2, "other": 1} and BOOM in h.s.unannounced
    announce(h, credit=1)
    assert (record(h, "early").queue, record(h, "early").retries) == ("io", 3)
    assert record(h, "explicit").queue == "other"  # given at submission: kept
    assert h.s.depth == {"default": 0, "other": 1, "io": 2} and not h.s.unannounced
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "early", 1)]  # from the io queue, in submission order


def test_an_announced_name_is_filled_in_once_and_started_tasks_are_left_alone() -> None:
    h = make()
    h.s.on_hello(b"w0", m.Hello("w0", "host", 1, ["default"], 1, "thread", 1, [], "e" * 32))
    h.submit("started", "waiting", name=BOOM)
    h.dispatch()
    h.out()
    assert record(h, "started").state is S.RUNNING
    announce(h)
    assert record(h, "started").retries == 0 and record(h, "waiting").retries == 3
    announce(h, rid=b"w2", catalogue={BOOM: {"queue": "io", "retries": 1}})
    assert record(h, "waiting").retries == 3  # options change later: what is set stays


def test_the_catalogue_is_stored_and_a_restart_keeps_it() -> None:
    h = make(durable=True)
    announce(h)
    stored = h.s.flush().meta["catalogue"]
    announce(h)  # the same again: nothing to store
    assert "catalogue" not in h.s.flush().meta
    again = MasterCore(master_id="m2", durable=True)
    again.load_catalogue(stored)
    again.on_submit(C, [("t1", BOOM, b"", {})])
    assert again.tasks["t1"].queue == "io" and queries.status(again)["catalogue"][BOOM] == DECLARED


def test_a_restored_task_waiting_for_its_name_is_filled_in_when_it_is_announced() -> None:
    from zq.core.tasks import TaskRecord
    h = make(durable=True)
    h.s.load_catalogue(None)
    h.s.restore([TaskRecord("t1", BOOM, b"", state=S.QUEUED, seq=1)])
    announce(h)
    assert record(h, "t1").queue == "io" and h.s.depth == {"default": 0, "io": 1}
    h.later(3.5)
    h.tick()  # the restart hold ends: queued where it belongs now
    assert h.s.queues["io"].best_priority() == 0


def test_options_zq_cannot_use_are_skipped_with_a_warning() -> None:
    h = make()
    announce(h, catalogue={BOOM: {"retries": 5000}, "mod:ok": {"retries": 1},
                           "mod:rate": {"rate_limit": "fast"}})
    assert list(h.s.catalogue.options) == ["mod:ok"]
    warnings = [text for level, text in h.s.flush().notices if level == "warning"]
    assert len(warnings) == 2 and "retries" in warnings[0]


def test_the_catalogue_is_bounded_and_forgets_the_least_recently_announced() -> None:
    c = Catalogue(limit=3)
    c.announce({"a": {}, "b": {}}, wall=1.0)
    c.announce({"c": {}, "d": {"retries": 1}}, wall=2.0)
    assert sorted(c.options) == ["b", "c", "d"]  # a and b tie as oldest: the first goes
    assert c.declared == {"d": {"retries": 1}}
    c.announce({"b": {}}, wall=3.0)
    c.announce({"e": {}}, wall=4.0)
    assert sorted(c.options) == ["b", "d", "e"]  # b was announced again: c is the oldest
    assert MAX_NAMES >= codec.MAX_CATALOGUE


def test_a_bad_stored_catalogue_never_stops_the_master() -> None:
    s = MasterCore(master_id="m")
    s.load_catalogue({"m:f": [{"queue": 1}, 0.0], "m:g": "x", 3: [{}, 0.0],
                      "m:ok": [{"retries": 2}, 5.0]})
    assert list(s.catalogue.options) == ["m:ok"]
    s.load_catalogue(["not", "a", "map"])
    assert list(s.catalogue.options) == ["m:ok"]


# --- the wire --------------------------------------------------------------------------

def _hello(catalogue: Any) -> list[bytes]:
    return [codec.SIGNATURES[Role.WORKER], codec._packb(
        [int(m.Cmd.HELLO), "w", "h", 1, [], 1, "thread", 1, [], TOKEN, catalogue])]


def test_the_catalogue_round_trips() -> None:
    msg = m.Hello("w", "h", 1, [], 1, "thread", 1, [], TOKEN, {BOOM: DECLARED, "m:p": {}})
    assert codec.decode(codec.encode(Role.WORKER, msg))[1] == msg


@pytest.mark.parametrize("catalogue", [
    [BOOM], {BOOM: None}, {"": {}}, {BOOM: {"eta": 1.0}}, {BOOM: {"after": ["x"]}},
    {BOOM: {"retries": "3"}}, {BOOM: {"queue": ["io"]}},
    {f"m:f{i}": {} for i in range(codec.MAX_CATALOGUE + 1)},
    {f"m:f{i}": {"retry_on": ["E" * 500] * 20} for i in range(120)},  # over the characters
])
def test_a_bad_or_oversized_catalogue_is_refused(catalogue: Any) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(_hello(catalogue))


def test_a_worker_announces_what_fits_and_says_what_did_not() -> None:
    big = {f"m:f{i:05}": {} for i in range(codec.MAX_CATALOGUE + 5)}
    big["m:bad"] = {"eta": 1.0}
    fitted, problems = codec.fit_catalogue(big)
    assert len(fitted) == codec.MAX_CATALOGUE and len(problems) == 2
    codec.decode(_hello(fitted))


# --- the worker's and the client's side ----------------------------------------------

def test_the_registry_announces_every_name_with_its_declared_options() -> None:
    cat = Registry(["tests.apps.catalogue_tasks"]).catalogue()
    assert cat["tests.apps.catalogue_tasks:third_time"] == {
        "queue": "cat", "retries": 2, "retry_backoff": 0.05, "retry_backoff_max": 0.1}
    assert cat["tests.apps.catalogue_tasks:plain"] == {}


def test_options_given_at_submission_are_sent_even_at_their_default() -> None:
    opts = TaskOptions(queue="io", retries=3)
    assert opts.to_wire() == {"queue": "io", "retries": 3}
    given = TaskOptions(queue="default", retries=0, priority=0)
    assert given.to_wire(explicit={"queue": None, "retries": None}) == {
        "queue": "default", "retries": 0}
