"""The master core's interface: events in through handle(), commands out of tick(), as
the master loop drives it (zq.core.master_events). validate() after every step."""

from __future__ import annotations

import dataclasses

import pytest

from zq.core import master_core
from zq.core import master_events as ev
from zq.core import messages as m
from zq.core.master_core import MasterCore
from zq.core.messages import Cmd, Outcome, Role, State

C, W = b"client-1", b"worker-1"
T0 = 1_700_000_000.0


def core(**kw: object) -> MasterCore:
    s = MasterCore(master_id="m", durable=True, **kw)  # type: ignore[arg-type]
    s.advance(0.0, T0)
    return s


def hello(credit: int = 2) -> m.Hello:
    return m.Hello("w", "host", 1, ["default"], credit, "thread", credit, [])


def client(s: MasterCore, msg: m.Message, key: str | None = None,
           admin: bool = True) -> list[ev.Command]:
    out = s.handle(ev.MessageReceived(C, Role.CLIENT, msg, key, admin))
    s.validate()
    return out


def worker(s: MasterCore, msg: m.Message, rid: bytes = W) -> list[ev.Command]:
    out = s.handle(ev.MessageReceived(rid, Role.WORKER, msg))
    s.validate()
    return out


def tick(s: MasterCore, now: float = 0.0) -> list[ev.Command]:
    out = s.tick(now)
    s.validate()
    return out


def sends(cmds: list[ev.Command]) -> list[tuple[bytes, type]]:
    return [(c.rid, type(c.message)) for c in cmds if isinstance(c, ev.Send)]


def persist(cmds: list[ev.Command]) -> ev.Persist:
    found = [c for c in cmds if isinstance(c, ev.Persist)]
    assert len(found) == 1 and cmds[0] is found[0], "one Persist, first"
    return found[0]


def test_a_submit_is_persisted_then_accepted_in_the_same_tick() -> None:
    s = core()
    assert client(s, m.Submit([("t1", "job", b"a", {}), ("t2", "job", b"b", {})])) == []
    cmds = tick(s)
    assert [t.id for t in persist(cmds).saves] == ["t1", "t2"]
    assert sends(cmds) == [(C, m.Accepted)]
    accepted = [c.message for c in cmds if isinstance(c, ev.Send)][0]
    assert isinstance(accepted, m.Accepted) and list(accepted.ids) == ["t1", "t2"]


def test_a_tick_leases_to_a_registered_worker_and_its_result_reaches_the_client() -> None:
    s = core()
    worker(s, hello())
    client(s, m.Submit([("t1", "job", b"a", {})]))
    cmds = tick(s)
    assert sends(cmds) == [(W, m.Welcome), (W, m.Task), (C, m.Accepted)]  # by peer
    assert s.tasks["t1"].state is State.RUNNING
    worker(s, m.Result([("t1", 1, int(Outcome.OK), b"r")]))
    cmds = tick(s)
    assert sorted(sends(cmds)) == [(C, m.Result), (W, m.Ack)]
    assert [t.id for t in persist(cmds).updates] == ["t1"]
    assert s.tasks["t1"].state is State.SUCCEEDED


def test_a_worker_message_before_hello_is_answered_disconnect() -> None:
    s = core()
    worker(s, m.Credit(5, []))
    assert sends(tick(s)) == [(W, m.Disconnect)]
    assert not s.workers


def test_one_tick_leases_at_most_max_leases_and_asks_to_come_back_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(master_core, "MAX_LEASES", 3)
    s = core()
    worker(s, hello(credit=10))
    client(s, m.Submit([(f"t{i}", "job", b"a", {}) for i in range(5)]))
    tick(s, 0.0)
    assert len(s.lease) == 3
    assert s.next_deadline() == 0.0  # more to lease: no sleeping
    tick(s, 0.01)
    assert len(s.lease) == 5
    assert s.next_deadline() > 0.01


def test_while_the_store_cannot_commit_submissions_get_busy_and_nothing_is_leased() -> None:
    s = core()
    worker(s, hello())
    s.handle(ev.StoreChanged(writable=False))
    client(s, m.Submit([("t1", "job", b"a", {})]))
    cmds = tick(s)
    assert sends(cmds) == [(W, m.Welcome), (C, m.Busy)]
    s.handle(ev.StoreChanged(writable=True))
    client(s, m.Submit([("t1", "job", b"a", {})]))
    assert sends(tick(s)) == [(C, m.Accepted), (W, m.Task)]


def test_garbage_is_answered_only_when_it_spoke_zq() -> None:
    s = core()
    s.handle(ev.GarbageReceived(C, "bad frame", answer=False))
    s.handle(ev.MessageDropped(C))
    assert sends(tick(s)) == [] and s.dropped == 2
    s.handle(ev.GarbageReceived(C, "bad frame", answer=True))
    assert sends(tick(s)) == [(C, m.Error)] and s.dropped == 3


def test_a_failed_query_gets_a_reply_and_anything_else_an_error() -> None:
    s = core()
    s.handle(ev.HandlingFailed(C, "boom", request_id=7))
    s.handle(ev.HandlingFailed(W, "boom"))
    assert sends(tick(s)) == [(C, m.Reply), (W, m.Error)]


def test_refused_entries_of_a_submit_are_rejected_by_id() -> None:
    s = core()
    s.handle(ev.EntriesRefused(C, Cmd.SUBMIT, [("t1", "not for you")]))
    cmds = tick(s)
    assert sends(cmds) == [(C, m.RejectedEntries)]


def test_a_peer_that_stopped_reading_is_dropped_and_its_tasks_run_again() -> None:
    s = core()
    worker(s, hello())
    client(s, m.Submit([("t1", "job", b"a", {})]))
    tick(s)
    s.handle(ev.PeerStoppedReading(W))
    s.validate()
    assert not s.workers and s.tasks["t1"].state is State.QUEUED
    assert any(isinstance(c, ev.Log) and c.level == "warning" for c in tick(s))


def test_a_revoked_key_disconnects_its_worker() -> None:
    s = core()
    worker(s, hello())
    tick(s)
    s.handle(ev.KeyRevoked(W, "its key is gone"))
    assert sends(tick(s)) == [(W, m.Disconnect)]
    assert not s.workers


def test_records_loaded_from_the_store_answer_a_watch() -> None:
    s = core()
    done = master_core.TaskRecord("old", "job", b"", state=State.SUCCEEDED, result=b"r",
                                  created=T0 - 10, updated=T0 - 5)
    s.handle(ev.RecordsLoaded([done]))
    client(s, m.Watch(["old"]))
    assert sends(tick(s)) == [(C, m.Result)]


def test_stopping_hands_over_the_last_persist_and_sends_nothing() -> None:
    s = core()
    worker(s, hello())
    client(s, m.Submit([("t1", "job", b"a", {})]))
    cmds = s.handle(ev.Stopping())
    assert [type(c) for c in cmds if not isinstance(c, ev.Log)] == [ev.Persist]
    assert [t.id for t in persist(cmds).saves] == ["t1"]
    assert not s.lease  # nothing was leased on the way out


@pytest.mark.parametrize("cls", [
    ev.MessageReceived, ev.GarbageReceived, ev.MessageDropped, ev.HandlingFailed,
    ev.EntriesRefused, ev.PeerStoppedReading, ev.KeyRevoked, ev.StoreChanged,
    ev.RecordsLoaded, ev.Stopping, ev.Persist, ev.Send, ev.Log])
def test_events_and_commands_are_frozen_slotted_dataclasses(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in vars(cls)


def test_every_event_has_a_handler() -> None:
    assert set(master_core._EVENT_HANDLERS) == set(ev.Event.__args__)  # type: ignore[attr-defined]
