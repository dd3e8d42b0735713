"""The Store contract, run against every store: what the master may rely on.

Durable-only cases skip volatile stores; everything else holds for all of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.store.stores import NEEDS_PG, STORES, committed_ids, drop
from zq.core.messages import State
from zq.core.tasks import FIELDS, OPTIONAL, TaskRecord, TaskWithOptions, is_default
from zq.store import Store

ROOT = Path(__file__).resolve().parents[2]
Opener = Callable[[], Store]


# What update() writes: everything but the payload and seq, which never change.
UPDATED_FIELDS = sorted(set(FIELDS) - {"id", "seq", "payload"})


def fields(r: TaskRecord) -> dict[str, Any]:
    """Every slot, payloads as bytes: what must survive a round trip."""
    out = {name: getattr(r, name) for name in FIELDS}
    for name in ("payload", "result"):
        if isinstance(out[name], memoryview):
            out[name] = out[name].tobytes()
    return out


def task(id: str, seq: int = 0, **kw: Any) -> TaskRecord:
    return TaskRecord(id, "app:f", b"payload-" + id.encode(), seq=seq, **kw)


def load(store: Store) -> list[TaskRecord]:
    records = list(store.load())
    for r in records:  # compact (issue 18): options in an object of their own only if set
        plain = all(is_default(name, getattr(r, name)) for name in OPTIONAL)
        assert type(r) is (TaskRecord if plain else TaskWithOptions), r
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    return records


def needs(kind: str, request: pytest.FixtureRequest) -> str:
    """The store kind, once what it needs is up (a PostgreSQL server)."""
    if kind in NEEDS_PG:
        request.getfixturevalue("pg_server")
    return kind


@pytest.fixture(params=sorted(STORES))
def kind(request: pytest.FixtureRequest) -> str:
    return needs(request.param, request)


@pytest.fixture
def opener(kind: str, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store under test, at the same place on every call; closes them all."""
    opened: list[Store] = []

    def open_() -> Store:
        opened.append(STORES[kind](tmp_path / "zq.db"))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def durable(opener: Opener) -> Opener:
    probe = opener()
    probe.close()
    if not probe.durable:
        pytest.skip("a volatile store keeps nothing across a reopen")
    return opener


# --- every store --------------------------------------------------------------------------


def test_a_new_store_is_empty(opener: Opener) -> None:
    store = opener()
    assert load(store) == []
    assert store.get_meta("anything") is None


def test_save_delete_commit_accept_any_iterable(durable: Opener) -> None:
    """Generators, tuples and iterators are read in full; memoryview results are bytes;
    deleting an id never saved is harmless; a commit with nothing pending too."""
    store = durable()
    store.save([])
    store.delete([])
    store.save(task(f"t{i}", i) for i in range(3))
    store.save((task("mv", 9, result=memoryview(b"r")),))
    store.delete(iter(["t1", "never-saved"]))
    store.commit()
    store.commit()  # nothing pending: harmless
    for reader in (store, durable()):  # this run, and a reopen
        got = load(reader)
        assert [r.id for r in got] == ["t0", "t2", "mv"]
        assert got[-1].result == b"r" and reader.get("t1") is None


def test_a_volatile_store_keeps_no_task_but_its_meta_for_the_run() -> None:
    """The memory store: the master's own records are the only copy of each task."""
    store = STORES["memory"](Path("unused"))
    store.save(task(f"t{i}", i) for i in range(3))
    store.update([task("t0", 0, state=State.SUCCEEDED)])
    store.set_meta("schedules", [1])
    store.commit()
    assert not store.durable
    assert load(store) == [] and store.get("t0") is None
    assert store.get_meta("schedules") == [1]
    assert STORES["memory"](Path("unused")).get_meta("schedules") is None


def test_meta_reads_back_in_the_same_run(opener: Opener) -> None:
    store = opener()
    store.set_meta("epoch", 3)
    store.set_meta("schedules", {"nightly": [1.5, "x", None, b"\x00"]})
    assert store.get_meta("epoch") == 3
    store.commit()
    store.set_meta("epoch", 4)
    assert store.get_meta("epoch") == 4
    assert store.get_meta("schedules") == {"nightly": [1.5, "x", None, b"\x00"]}


def test_close_twice_is_harmless(opener: Opener) -> None:
    store = opener()
    store.save([task("a")])
    store.commit()
    store.close()
    store.close()


# --- durable stores -----------------------------------------------------------------------


def test_reopen_sees_what_was_committed(durable: Opener) -> None:
    store = durable()
    store.save(task(f"t{i}", seq=10 - i) for i in range(10))
    store.set_meta("epoch", 7)
    store.commit()
    store.close()
    again = durable()
    assert [r.id for r in load(again)] == [f"t{i}" for i in reversed(range(10))]
    assert again.get_meta("epoch") == 7


def test_uncommitted_changes_are_gone_after_reopen(durable: Opener) -> None:
    store = durable()
    store.save([task("kept", 1), task("deleted-later", 2)])
    store.set_meta("epoch", 1)
    store.commit()
    store.save([task("never-committed", 3), task("kept", 1, state=State.RUNNING)])
    store.delete(["deleted-later"])
    store.set_meta("epoch", 2)
    store.close()
    again = durable()
    assert [(r.id, r.state) for r in load(again)] == [
        ("kept", State.QUEUED), ("deleted-later", State.QUEUED)]
    assert again.get_meta("epoch") == 1


def test_save_replaces_and_delete_removes(durable: Opener) -> None:
    store = durable()
    store.save([task("a", 1), task("b", 2), task("c", 3)])
    store.commit()
    store.save([task("b", 2, state=State.SUCCEEDED, result=b"42", attempt=1)])
    store.delete(["a"])
    store.commit()
    store.close()
    loaded = {r.id: r for r in load(durable())}
    assert sorted(loaded) == ["b", "c"]
    assert (loaded["b"].state, loaded["b"].result, loaded["b"].attempt) == (
        State.SUCCEEDED, b"42", 1)


def test_large_and_memoryview_payloads_round_trip(durable: Opener) -> None:
    big = os.urandom(4 * 2**20)
    store = durable()
    store.save([task("bytes", 1, result=big), TaskRecord("view", "app:f", memoryview(big), seq=2),
                TaskRecord("slice", "app:f", memoryview(big)[1:-1], seq=3),
                TaskRecord("empty", "app:f", memoryview(b""), seq=4, result=b"")])
    store.commit()
    store.close()
    loaded = {r.id: r for r in load(durable())}
    assert loaded["bytes"].result == big
    assert loaded["view"].payload == big
    assert loaded["slice"].payload == big[1:-1]
    assert (loaded["empty"].payload, loaded["empty"].result) == (b"", b"")
    assert all(type(r.payload) is bytes for r in loaded.values())


@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_a_crash_keeps_exactly_what_was_committed(durable: Opener, kind: str, tmp_path: Path,
                                                  how: str) -> None:
    child = subprocess.run(
        [sys.executable, "-m", "tests.store.stores", kind, str(tmp_path / "zq.db"), how],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        timeout=60)  # run() kills the child if it hangs
    assert child.returncode == (-signal.SIGKILL if how == "sigkill" else 3), child.stderr
    loaded = load(durable())
    assert {r.id for r in loaded} == committed_ids()


# --- properties ---------------------------------------------------------------------------

times = st.floats(allow_nan=False)  # SQLite keeps NaN as NULL; a task time is never NaN
maybe_time = st.none() | times
names = st.lists(st.text(max_size=12), max_size=3)
blobs: st.SearchStrategy[Any] = (
    st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: memoryview(b)))
any_id = st.text(min_size=1, max_size=40)


@st.composite
def records(draw: st.DrawFn, ids: st.SearchStrategy[str] = any_id) -> TaskRecord:
    """Any TaskRecord: unicode ids, every optional field None or set; half of them a
    plain task (every tasks.OPTIONAL field at its default), the compact record."""
    small = st.integers(-2**31, 2**31)
    maybe_text = st.none() | st.text(max_size=20)
    record = TaskRecord(
        draw(ids), draw(st.text(max_size=30)), draw(blobs), queue=draw(st.text(max_size=10)),
        priority=draw(small), state=draw(st.sampled_from(State)), attempt=draw(small),
        created=draw(times), updated=draw(times), worker=draw(maybe_text),
        result=draw(st.none() | blobs), seq=draw(st.integers(-2**63, 2**63 - 1)),
        owner=draw(maybe_text), started=draw(maybe_time), waited=draw(maybe_time))
    if draw(st.booleans()):
        record.set_options(
            retries=draw(small), timeout=draw(maybe_time), eta=draw(maybe_time),
            key=draw(maybe_text), after=draw(st.none() | names), retry_backoff=draw(times),
            retry_backoff_max=draw(times), retry_on=draw(st.none() | names),
            result_ttl=draw(maybe_time), progress=draw(st.none() | st.tuples(times, times)),
            inputs=draw(st.none() | names))
    return record


# The sync level changes no logic: the properties run once per store class.
PROPERTY_KINDS = ["memory", "sqlite", "sqlite-fold-2", "sqlite-direct", "postgres",
                  "postgres-fold-2"]


@pytest.fixture(params=[k for k in PROPERTY_KINDS if k != "memory"])
def durable_kind(request: pytest.FixtureRequest) -> str:
    return needs(request.param, request)


@settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(recs=st.lists(records(), max_size=5, unique_by=lambda r: r.id))
def test_every_field_round_trips(durable_kind: str, recs: list[TaskRecord]) -> None:
    kind = durable_kind
    expected = {r.id: fields(r) for r in recs}  # before the store sees them
    with tempfile.TemporaryDirectory() as tmp:
        store = STORES[kind](Path(tmp) / "zq.db")
        store.save(recs)
        store.commit()
        store.close()
        store = STORES[kind](Path(tmp) / "zq.db")
        try:
            loaded = load(store)
        finally:
            store.close()
    assert {r.id: fields(r) for r in loaded} == expected
    for r in loaded:
        assert type(r.state) is State and type(r.payload) is bytes
        assert r.progress is None or type(r.progress) is tuple


class StoreModel(RuleBasedStateMachine):
    """Random save/delete/set_meta/commit/reopen against a dict model of what must be
    kept: after a reopen a durable store loads exactly the committed tasks and meta, a
    volatile one nothing."""

    IDS = st.sampled_from(["a", "b", "c", "d", "é", "日本"])

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix="zq-store-model-"))
        self.store = STORES[kind](self.dir / "zq.db")
        self.committed: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any] | None] = {}  # None: deleted
        self.meta: dict[str, Any] = {}
        self.pending_meta: dict[str, Any] = {}

    @rule(recs=st.lists(records(ids=IDS), max_size=4))
    def save(self, recs: list[TaskRecord]) -> None:
        self.store.save(recs)
        for r in recs:
            self.pending[r.id] = fields(r)

    @rule(recs=st.lists(records(ids=IDS), max_size=4))
    def update(self, recs: list[TaskRecord]) -> None:
        """update() writes the fields that change after a submit, of known tasks only."""
        self.store.update(recs)
        for r in recs:
            current = self.pending[r.id] if r.id in self.pending else self.committed.get(r.id)
            if current is not None:
                new = fields(r)
                self.pending[r.id] = {**current, **{f: new[f] for f in UPDATED_FIELDS}}

    @rule(limit=st.integers(0, 5))
    def compact(self, limit: int) -> None:
        self.store.compact(limit)

    @rule()
    def upkeep(self) -> None:
        """What the master does every turn while the store is behind: a slice of
        compact(); it must catch up in a bounded number of slices."""
        for _ in range(100):
            if not self.store.behind():
                break
            self.store.compact(1)
        assert not self.store.behind()

    @rule(task_id=IDS)
    def get(self, task_id: str) -> None:
        got = self.store.get(task_id)
        if self.store.durable:
            expected = self.committed.get(task_id)
            assert (got and fields(got)) == expected
        else:
            assert got is None

    @rule()
    def crash(self) -> None:
        """The process dies: whatever was committed must load, folded or not."""
        drop(self.store)
        self.reopen()

    @rule(ids=st.lists(IDS, max_size=3))
    def delete(self, ids: list[str]) -> None:
        self.store.delete(ids)
        for i in ids:
            self.pending[i] = None

    # Meta values are msgpack values: integers from -2**63 to 2**64 - 1
    @rule(key=st.sampled_from(["epoch", "schedules"]),
          value=st.none() | st.text() | st.lists(st.integers(-2**63, 2**64 - 1), max_size=3))
    def set_meta(self, key: str, value: Any) -> None:
        self.store.set_meta(key, value)
        self.pending_meta[key] = value

    @rule()
    def commit(self) -> None:
        self.store.commit()
        for i, f in self.pending.items():
            if f is None:
                self.committed.pop(i, None)
            else:
                self.committed[i] = f
        self.pending.clear()
        self.meta.update(self.pending_meta)
        self.pending_meta.clear()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = STORES[self.kind](self.dir / "zq.db")
        self.pending.clear()
        self.pending_meta.clear()
        if not self.store.durable:
            self.committed.clear()
            self.meta.clear()
        assert {r.id: fields(r) for r in load(self.store)} == self.committed
        for key, value in self.meta.items():
            assert self.store.get_meta(key) == value

    @invariant()
    def meta_reads_back(self) -> None:
        for key, value in {**self.meta, **self.pending_meta}.items():
            assert self.store.get_meta(key) == value

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("kind", PROPERTY_KINDS)
def test_store_matches_the_dict_model(kind: str, request: pytest.FixtureRequest) -> None:
    needs(kind, request)
    run_state_machine_as_test(lambda: StoreModel(kind), settings=settings(  # type: ignore[arg-type]
        max_examples=60, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))


def test_compact_slices_catch_a_store_up_and_lose_nothing(opener: Opener) -> None:
    """The store may fall behind on its deferred work; the master then calls compact()
    every turn. Slices bring it back, and what was committed reads back throughout."""
    store = opener()
    assert not store.behind()
    for i in range(40):
        store.save([task(f"t{i}", i)])
        if i % 3 == 0:
            store.update([task(f"t{i // 2}", i // 2, state=State.SUCCEEDED, result=b"r")])
        store.commit()
    for _ in range(1000):  # bounded: every slice does some of the work
        if not store.compact(2):
            break
        got = store.get("t39")
        assert got is None if not store.durable else got is not None and got.id == "t39"
    assert not store.behind()
    assert store.compact(2) is False
    if store.durable:
        done = {f"t{i // 2}" for i in range(40) if i % 3 == 0}
        loaded = {r.id: r.state for r in load(store)}
        assert loaded == {f"t{i}": State.SUCCEEDED if f"t{i}" in done else State.QUEUED
                          for i in range(40)}


def test_get_finds_one_committed_task(opener: Opener) -> None:
    """A durable store answers get(id) for old results; the memory store keeps none."""
    store = opener()
    store.save([task("old-1", seq=7, state=State.SUCCEEDED, result=b"\x05")])
    store.commit()
    got = store.get("old-1")
    if store.durable:
        assert got is not None and got.result == b"\x05" and got.state is State.SUCCEEDED
    else:
        assert got is None
    assert store.get("never") is None


def test_update_writes_what_changes_and_keeps_the_payload(durable: Opener) -> None:
    store = durable()
    rec = task("u-1", seq=3)
    store.save([rec])
    store.commit()
    rec.state, rec.result, rec.attempt, rec.worker, rec.updated = (
        State.SUCCEEDED, b"\x2a", 2, "w1", 99.0)
    rec.payload = b"must not be written by update"
    store.update([rec])
    store.commit()
    got = store.get("u-1")
    assert got is not None
    assert (got.state, got.result, got.attempt, got.worker, got.updated) == (
        State.SUCCEEDED, b"\x2a", 2, "w1", 99.0)
    assert got.payload == b"payload-u-1"


def test_a_paused_schedule_outlasts_a_reopen(durable: Opener) -> None:
    """Protocol 1.5 (issue 15): a schedule's pause is part of what the master stores
    with it (meta "schedules"), so it survives a restart on every durable store."""
    from zq.core.master_core import MasterCore
    from zq.core.periodic import Periodic

    core = MasterCore(master_id="m", durable=True)
    core.advance(0.0, 1000.0)
    core.add_schedule({"name": "paused", "task": "app:f", "every": 10.0})
    core.add_schedule({"name": "ticking", "task": "app:f", "every": 10.0})
    core.periodic.pause("paused")
    store = durable()
    store.set_meta("schedules", core.periodic.dump())
    store.commit()
    store.close()
    again = Periodic()
    assert again.load(durable().get_meta("schedules"), 2000.0) == []
    assert again.view("paused")["paused"] is True and again.view("paused")["next_run"] is None
    assert again.view("ticking")["paused"] is False
    assert [s.name for s, _ in again.due(3000.0)] == ["ticking"]
