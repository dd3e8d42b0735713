"""The event subscriptions of the master core (protocol 1.3), without sockets: events in
order for a known workload, filters, the window's counted gap, refused subscriptions,
expiry, and the EVENTS frame round trip."""

from __future__ import annotations

from zq.core import codec
from zq.core import master_events as ev
from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.messages import Role

SUB, CLIENT, WORKER = b"sub", b"cli", b"wrk"


def core() -> MasterCore:
    c = MasterCore(master_id="m")
    c.advance(1.0, 1000.0)
    return c


def query(c: MasterCore, rid: bytes, args: dict, request_id: int = 1) -> m.Reply:
    c.on_query(Caller(rid), request_id, "events", args)
    out = c.flush().messages
    replies = [msg for r, msg in out if r == rid and isinstance(msg, m.Reply)]
    assert len(replies) == 1, out
    return replies[0]


def events_for(rid: bytes, out: list) -> list[m.Events]:
    return [msg for r, msg in out if r == rid and isinstance(msg, m.Events)]


def hello(c: MasterCore, queues=("default",)) -> None:
    c.on_hello(WORKER, m.Hello("w1", "h", 1, list(queues), 4, "thread", 4, []))


def run_one(c: MasterCore, tid: str, name: str = "app:f", queue: str = "default") -> list:
    """Submit tid, lease it to the worker, report success; every turn's messages."""
    turns = []
    c.on_submit(CLIENT, [(tid, name, b"\x92\x90\x80", {"queue": queue})])
    turns += c.tick(1.0)
    w = c.touch_worker(WORKER)
    assert w is not None
    c.on_progress(w, [(tid, 1, 1.0, 2.0)])
    c.on_worker_results(w, [(tid, 1, int(m.Outcome.OK), b"\x01")])
    turns += c.tick(1.0)
    return [(cmd.rid, cmd.message) for cmd in turns if isinstance(cmd, ev.Send)]


def test_task_events_come_in_order_with_their_fields():
    c = core()
    assert query(c, SUB, {}).body["subscribed"] is True
    hello(c)
    out = run_one(c, "t1")
    got = [e for batch in events_for(SUB, out) for e in batch.events]
    assert [e["kind"] for e in got] == ["joined", "submitted", "started", "progress",
                                        "succeeded"]
    started = got[2]
    assert (started["id"], started["name"], started["queue"], started["attempt"],
            started["worker"]) == ("t1", "app:f", "default", 1, "w1")
    assert (got[3]["done"], got[3]["total"]) == (1.0, 2.0)
    batches = events_for(SUB, out)
    assert batches[0].first == 0 and batches[1].first == len(batches[0].events)


def test_worker_events_joined_left_and_lost():
    c = core()
    query(c, SUB, {"kinds": ["joined", "left", "lost"]})
    hello(c)
    w = c.touch_worker(WORKER)
    c.on_bye(w, m.Bye([]))
    hello(c)
    c.drop_peer(WORKER)  # stopped reading: lost
    got = [e["kind"] for b in events_for(SUB, c.flush().messages) for e in b.events]
    assert got == ["joined", "left", "joined", "lost"]


def test_filters_by_queue_task_name_and_kind():
    c = core()
    hello(c, ("default", "io"))
    query(c, b"q", {"queue": "io"})
    query(c, b"n", {"task": "app:g"})
    query(c, b"k", {"kinds": ["succeeded"]})
    out = run_one(c, "t1", "app:f", "default") + run_one(c, "t2", "app:g", "io")
    ids = {rid: [(e["id"], e["kind"]) for b in events_for(rid, out) for e in b.events]
           for rid in (b"q", b"n", b"k")}
    assert {i for i, _ in ids[b"q"]} == {"t2"}
    assert {i for i, _ in ids[b"n"]} == {"t2"}
    assert ids[b"k"] == [("t1", "succeeded"), ("t2", "succeeded")]


def test_a_subscriber_that_does_not_read_gets_a_counted_gap(monkeypatch):
    from zq.core import events
    monkeypatch.setattr(events, "WINDOW", 5)
    c = core()
    hello(c)
    query(c, SUB, {"kinds": ["submitted"]})
    c.on_submit(CLIENT, [(f"t{i}", "app:f", b"\x92\x90\x80", {}) for i in range(8)])
    first = events_for(SUB, c.flush().messages)
    assert [(b.first, len(b.events), b.dropped) for b in first] == [(0, 5, 0)]
    c.on_submit(CLIENT, [(f"u{i}", "app:f", b"\x92\x90\x80", {}) for i in range(4)])
    assert events_for(SUB, c.flush().messages) == []  # window still full: nothing sent
    # The subscriber reads and says so: the gap (3 + 4 left out) is told, then what comes.
    c.on_query(Caller(SUB), 2, "events", {"kinds": ["submitted"], "seen": 5})
    out = c.flush().messages
    assert [msg.body["dropped"] for r, msg in out if isinstance(msg, m.Reply)] == [7]
    assert [(b.first, b.events, b.dropped) for b in events_for(SUB, out)] == [(5, [], 7)]
    c.on_submit(CLIENT, [("v0", "app:f", b"\x92\x90\x80", {})])
    after = events_for(SUB, c.flush().messages)
    assert [(b.first, b.dropped, [e["id"] for e in b.events]) for b in after] == [
        (5, 0, ["v0"])]


def test_bad_subscriptions_are_refused_with_a_reason():
    c = core()
    for args, says in (({"kinds": ["exploded"]}, "kinds must be"), ({"kinds": []}, "kinds"),
                       ({"kinds": [3]}, "kinds"), ({"queue": 7}, "queue"),
                       ({"seen": -1}, "seen"), ({"what": 1}, "no argument")):
        reply = query(c, SUB, args)
        assert not reply.ok and says in reply.body, (args, reply.body)
    assert not c.events.subs


def test_unrenewed_subscriptions_expire_and_stop_ends_one():
    c = core()
    query(c, SUB, {})
    query(c, b"other", {})
    assert query(c, b"other", {"stop": 1}).body == {"subscribed": False, "was": True}
    c.advance(12.0, 1011.0)
    c.housekeeping()
    assert not c.events.subs


def test_events_frames_round_trip_and_garbage_is_a_protocol_error():
    msg = m.Events(3, [{"kind": "started", "time": 1.5, "id": "t"}], 2)
    role, back = codec.decode(codec.encode(Role.MASTER, msg))
    assert role is Role.MASTER and back == msg
    import pytest

    from zq.errors import ProtocolError
    for bad in (m.Events(-1, [], 0), m.Events(0, [{"time": 1.0}], 0), m.Events(0, [7], 0)):
        with pytest.raises(ProtocolError):
            codec.decode(codec.encode(Role.MASTER, bad))
