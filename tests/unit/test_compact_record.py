"""Issue 18: the compact task record. A plain task (every tasks.OPTIONAL field at its
default) is a TaskRecord with only the fields every task sets as slots: no instance
dict, no options object. It stays one through submit, lease, result, a lost worker, a
retry by hand and a store's load; the first optional field set makes it a
TaskWithOptions in place, which keeps every field (the store round trips are in
tests/store/test_contract.py, whose load() checks the same compactness per store)."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest

from tests.unit.test_master_core import FATAL, OK, W1, W2, Harness, h, make  # noqa: F401
from tests.unit.test_task_catalogue import announce
from zq.core import queries
from zq.core.messages import State
from zq.core.tasks import FIELDS, OPTIONAL, TaskRecord, TaskWithOptions
from zq.store.journal import SAVE_FIELDS, UPDATE_FIELDS, save_row, update_row
from zq.store.sqlite import SqliteStore

PLAIN_SIZE = sys.getsizeof(TaskRecord.plain("t", "job", b"", 0.0, 1))


def assert_plain(t: TaskRecord) -> None:
    """Nothing per task beyond the slots: no dict, no options object, the defaults read
    from the class."""
    assert type(t) is TaskRecord, t
    assert not hasattr(t, "__dict__") and not hasattr(t, "_options")
    assert sys.getsizeof(t) == PLAIN_SIZE
    assert all(getattr(t, name) == default for name, default in OPTIONAL.items())


def test_the_optional_fields_are_not_slots() -> None:
    """Each slot costs 8 bytes a task whether set or not: only the fields every task sets
    (and the one that points at a task's options) are slots."""
    assert set(TaskRecord.__slots__) == set(FIELDS) - set(OPTIONAL) | {"_options"}
    assert TaskWithOptions.__slots__ == ()  # the same layout: a record changes in place


def test_a_plain_submission_is_compact_through_lease_and_result(h: Harness) -> None:
    h.submit("t1")
    assert_plain(h.s.tasks["t1"])
    h.hello(W1)
    h.dispatch()
    assert h.state("t1") is State.RUNNING
    assert_plain(h.s.tasks["t1"])
    h.results(W1, ("t1", 1, OK))
    assert h.state("t1") is State.SUCCEEDED
    assert_plain(h.s.tasks["t1"])


def test_a_task_taken_back_from_a_worker_or_retried_by_hand_stays_compact(
        h: Harness) -> None:
    h.hello(W1)
    h.submit("back", "failed")
    h.dispatch()
    h.results(W1, ("failed", 1, FATAL))
    h.bye(W1, returned=("back",))  # given back: queued again for the next worker
    assert h.state("back") is State.QUEUED and h.state("failed") is State.FAILED
    assert queries.retry(h.s, "failed")["state"] == "queued"  # resets eta: a default
    h.hello(W2, credit=2)
    h.dispatch()
    for tid in ("back", "failed"):
        assert h.state(tid) is State.RUNNING
        assert_plain(h.s.tasks[tid])


def test_declared_options_at_their_defaults_leave_a_task_compact() -> None:
    h = make()
    announce(h, catalogue={"mod:f": {"retries": 0, "retry_backoff": 1.0,
                                     "retry_backoff_max": 600}})
    h.submit("t1", name="mod:f")
    assert_plain(h.s.tasks["t1"])


def test_progress_and_options_make_a_task_with_options_in_place(h: Harness) -> None:
    h.hello(W1)
    h.submit("p")
    h.submit("o", retries=2, timeout=3.0)
    h.dispatch()
    t = h.s.tasks["p"]
    h.s.on_progress(h._w(W1), [("p", 1, 1.0, 4.0)])
    assert h.s.tasks["p"] is t and type(t) is TaskWithOptions and t.progress == (1.0, 4.0)
    o = h.s.tasks["o"]
    assert type(o) is TaskWithOptions and (o.retries, o.timeout, o.eta) == (2, 3.0, None)


def test_a_plain_record_saved_and_loaded_from_sqlite_is_compact(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "zq.db")
    store.save([TaskRecord.plain("a", "job", b"p", 5.0, 1)])
    store.update([TaskRecord("b", "job", b"p", state=State.SUCCEEDED, attempt=1, seq=2,
                             worker="w", started=1.0, waited=0.5, result=b"r")])
    store.commit()
    store.close()  # folds the journal: the rows come from the task table
    store = SqliteStore(tmp_path / "zq.db")
    try:
        for r in store.load():
            assert_plain(r)
        assert_plain(store.get("a"))  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.mark.parametrize("options", [{}, {"progress": (1.0, 2.0), "retries": 1}])
def test_the_journal_rows_of_both_kinds_hold_the_fields_they_name(options: dict) -> None:
    """save_row and update_row spell a plain task's defaults out: they must be the ones
    its fields read."""
    r = TaskRecord("t", "job", b"p", attempt=1, created=1.0, updated=2.0, worker="w",
                   seq=3, owner="k", started=1.5, waited=0.5)
    r.set_options(**options)
    assert save_row(r) == tuple(getattr(r, name) for name in SAVE_FIELDS)
    assert update_row(r) == tuple(getattr(r, name) for name in UPDATE_FIELDS)


def test_set_options_is_the_one_way_to_set_an_optional_field() -> None:
    t = TaskRecord.plain("t", "job", b"", 0.0, 1)
    with pytest.raises(AttributeError):
        t.timeout = 5.0  # type: ignore[misc]
    with pytest.raises(AttributeError, match="not an optional field"):
        t.set_options(state=State.FAILED)
    t.set_options(eta=None, retry_backoff=1.0, progress=None)  # defaults: nothing changes
    assert_plain(t)
    t.set_options(retry_backoff=1)  # an int is kept as given, as the store keeps it
    assert type(t) is TaskWithOptions and type(t.retry_backoff) is int
    with pytest.raises(AttributeError):
        t.timeout = 5.0  # type: ignore[misc]


def test_a_copy_does_not_share_the_options_and_a_pickle_keeps_them() -> None:
    t = TaskRecord("t", "job", b"p", key="k", progress=(1.0, 2.0), seq=4)
    c = copy.copy(t)
    c.set_options(progress=(2.0, 2.0))
    assert t.progress == (1.0, 2.0) and c.progress == (2.0, 2.0) and c.key == "k"
    for r in (t, TaskRecord.plain("p", "job", b"", 0.0, 1)):
        back = pickle.loads(pickle.dumps(r))
        assert type(back) is type(r)
        assert {n: getattr(back, n) for n in FIELDS} == {n: getattr(r, n) for n in FIELDS}
