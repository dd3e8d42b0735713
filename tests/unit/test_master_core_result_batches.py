"""A RESULT batch whose first entry needs the slow path (it has a second watcher, or
tasks that run after it, or a cancel) and whose later entries need it too: handling the
first must not make the master take the fast path for the others.

Found by tests/property/test_master_core_machine.py (tasks left PENDING for ever): the
fast path kept a reference to the first non-empty of (more_watchers, waiting,
cancelling) as its "anything special?" flag, and that container emptied while the
batch was handled, so a later entry with dependents finished without releasing them."""

from __future__ import annotations

from tests.unit.test_master_core import C2, OK, W1, Harness, S


def test_what_runs_after_a_task_starts_when_an_earlier_entry_emptied_the_watchers() -> None:
    h = Harness()
    h.hello(W1, credit=4)
    h.submit("a", "b")
    h.submit("c", after=["b"])
    h.watch("a", rid=C2)  # a second watcher: "a" goes the slow path
    h.dispatch()
    h.results(W1, ("a", 1, OK), ("b", 1, OK))
    assert h.s.tasks["b"].state is S.SUCCEEDED
    assert h.s.tasks["c"].state is S.QUEUED  # was left PENDING for ever


def test_a_cancel_asked_of_a_later_entry_is_settled_when_an_earlier_one_emptied_waiting(
        ) -> None:
    """"b" was cancelled while running, then succeeded: the success wins, and the
    cancel request is done with (it is stored: a restart would act on it again)."""
    h = Harness(durable=True)
    h.hello(W1, credit=4)
    h.submit("a", "b")
    h.submit("c", after=["a"])  # "a" has a dependent: the slow path, which empties waiting
    h.dispatch()
    h.cancel("b")
    h.out()
    h.results(W1, ("a", 1, OK), ("b", 1, OK))
    assert h.s.tasks["b"].state is S.SUCCEEDED
    assert "b" not in h.s.cancelling  # was left there, and stored so
    h.out()
    assert h.last.meta.get("cancelling") == []
