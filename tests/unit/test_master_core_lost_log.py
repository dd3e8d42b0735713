"""A worker the master loses is logged once with the tasks it held (issue 12): the older
lines that also counted them ("its N task(s) will run again") are gone."""

from __future__ import annotations

from tests.unit.test_master_core import W1, Harness, h  # noqa: F401 (h: fixture)


def test_a_worker_dropped_for_not_reading_is_one_line_naming_its_tasks(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.out()
    assert h.s.drop_peer(W1) == "worker w1"
    h.tick()
    h.out()
    assert h.last.notices == [("warning", "worker w1 (host, pid 1) gone holding 1 task(s); "
                                          "run again 1: t1")]
    h.s.validate()


def test_a_silent_worker_is_named_once_with_why_and_once_with_its_tasks(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.later(10)
    h.tick()
    h.out()
    assert h.last.notices == [
        ("warning", "worker w1 (host, pid 1) silent for 10.0 s: dropped"),
        ("warning", "worker w1 (host, pid 1) gone holding 1 task(s); run again 1: t1")]
    h.s.validate()
