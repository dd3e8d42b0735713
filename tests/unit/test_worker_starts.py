"""The worker's STARTED notices (protocol 1.4, PROTOCOL.md §4 Starts): offered in HELLO,
sent only to a master whose WELCOME takes them, for a task that has run STARTED_DELAY
(a task whose RESULT comes sooner needs none), once, and again after every WELCOME."""

from __future__ import annotations

from tests.unit.test_worker_core import Session, entry, result
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as ev
from zq.core.messages import Outcome

DELAY = wc.STARTED_DELAY


def taking(started: bool = True) -> Session:
    """A registered worker whose master says whether it takes STARTED."""
    s = Session()
    s.start()
    s.recv(m.Welcome(1.0, 3, 1 << 20, "M", started=started))
    s.tick()
    s.pop_sent()
    s.pop_other()
    return s


def run(s: Session, *ids: str, attempt: int = 1) -> None:
    s.recv(m.Task([entry(i, attempt) for i in ids]))


def pool_says_started(s: Session, *ids: str, results: tuple = ()) -> None:
    s.event(ev.PoolReported(list(results), [], [], [], s.now, list(ids)))


def starts_sent(s: Session) -> list[list[m.StartedEntry]]:
    return [msg.entries for msg in s.pop_sent() if isinstance(msg, m.Started)]


def test_hello_offers_started() -> None:
    s = Session()
    s.start()
    (hello,) = s.pop_sent()
    assert isinstance(hello, m.Hello) and hello.started is True


def test_a_task_that_runs_a_while_is_announced_once() -> None:
    s = taking()
    run(s, "a", "b")
    pool_says_started(s, "a")
    s.tick()
    assert starts_sent(s) == []  # not yet: it may end at once
    assert s.core.next_deadline() <= s.now + DELAY
    s.tick(DELAY)
    assert starts_sent(s) == [[("a", 1)]]
    s.tick(5 * DELAY)
    assert starts_sent(s) == []  # once


def test_the_attempt_is_the_one_held() -> None:
    s = taking()
    run(s, "a", attempt=3)
    pool_says_started(s, "a")
    s.tick(DELAY)
    assert starts_sent(s) == [[("a", 3)]]


def test_a_task_whose_result_comes_soon_needs_no_notice() -> None:
    s = taking()
    run(s, "a", "b")
    pool_says_started(s, "a")
    pool_says_started(s, "b", results=(result("a"),))  # a ended before its delay
    s.tick(DELAY)
    assert starts_sent(s) == [[("b", 1)]]


def test_nothing_is_sent_to_a_master_that_does_not_take_them() -> None:
    s = taking(started=False)  # a 1.3 master: its WELCOME has no `started`
    run(s, "a")
    pool_says_started(s, "a")
    s.tick(DELAY)
    s.tick(DELAY)
    assert starts_sent(s) == []
    assert s.core.next_deadline() > s.now + DELAY  # and no wake-ups for them


def test_ids_the_worker_does_not_hold_are_ignored() -> None:
    s = taking()
    pool_says_started(s, "ghost")
    s.tick(DELAY)
    assert starts_sent(s) == []


def test_every_welcome_announces_running_tasks_again_at_once() -> None:
    """A reconnect may reach a restarted master that knows nothing of the starts."""
    s = taking()
    run(s, "a", "b")
    pool_says_started(s, "a")
    s.tick(DELAY)
    assert starts_sent(s) == [[("a", 1)]]
    s.recv(m.Disconnect("register again"))
    s.tick()
    s.recv(m.Welcome(1.0, 3, 1 << 20, "M2", started=True))
    s.tick()
    assert starts_sent(s) == [[("a", 1)]]


def test_a_notice_that_could_not_be_sent_goes_again() -> None:
    s = taking()
    run(s, "a")
    pool_says_started(s, "a")
    s.tick(DELAY)
    (entries,) = starts_sent(s)
    s.event(ev.SendFailed(m.Started(entries), s.now))
    # Due again, but not "now": the shell waits for room on the socket (POLLOUT) rather
    # than turning its loop at once (minus infinity) while the queue stays full.
    assert s.core.send_blocked and s.core.next_deadline() > s.now
    s.tick()
    assert starts_sent(s) == [[("a", 1)]]


def test_a_task_given_back_or_killed_is_not_announced() -> None:
    s = taking()
    run(s, "a", "b", "c")
    pool_says_started(s, "a", "c")
    s.event(ev.StopRequested(["b"], s.now))  # b never ran; a and c still run
    pool_says_started(s, results=(result("c", Outcome.CANCELLED),))
    s.tick(DELAY)
    assert starts_sent(s) == [[("a", 1)]]
    s.event(ev.StopForced(s.now))  # a is killed: validate() sees nothing left announced
    assert starts_sent(s) == []
