"""The worker's session logic, without sockets: events in, commands out, in milliseconds."""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zq.config import WorkerConfig
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as ev
from zq.core.messages import Outcome
from zq.core.serde import decode_error


def entry(task_id: str, attempt: int = 1, timeout: float | None = None) -> tuple:
    return (task_id, attempt, "app:fn", b"\x92\x90\x80", timeout, None)


def result(task_id: str, outcome: int = Outcome.OK, payload: bytes = b"\xc0",
           attempt: int = 1) -> tuple:
    return (task_id, attempt, int(outcome), payload)


SESSION = "0123456789abcdef0123456789abcdef"


class Session:
    """A WorkerCore with a clock, the messages it sent and its other commands."""

    def __init__(self, **kw: Any) -> None:
        params: dict[str, Any] = dict(name="w", host="h", pid=7, queues=["default"], concurrency=2,
                      pool="process", credit=4, session=SESSION, shutdown_timeout=10.0,
                      reconnect_min=0.1,
                      reconnect_max=1.0, rand=lambda: 0.0)
        params.update(kw)
        self.core = wc.WorkerCore(**params)
        self.now = 100.0
        self.sent: list[m.Message] = []
        self.other: list[ev.Command] = []

    def _take(self, cmds: list[ev.Command]) -> list[ev.Command]:
        for c in cmds:
            if isinstance(c, ev.Send):
                self.sent.append(c.message)
            else:
                self.other.append(c)
        self.core.validate()
        return cmds

    def start(self) -> list[ev.Command]:
        return self._take(self.core.handle(ev.Started(self.now)) + self.core.tick(self.now))

    def event(self, ev: ev.Event) -> list[ev.Command]:
        return self._take(self.core.handle(ev))

    def recv(self, msg: m.Message) -> list[ev.Command]:
        return self.event(ev.MessageReceived(msg, self.now))

    def report(self, results: Sequence = (), partials: Sequence = (), progress: Sequence = (),
               returned: Sequence[str] = ()) -> list[ev.Command]:
        return self.event(ev.PoolReported(list(results), list(partials), list(progress),
                                              list(returned), self.now))

    def tick(self, advance: float = 0.0) -> list[ev.Command]:
        self.now += advance
        return self._take(self.core.tick(self.now))

    def pop_sent(self) -> list[m.Message]:
        out, self.sent = self.sent, []
        return out

    def pop_other(self) -> list[ev.Command]:
        out, self.other = self.other, []
        return out

    def until_reconnect(self) -> float:
        at = self.core.reconnect_at
        assert at is not None
        return at - self.now

    def register(self, interval: float = 1.0, liveness: int = 3) -> None:
        self.recv(m.Welcome(interval, liveness, 1 << 20, "M"))
        self.tick()


@pytest.fixture
def s() -> Iterator[Session]:
    session = Session()
    session.start()
    session.pop_other()
    yield session
    session.core.validate()


def registered(**kw: Any) -> Session:
    session = Session(**kw)
    session.start()
    session.register()
    session.pop_sent()
    session.pop_other()
    return session


# --- backoff --------------------------------------------------------------------------

# docs/PROTOCOL.md §1: reconnect tries wait 100 ms doubling to 30 s, with jitter.
RECONNECT_WAITS = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]


def test_backoff_doubles_to_the_cap() -> None:
    cfg = WorkerConfig(connect="tcp://127.0.0.1:1", apps=("m",))
    assert (cfg.reconnect_min, cfg.reconnect_max) == (0.1, 30.0)
    delays = [wc.compute_backoff(a, base=0.1, cap=30.0, jitter_fraction=0.0, rand=0.9)
              for a in range(len(RECONNECT_WAITS))]
    assert delays == pytest.approx(RECONNECT_WAITS)
    assert wc.compute_backoff(10_000, base=0.1, cap=30.0, jitter_fraction=0.0,
                              rand=0.0) == pytest.approx(30.0)


@given(attempt=st.integers(0, 10_000), jitter=st.floats(0, 1),
       rand=st.floats(0, 1, exclude_max=True))
def test_backoff_stays_within_its_bounds(attempt: int, jitter: float, rand: float) -> None:
    """Jitter only shortens a wait, by at most jitter_fraction of it."""
    full = RECONNECT_WAITS[min(attempt, len(RECONNECT_WAITS) - 1)]
    d = wc.compute_backoff(attempt, base=0.1, cap=30.0, jitter_fraction=jitter, rand=rand)
    assert (1 - jitter) * full * (1 - 1e-9) <= d <= full * (1 + 1e-9)


# --- registration, liveness, heartbeats -------------------------------------------------

def test_start_opens_a_socket_and_says_hello() -> None:
    session = Session()
    cmds = session.start()
    assert isinstance(cmds[0], ev.OpenConnection)
    assert session.pop_sent() == [m.Hello("w", "h", 7, ["default"], 2, "process", 4, [], SESSION,
                                          started=True)]
    assert session.core.next_deadline() == pytest.approx(103.0)  # 1 s x 3 before WELCOME


def test_no_heartbeat_before_welcome_and_master_lost_after_the_default_window(s: Session) -> None:
    s.pop_sent()
    s.tick(2.9)
    assert s.pop_sent() == [] and s.pop_other() == []
    s.tick(0.1)
    closes = s.pop_other()
    assert len(closes) == 1 and isinstance(closes[0], ev.CloseConnection) and closes[0].lost
    assert s.core.link is wc.Link.BACKING_OFF
    assert s.core.next_deadline() == pytest.approx(s.now + 0.1)
    s.tick(0.1)
    assert isinstance(s.pop_other()[0], ev.OpenConnection)
    assert isinstance(s.pop_sent()[0], m.Hello)


def test_welcome_settings_drive_heartbeats_when_idle(s: Session) -> None:
    s.pop_sent()
    s.recv(m.Welcome(0.5, 4, 1 << 20, "M"))
    s.tick()
    assert s.core.registered and s.pop_sent() == []
    assert s.core.next_deadline() == pytest.approx(s.now + 0.5)
    s.tick(0.5)
    assert s.pop_sent() == [m.Heartbeat()]
    s.tick(0.3)
    s.report(results=[result("x")])  # traffic: no heartbeat needed
    s.tick(0.2)
    assert [type(x) for x in s.pop_sent()] == [m.Result]
    s.tick(0.4)
    assert s.pop_sent() == []
    s.tick(0.1)
    assert s.pop_sent() == [m.Heartbeat()]
    s.tick(1.0)  # 2.0 s of silence from the master: the window is 0.5 x 4
    assert isinstance(s.pop_other()[0], ev.CloseConnection)


def test_any_message_or_garbage_is_a_sign_of_life() -> None:
    s = registered()
    s.tick(2.5)
    s.event(ev.GarbageReceived(s.now))
    s.tick(2.5)
    s.recv(m.Heartbeat())
    s.tick(2.5)
    assert s.core.registered and not any(isinstance(c, ev.CloseConnection) for c in s.other)


def test_backoff_grows_per_failure_and_resets_on_welcome() -> None:
    s = registered(reconnect_min=0.1, reconnect_max=0.3)
    waits = []
    for _ in range(4):
        s.tick(3.0)  # lost
        waits.append(s.until_reconnect())
        s.tick(s.until_reconnect())  # reconnect, no answer
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.3])
    s.register()
    s.tick(3.0)
    assert s.until_reconnect() == pytest.approx(0.1)


def test_disconnect_registers_again_on_the_same_socket() -> None:
    s = registered()
    s.recv(m.Disconnect("unknown worker"))
    s.tick()
    assert [type(x) for x in s.pop_sent()] == [m.Hello]
    assert s.pop_other() == [] and s.core.link is wc.Link.CONNECTING


# --- tasks, results, outbox -------------------------------------------------------------

def test_task_is_executed_once_and_credit_overruns_are_counted() -> None:
    s = registered(credit=2)
    cmds = s.recv(m.Task([entry("a"), entry("b")]))
    assert cmds == [ev.Execute([entry("a"), entry("b")])]
    assert s.recv(m.Task([entry("a")])) == []  # already held
    s.recv(m.Task([entry("c")]))
    stats = s.core.statistics()
    assert (stats.held, stats.duplicate_tasks, stats.over_credit) == (3, 1, 1)


def test_one_message_per_command_per_turn_in_stream_order() -> None:
    s = registered()
    s.recv(m.Task([entry("a"), entry("b")]))
    s.report(partials=[("a", 1, 0, b"\x01")], progress=[("a", 1, 1.0, 4.0)])
    s.report(partials=[("a", 1, 1, b"\x02")], progress=[("a", 1, 3.0, 4.0)],
             results=[result("a")])
    s.report(results=[result("b", Outcome.ERROR, b"\x80")])
    s.tick()
    assert s.pop_sent() == [
        m.Partial([("a", 1, 0, b"\x01"), ("a", 1, 1, b"\x02")]),
        m.Progress([("a", 1, 3.0, 4.0)]),  # coalesced to the latest
        m.Result([result("a"), result("b", Outcome.ERROR, b"\x80")]),
    ]
    assert s.core.held == {}


def test_ack_forgets_and_unacked_results_are_resent_after_every_welcome() -> None:
    s = registered()
    s.recv(m.Task([entry("a"), entry("b"), entry("c")]))
    s.report(results=[result("a"), result("b")])
    s.tick()
    s.recv(m.Ack(["a", "zzz"]))
    s.tick(3.0)  # master lost
    s.tick(1.0)  # reconnect
    hello = [x for x in s.pop_sent() if isinstance(x, m.Hello)][-1]
    assert hello.running == ["c"]
    s.report(results=[result("c")])  # finished while not registered: waits in the outbox
    s.tick()
    assert not any(isinstance(x, m.Result) for x in s.pop_sent())
    s.register()
    assert s.pop_sent() == [m.Result([result("b"), result("c")])]
    s.register()  # a second WELCOME resends again
    assert s.pop_sent() == [m.Result([result("b"), result("c")])]
    s.recv(m.Ack(["b", "c"]))
    s.register()
    assert s.pop_sent() == []


def test_a_refused_result_send_is_retried_next_turn() -> None:
    """A send zmq refused (nowhere to queue it) goes again on the next turn; until then
    the core waits for the shell's news (room on the socket, or anything else) instead
    of asking for a turn at once, which spun the worker's loop while the queue stayed
    full."""
    s = registered()
    s.recv(m.Task([entry("a")]))
    s.report(results=[result("a")])
    assert s.core.next_deadline() == -math.inf  # a result to send: no wait
    s.tick()
    (msg,) = s.pop_sent()
    s.event(ev.SendFailed(msg, s.now))
    assert s.core.send_blocked
    assert s.core.next_deadline() == s.core.last_send + s.core.interval  # the heartbeat's
    s.tick()
    assert s.pop_sent() == [m.Result([result("a")])]
    assert not s.core.send_blocked
    s.event(ev.SendFailed(m.Heartbeat(), s.now))  # lost, like on any reconnect
    assert s.core.send_blocked
    s.tick()
    assert s.pop_sent() == [] and not s.core.send_blocked


def test_result_over_the_masters_limit_becomes_fatal() -> None:
    s = Session()
    s.start()
    s.recv(m.Welcome(1.0, 3, 100, "M"))
    s.recv(m.Task([entry("a")]))
    s.report(results=[result("a", payload=b"x" * 101)])
    s.tick()
    (sent,) = [x for x in s.pop_sent() if isinstance(x, m.Result)]
    (task_id, attempt, outcome, payload), = sent.entries
    assert (task_id, outcome) == ("a", Outcome.FATAL)
    assert decode_error(payload)["type"] == "SerializationError"


def test_cancel_is_passed_on_for_held_tasks_only() -> None:
    s = registered()
    s.recv(m.Task([entry("a"), entry("b")]))
    s.report(results=[result("b")])
    assert s.recv(m.Cancel(["a", "b", "zzz"])) == [ev.CancelTasks(["a"])]
    assert s.recv(m.Cancel(["zzz"])) == []


def test_partials_while_disconnected_are_kept_up_to_a_bound() -> None:
    """Chunks made while the master is away wait for the next WELCOME, up to
    MAX_BUFFERED_PARTIALS of them; a report that does not fit is dropped and counted."""
    bound = wc.MAX_BUFFERED_PARTIALS
    s = registered()
    s.tick(3.0)
    assert not s.core.registered
    kept = [("a", 1, seq, b"\x01") for seq in range(bound)]
    for i in range(0, bound, 10_000):
        s.report(partials=kept[i:i + 10_000])
    s.report(partials=[("a", 1, bound, b"\x02"), ("a", 1, bound + 1, b"\x02")])
    assert s.core.statistics().partials_dropped == 2
    s.tick(1.0)
    s.register()
    sent = [e for msg in s.pop_sent() if isinstance(msg, m.Partial) for e in msg.entries]
    assert sent == kept


# --- stopping ---------------------------------------------------------------------------

def test_graceful_stop_returns_unstarted_waits_for_running_and_acks_then_bye() -> None:
    s = registered()
    s.recv(m.Task([entry("run"), entry("wait")]))
    s.event(ev.StopRequested(["wait"], s.now))
    s.tick()
    assert s.pop_sent() == [m.Credit(0, ["wait"])]
    s.recv(m.Task([entry("late")]))  # the master had not seen CREDIT yet
    s.tick()
    assert s.pop_sent() == [m.Credit(0, ["late"])]
    s.pop_other()
    for _ in range(4):  # 8 s: "run" still running, within shutdown_timeout
        s.tick(2.0)
        s.recv(m.Heartbeat())
    assert s.pop_other() == [] and all(x == m.Heartbeat() for x in s.pop_sent())
    s.report(results=[result("run")])
    s.tick()
    assert s.pop_sent() == [m.Result([result("run")])]
    assert s.core.phase is wc.Phase.FLUSHING
    s.recv(m.Ack(["run"]))
    s.tick()
    assert s.pop_sent() == [m.Bye([])]
    assert s.pop_other() == [ev.CloseConnection("worker stopped", lost=False), ev.Exit(0)]
    assert s.core.phase is wc.Phase.DONE and s.tick(10.0) == []


def test_stop_kills_tasks_past_the_shutdown_timeout() -> None:
    s = registered(shutdown_timeout=2.0)
    s.recv(m.Task([entry("slow")]))
    s.pop_other()
    s.event(ev.StopRequested([], s.now))
    s.tick()
    assert s.pop_sent() == [m.Credit(0, [])]
    s.recv(m.Heartbeat())
    s.tick(1.9)
    assert s.pop_other() == []
    s.pop_sent()  # heartbeats
    s.tick(0.1)  # nothing left to wait for: killed, BYE, gone in the same turn
    assert s.pop_sent() == [m.Bye([])]
    assert s.pop_other() == [ev.KillTasks(), ev.CloseConnection("worker stopped", lost=False),
                             ev.Exit(0)]


def test_unacked_results_delay_the_exit_at_most_one_liveness_window() -> None:
    s = registered()
    s.recv(m.Task([entry("a")]))
    s.report(results=[result("a")])
    s.event(ev.StopRequested([], s.now))
    s.tick()
    s.pop_sent()
    s.tick(2.9)
    assert not any(isinstance(c, ev.Exit) for c in s.pop_other())
    s.recv(m.Heartbeat())
    s.tick(0.1)
    assert ev.Exit(0) in s.pop_other()


def test_stop_while_disconnected_says_credit_zero_in_hello_and_returns_after_welcome() -> None:
    s = registered()
    s.recv(m.Task([entry("run"), entry("wait")]))
    s.tick(3.0)  # master lost
    s.event(ev.StopRequested(["wait"], s.now))
    s.tick(1.0)
    hello = [x for x in s.pop_sent() if isinstance(x, m.Hello)][-1]
    assert (hello.credit, hello.running) == (0, ["run"])
    s.register()
    assert s.pop_sent() == [m.Credit(0, ["wait"])]


def test_late_returns_from_the_pool_go_back_in_another_credit() -> None:
    s = registered()
    s.recv(m.Task([entry("a"), entry("b")]))
    s.event(ev.StopRequested([], s.now))
    s.tick()
    s.pop_sent()
    s.report(returned=["b"])
    s.tick()
    assert s.pop_sent() == [m.Credit(0, ["b"])]
    assert list(s.core.held) == ["a"]


def test_forced_stop_kills_sends_what_it_has_and_exits_1() -> None:
    s = registered()
    s.recv(m.Task([entry("a"), entry("b")]))
    s.report(results=[result("a")])
    s.pop_other()
    s.event(ev.StopForced(s.now))
    assert s.pop_sent() == [m.Result([result("a")]), m.Bye([])]
    assert s.pop_other() == [ev.KillTasks(), ev.CloseConnection("worker stopped", lost=False),
                             ev.Exit(1)]


def test_stop_when_backing_off_exits_without_a_socket_to_close() -> None:
    s = registered()
    s.tick(3.0)
    s.pop_other()
    s.event(ev.StopRequested([], s.now))
    s.tick()
    assert s.pop_other() == [ev.Exit(0)]


# --- the outbox never forgets an unacknowledged result ----------------------------------

class OutboxMachine(RuleBasedStateMachine):
    """Random tasks, results, ACKs, lost masters, reconnects, WELCOMEs and DISCONNECTs:
    every result not yet ACKed stays in the outbox and is sent after every WELCOME."""

    def __init__(self) -> None:
        super().__init__()
        self.s = Session()
        self.s.start()
        self.next_id = 0
        self.produced: set[str] = set()
        self.acked: set[str] = set()
        self.sent_ids: set[str] = set()  # results the master may ACK

    def _collect(self) -> list[m.Message]:
        sent = self.s.pop_sent()
        for msg in sent:
            if isinstance(msg, m.Result):
                self.sent_ids.update(e[0] for e in msg.entries)
        self.s.pop_other()
        return sent

    @rule(n=st.integers(1, 3))
    def receive_tasks(self, n: int) -> None:
        ids = [f"t{self.next_id + i}" for i in range(n)]
        self.next_id += n
        self.s.recv(m.Task([entry(i) for i in ids]))

    @precondition(lambda self: self.s.core.held)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.s.core.held)))
        self.s.report(results=[result(task_id)])
        self.produced.add(task_id)

    @precondition(lambda self: self.sent_ids - self.acked and self.s.core.link in (
        wc.Link.CONNECTING, wc.Link.REGISTERED))  # no socket, no message, when backing off
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        ids = data.draw(st.sets(st.sampled_from(sorted(self.sent_ids - self.acked)), min_size=1))
        self.s.recv(m.Ack(sorted(ids)))
        self.acked |= ids

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]))
    def time_passes(self, seconds: float) -> None:
        self.s.tick(seconds)
        self._collect()

    @precondition(lambda self: self.s.core.link in (wc.Link.CONNECTING, wc.Link.REGISTERED))
    @rule()
    def welcome(self) -> None:
        self.s.recv(m.Welcome(1.0, 3, 1 << 20, "M"))
        self.s.tick()
        sent = self._collect()
        resent = {e[0] for x in sent if isinstance(x, m.Result) for e in x.entries}
        assert self.produced - self.acked <= resent, "a WELCOME must resend every unACKed result"

    @precondition(lambda self: self.s.core.registered)
    @rule()
    def disconnect(self) -> None:
        self.s.recv(m.Disconnect("again"))
        self.s.tick()
        self._collect()

    @invariant()
    def outbox_is_exactly_the_unacked_results(self) -> None:
        assert set(self.s.core.outbox) == self.produced - self.acked
        self.s.core.validate()


TestOutbox = OutboxMachine.TestCase
TestOutbox.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


# --- adaptive credit ----------------------------------------------------------------------

def _adaptive_core(concurrency: int = 2):
    from zq.core import worker_core as wc_
    from zq.core import worker_events as ev_
    core = wc_.WorkerCore(name="w", host="h", pid=1, queues=["default"], concurrency=concurrency,
                          pool="thread", credit=2 * concurrency, session=SESSION,
                          adaptive=True, rand=lambda: 0.5)
    core.handle(ev_.Started(0.0))
    core.tick(0.0)
    core.handle(ev_.MessageReceived(m.Welcome(1.0, 3, 1 << 20, "M"), 0.0))
    core.tick(0.0)
    return core


def _complete(core, n: int, now: float) -> list:
    from zq.core import worker_events as ev_
    entries = [(f"t{now}-{i}", 1, "a:f", b"", None, None) for i in range(n)]
    core.handle(ev_.MessageReceived(m.Task(entries), now))
    core.handle(ev_.PoolReported([(e[0], 1, 0, b"") for e in entries], [], [], [], now))
    sent = [c.message for c in core.tick(now) if isinstance(c, ev_.Send)]
    core.validate()
    return sent


def test_adaptive_credit_grows_for_fast_tasks_and_stays_small_for_slow_ones():
    """docs/TASKS.md: about 50 ms of work prefetched, at least `concurrency`, at most
    2,000 extra."""
    fast = _adaptive_core()
    sent = _complete(fast, 4, 0.0) + _complete(fast, 4, 0.30)  # ~27 tasks/s: no change yet
    sent += _complete(fast, 4000, 0.60)  # 4000 in 0.3 s: ~13,300/s, 50 ms of it is ~667
    credits = [msg.credit for msg in sent if isinstance(msg, m.Credit)]
    assert credits and fast.credit == credits[-1]
    assert 2 + 600 <= fast.credit <= 2 + 700

    capped = _adaptive_core()
    _complete(capped, 4, 0.0)
    sent = _complete(capped, 200_000, 0.30)  # ~670,000/s: 50 ms would be ~33,000
    assert [msg.credit for msg in sent if isinstance(msg, m.Credit)] == [2 + 2000]

    slow = _adaptive_core()
    sent = _complete(slow, 1, 0.0) + _complete(slow, 1, 1.0) + _complete(slow, 1, 2.0)
    assert not [msg for msg in sent if isinstance(msg, m.Credit)]  # 1 task/s: stays at 2 + 2
    assert slow.credit == 4


def test_adaptive_credit_grows_within_a_burst_and_keeps_its_depth_while_idle():
    """A burst reaches its pipeline depth after GROW_WINDOW (0.05 s), not after a whole
    ADAPT_WINDOW; idle windows (nothing held) keep it for the next burst; a window
    with a task held and few done lowers it (bench/README: a fresh or idle worker's
    first burst was half as fast as with a fixed --prefetch)."""
    from zq.core import worker_events as ev_
    core = _adaptive_core()
    _complete(core, 4, 0.0)
    sent = _complete(core, 700, 0.06)  # ~11,700 tasks/s: 50 ms of it is ~587
    deep = core.credit
    assert [msg.credit for msg in sent if isinstance(msg, m.Credit)] == [deep]
    assert 2 + 550 <= deep <= 2 + 600
    idle = [c for t in (0.5, 1.0, 2.5) for c in core.tick(t)]
    assert not [c for c in idle if isinstance(c, ev_.Send) and isinstance(c.message, m.Credit)]
    assert core.credit == deep
    core.handle(ev_.MessageReceived(m.Task([("slow", 1, "a:f", b"", None, None)]), 2.6))
    core.tick(2.6)
    lowered = [c.message for c in core.tick(3.0) if isinstance(c, ev_.Send)]
    assert [msg.credit for msg in lowered if isinstance(msg, m.Credit)] == [2 + 2]


def test_fixed_prefetch_never_changes_credit():
    core = _adaptive_core()
    core.adaptive = False
    sent = _complete(core, 4000, 0.3) + _complete(core, 4000, 0.6)
    assert not [msg for msg in sent if isinstance(msg, m.Credit)]
