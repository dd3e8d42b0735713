"""Issue 9, finding 6: the master knows a worker by the session token of its HELLO, not
by its name. Two workers may share a name (two containers, each pid 1 on one hostname);
each is served, and neither takes over the other's tasks, in a reconnect or a restart.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_master_core import ERR, OK, C, Harness, S, h, make, ok  # noqa: F401 (h: fixture)
from tests.unit.test_worker_core import Session
from zq.core import codec, queries
from zq.core import messages as m
from zq.core.messages import Role
from zq.core.tasks import TaskRecord
from zq.errors import ProtocolError

A_TOKEN = "a" * 32
B_TOKEN = "b" * 32
A1, A2, B1 = b"a-first", b"a-again", b"b-first"


def hello(h: Harness, rid: bytes, session: str, *, name: str = "dup", credit: int = 1,
          running: tuple[str, ...] = ()) -> None:
    h.s.on_hello(rid, m.Hello(name, "host", 1, ["default"], credit, "thread", credit,
                              list(running), session))
    h.s.validate()


def leased_to(h: Harness, tid: str) -> bytes | None:
    return h.s.lease.get(tid)


@pytest.fixture
def two() -> Any:
    """Workers A and B, both named "dup", each running one task: a1 on A, b1 on B."""
    h = Harness()
    hello(h, A1, A_TOKEN)
    hello(h, B1, B_TOKEN)
    h.submit("a1")
    h.dispatch()
    h.submit("b1")
    h.dispatch()
    h.out()
    assert (leased_to(h, "a1"), leased_to(h, "b1")) == (A1, B1)
    yield h
    h.s.validate()


def test_two_workers_with_one_name_are_both_registered_and_shown(two: Harness) -> None:
    shown = queries.status(two.s)["workers"]
    assert sorted((w["name"], w["session"]) for w in shown) == [
        ("dup", A_TOKEN[:8]), ("dup", B_TOKEN[:8])]
    assert all(len(w["session"]) == 8 for w in shown)  # never the whole token


def test_a_reconnecting_worker_keeps_only_its_own_tasks(two: Harness) -> None:
    h = two
    # A lost the master and is back on a fresh socket, still running a1. It also names
    # b1, which it never had (a bug, or a peer that knows the name): b1 stays on B.
    hello(h, A2, A_TOKEN, running=("a1", "b1"))
    assert leased_to(h, "a1") == A2
    assert leased_to(h, "b1") == B1 and "b1" in h.s.workers[B1].leased
    h.out()
    h.results(B1, ("b1", 1, OK))
    assert h.out() == [(C, "RESULT", [ok("b1")]), (B1, "ACK", ["b1"])]


def test_a_rerun_on_the_other_worker_is_not_taken_over_when_the_first_comes_back() -> None:
    """a1 was requeued when A went silent and now runs on B; A comes back still running
    its old attempt. B keeps the lease (by name, A would have taken it)."""
    h = make()
    hello(h, A1, A_TOKEN)
    h.submit("a1", retries=1)
    h.dispatch()
    h.later(2)
    hello(h, B1, B_TOKEN)
    h.later(1.5)
    h.tick()  # A is lost: a1 goes to B as attempt 2
    h.dispatch()
    h.out()
    assert leased_to(h, "a1") == B1 and h.attempt("a1") == 2
    hello(h, A2, A_TOKEN, running=("a1",))
    assert leased_to(h, "a1") == B1
    h.out()
    # A's old attempt fails: not B's run, so it decides nothing; B's success settles it
    h.results(A2, ("a1", 1, ERR))
    assert h.state("a1") is S.RUNNING and leased_to(h, "a1") == B1
    h.results(B1, ("a1", 2, OK))
    assert h.out() == [(A2, "ACK", ["a1"]), (C, "RESULT", [ok("a1")]), (B1, "ACK", ["a1"])]


def test_a_result_from_the_other_worker_of_that_name_stops_the_holder() -> None:
    """At-least-once: before a master crash a1 ran on A (attempt 1), then, A thought
    lost, on B (attempt 2, never saved). After the restart A adopts a1; B's run finishes
    first. A is another worker, so it is told to stop; by name it was left running."""
    h = make(durable=True)
    h.s.restore([TaskRecord("a1", "job", b"", state=S.RUNNING, attempt=1, seq=1)])
    hello(h, A1, A_TOKEN, running=("a1",))
    hello(h, B1, B_TOKEN)
    h.out()
    h.results(B1, ("a1", 2, OK))
    assert h.out() == [(A1, "CANCEL", ["a1"]), (B1, "ACK", ["a1"])]
    assert h.state("a1") is S.SUCCEEDED and not h.s.lease


def test_the_same_session_on_a_new_connection_gets_no_more_tasks_on_the_old_one() -> None:
    h = make()
    hello(h, A1, A_TOKEN, credit=2)
    h.submit("a1", "a2")
    h.dispatch()
    h.out()
    hello(h, A2, A_TOKEN, credit=2, running=("a1",))  # a2 finished: its result comes next
    assert h.s.sessions == {A_TOKEN: A2} and h.s.workers[A1].credit == 0
    h.results(A2, ("a2", 1, OK))  # the result, sent again, settles a2 (leased to A1)
    assert h.out() == [(A2, "WELCOME"), (A2, "ACK", ["a2"]), (C, "RESULT", [ok("a2")])]
    h.submit("a3")
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["a3"]), (A2, "TASK", ["a3"])]
    h.later(3.5)
    h.heartbeat(A2)
    h.tick()  # the old connection expires with nothing left on it
    assert list(h.s.workers) == [A2] and h.s.sessions == {A_TOKEN: A2}
    assert h.state("a1") is S.RUNNING and leased_to(h, "a1") == A2


def test_a_master_restart_gives_each_worker_of_one_name_its_own_tasks() -> None:
    h = make(durable=True)
    h.s.restore([TaskRecord("a1", "job", b"", state=S.RUNNING, attempt=1, seq=1),
                 TaskRecord("b1", "job", b"", state=S.RUNNING, attempt=1, seq=2)])
    hello(h, A1, A_TOKEN, running=("a1",))
    hello(h, B1, B_TOKEN, running=("b1",))
    assert h.s.lease == {"a1": A1, "b1": B1}
    hello(h, B1 + b"!", B_TOKEN, running=("a1", "b1"))  # B again, claiming a1 as well
    assert h.s.lease == {"a1": A1, "b1": B1 + b"!"}


def test_a_worker_without_a_token_is_known_by_its_name_as_in_1_0(h: Harness) -> None:
    h.hello(b"old", name="legacy", credit=1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.hello(b"old-again", name="legacy", credit=1, running=("t1",))
    assert leased_to(h, "t1") == b"old-again"
    assert queries.status(h.s)["workers"][-1]["session"] == ""
    hello(h, b"new", "c" * 32, name="legacy", running=("t1",))
    assert leased_to(h, "t1") == b"old-again"  # a token never matches a 1.0 worker's name


def test_dropping_a_worker_forgets_its_session(two: Harness) -> None:
    two.bye(A1)
    assert two.s.sessions == {B_TOKEN: B1}


# --- the worker side ------------------------------------------------------------------

def test_the_worker_sends_the_same_token_in_every_hello() -> None:
    s = Session(session=A_TOKEN)
    s.start()
    first = s.pop_sent()
    s.tick(3.0)  # the master is silent: reconnect
    s.pop_other()
    s.tick(0.2)
    again = s.pop_sent()
    assert [type(x) for x in first + again] == [m.Hello, m.Hello]
    assert first[0].session == again[0].session == A_TOKEN


# --- the wire --------------------------------------------------------------------------

def _hello_header(*fields: Any) -> list[bytes]:
    return [codec.SIGNATURES[Role.WORKER], codec._packb([int(m.Cmd.HELLO), *fields])]


BASE = ["w", "h", 1, ["default"], 1, "thread", 2, []]


def test_a_1_0_hello_decodes_without_a_token() -> None:
    role, msg = codec.decode(_hello_header(*BASE))
    assert isinstance(msg, m.Hello) and msg.session == ""


def test_a_1_1_hello_round_trips_its_token() -> None:
    msg = m.Hello("w", "h", 1, ["default"], 1, "thread", 2, ["t"], A_TOKEN)
    assert codec.decode(codec.encode(Role.WORKER, msg))[1] == msg


@pytest.mark.parametrize("token", ["", "short", "a" * 65, "0123456789abcdef-01", "é" * 16,
                                   None, 12, ["a" * 32]])
def test_a_bad_token_is_refused(token: Any) -> None:
    with pytest.raises(ProtocolError, match="session token"):
        codec.decode(_hello_header(*BASE, token))


@pytest.mark.parametrize("index,value", [(0, ""), (0, "evil\nworker x registered"),
                                         (1, "h\r"), (5, ""), (0, "w" * (codec.MAX_NAME + 1))])
def test_names_must_be_printable_and_not_empty(index: int, value: str) -> None:
    fields = list(BASE)
    fields[index] = value
    with pytest.raises(ProtocolError, match="printable"):
        codec.decode(_hello_header(*fields))


def test_too_many_queues_are_refused() -> None:
    fields = list(BASE)
    fields[3] = [f"q{i}" for i in range(codec.MAX_QUEUES + 1)]
    with pytest.raises(ProtocolError, match="queues"):
        codec.decode(_hello_header(*fields))
