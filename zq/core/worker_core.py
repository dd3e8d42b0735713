"""A worker's session with the master, without I/O: registration, liveness, heartbeats,
reconnect backoff, the RESULT outbox kept until ACK, credit, the STARTED notices and the
graceful stop.

Events in (``handle``), commands out; ``tick(now)`` ends every loop turn with the batched
sends, ``next_deadline()`` says when the loop must wake up even if nothing happens, and
``validate()`` checks the invariants (tests call it after every step). The events and
commands are in zq/core/worker_events.py, as the master's and the client's are.

About 660 lines, one class: registration, liveness, credit and the RESULT outbox all
turn on the one session with the master (a WELCOME resends the outbox), so split apart
each would reach into the others' state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable

from zq.core import backoff, codec, limits
from zq.core import messages as m
from zq.core.messages import Outcome
from zq.core.parts import Parts, frames_of, inline_of, largest_frame
from zq.core.serde import encode_error
from zq.core.worker_events import (
    CancelTasks,
    CloseConnection,
    Command,
    Event,
    Execute,
    Exit,
    GarbageReceived,
    KillTasks,
    LinkDropped,
    MessageReceived,
    OpenConnection,
    PoolReported,
    Send,
    SendFailed,
    Started,
    StopForced,
    StopRequested,
)
from zq.masters import parse_connect

if TYPE_CHECKING:
    from zq.config import WorkerConfig

DEFAULT_INTERVAL = 1.0  # heartbeat settings until a WELCOME says otherwise (PROTOCOL §4)
DEFAULT_LIVENESS = 3
ADAPT_WINDOW = 0.25  # seconds a lower adaptive credit is measured over before it is told
GROW_WINDOW = 0.05  # and a higher one: a burst reaches its pipeline depth in a few of these
BUFFER_SECONDS = 0.05  # adaptive prefetch: about this much work held beyond running tasks
MAX_PREFETCH = 2000
# The exit code of a worker the master refused for good (a final DISCONNECT, 1.4).
REFUSED_EXIT = 3
MAX_BUFFERED_PARTIALS = 100_000  # chunks kept while not registered; more are dropped
# A task seen running is announced (STARTED, protocol 1.4) once it has run this long: a
# task that ends sooner needs no notice, its RESULT tells the master it started, so
# no-op tasks cost no STARTED at all.
STARTED_DELAY = 0.01


def compute_backoff(attempt: int, *, base: float, cap: float, jitter_fraction: float,
                    rand: float) -> float:
    """Seconds to wait before reconnect try ``attempt`` (0 for the first): ``base``
    doubling up to ``cap``, then up to ``jitter_fraction`` of it shaved off at random
    (``rand`` in [0, 1)) so a fleet of workers does not reconnect in lockstep."""
    return backoff.compute_backoff(attempt, base=base, cap=cap, rand=rand, first=0,
                                   jitter=backoff.worker_jitter(jitter_fraction))



# --- states ---------------------------------------------------------------------------

class Link(Enum):
    CLOSED = "closed"  # no socket: not started yet, or finished
    CONNECTING = "connecting"  # socket open, HELLO sent, waiting for WELCOME
    REGISTERED = "registered"
    BACKING_OFF = "backing-off"  # master lost; socket closed until reconnect_at


# The legal edges of the link; anything else is a bug in this module.
LINK_EDGES = frozenset({
    (Link.CLOSED, Link.CONNECTING),  # start
    (Link.CONNECTING, Link.REGISTERED),  # WELCOME
    (Link.REGISTERED, Link.CONNECTING),  # DISCONNECT: HELLO again on the same socket
    (Link.CONNECTING, Link.BACKING_OFF),  # master silent for interval x liveness
    (Link.REGISTERED, Link.BACKING_OFF),
    (Link.BACKING_OFF, Link.CONNECTING),  # retry on a fresh socket
    (Link.CONNECTING, Link.CLOSED),  # stopped
    (Link.REGISTERED, Link.CLOSED),
    (Link.BACKING_OFF, Link.CLOSED),
})


class Phase(Enum):
    RUNNING = "running"
    DRAINING = "draining"  # stop requested: running tasks may finish (shutdown_timeout)
    FLUSHING = "flushing"  # no task left: waiting (bounded) for the last ACKs
    DONE = "done"


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    held: int
    unacked: int
    reconnects: int
    duplicate_tasks: int
    over_credit: int  # TASK messages that took us past our credit (a master bug)
    unexpected: int  # messages a worker should never get, dropped
    garbage: int  # undecodable messages, dropped
    partials_dropped: int


class WorkerCore:
    """The session logic of one worker. Pure: ``now`` comes with every event.

    Where the protocol leaves a worker a choice, it follows docs/PROTOCOL.md §4, "What
    a worker does where it has a choice" (before WELCOME, heartbeat settings after a
    lost master, duplicate TASKs, unknown CANCELs, oversized results, the stop).
    """

    def __init__(self, *, name: str, host: str, pid: int, queues: list[str], concurrency: int,
                 pool: str, credit: int, session: str,
                 catalogue: dict[str, dict[str, Any]] | None = None, adaptive: bool = False,
                 allow_code: bool = False,
                 shutdown_timeout: float = 30.0, reconnect_min: float = 0.1,
                 reconnect_max: float = 30.0, jitter_fraction: float = 0.5,
                 masters: int = 1, rand: Callable[[], float]) -> None:
        """session: this worker's token (PROTOCOL §4), made once per process by the
        caller and sent in every HELLO, so the master knows us again after a reconnect.
        catalogue: the task names we run -> the options each declares, within the HELLO
        limits (codec.fit_catalogue). masters: how many endpoints the worker goes round
        (--connect a,b): with several, the reconnect backoff stays within one liveness
        window, so a worker bounced between standbys and a dead master reaches the one
        that takes over within about a window of its takeover."""
        self.name, self.host, self.pid = name, host, pid
        self.session = session
        self.catalogue = catalogue or {}
        self.allow_code = allow_code  # runs shipped code (--allow-code): said in HELLO
        self.queues, self.concurrency, self.pool = list(queues), concurrency, pool
        self.credit = credit
        # With no --prefetch, credit follows the completion rate (see _adapt_credit).
        self.adaptive = adaptive
        self._window_start: float | None = None
        self._done_in_window = 0
        self._credit_changed = False
        self.shutdown_timeout = shutdown_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.jitter_fraction = jitter_fraction
        self.masters = masters
        self._rand = rand

        self.link = Link.CLOSED
        self.phase = Phase.RUNNING
        self.interval = DEFAULT_INTERVAL
        self.liveness = DEFAULT_LIVENESS
        self.max_message = limits.MAX_MESSAGE
        self.master_id: str | None = None
        self.last_recv = 0.0
        self.last_send = 0.0
        self.reconnect_at: float | None = None
        self.failures = 0  # connections lost since the last WELCOME: the backoff exponent
        self.drain_deadline: float | None = None
        self.ack_deadline: float | None = None

        self.held: dict[str, int] = {}  # task id -> attempt: received, no result yet
        self.outbox: dict[str, m.ResultEntry] = {}  # task id -> entry, until ACKed
        self._results: list[m.ResultEntry] = []  # entries to send this turn
        self._resend = False  # send the whole outbox this turn (after WELCOME)
        self._partials: list[m.PartialEntry] = []
        self._progress: dict[str, m.ProgressEntry] = {}
        self._returned: list[str] = []  # ids given back, not yet told to the master
        # STARTED (1.4): held tasks the pool said run -> when we heard, until announced;
        # then in _announced until their result. Sent only if WELCOME says the master
        # takes them; every WELCOME makes all of them due again (a new master knows none).
        self.takes_starts = False
        self._unannounced: dict[str, float] = {}
        self._announced: set[str] = set()
        self._credit_due = False
        self._hello_due = False
        # A send failed (zmq had nowhere to queue it: the connection's queue full or
        # dropped): what is due waits until the socket can take a message (the shell
        # polls for POLLOUT) or anything else happens, instead of being retried in a
        # loop that takes the CPU the master needs to drain the queue.
        self.send_blocked = False

        self._reconnects = self._duplicates = self._over_credit = 0
        self._unexpected = self._garbage = self._partials_dropped = 0

    @classmethod
    def from_config(cls, config: WorkerConfig, *, host: str, pid: int, session: str,
                    rand: Callable[[], float],
                    catalogue: dict[str, dict[str, Any]] | None = None) -> WorkerCore:
        return cls(name=config.name, host=host, pid=pid, queues=list(config.queues),
                   concurrency=config.concurrency, pool=config.pool, credit=config.credit,
                   session=session, catalogue=catalogue, allow_code=config.allow_code,
                   adaptive=config.prefetch is None, shutdown_timeout=config.shutdown_timeout,
                   reconnect_min=config.reconnect_min, reconnect_max=config.reconnect_max,
                   masters=len(parse_connect(config.connect)), rand=rand)

    # --- public API -------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        return _EVENT_HANDLERS[type(event)](self, event)

    def tick(self, now: float) -> list[Command]:
        """End of a loop turn: timers, then this turn's batched sends."""
        cmds: list[Command] = []
        if self.phase is Phase.DONE:
            return cmds
        self._check_link(now, cmds)
        self._adapt_credit(now)
        self._check_drain(now, cmds)
        self._flush(now, cmds)
        self._check_done(now, cmds)
        return cmds

    def next_deadline(self) -> float:
        """When tick() must run next even if nothing arrives (math.inf: never)."""
        if not self.send_blocked and self._output_pending():
            return -math.inf  # something to send: do not sleep
        t = math.inf
        if self.link is Link.CONNECTING or self.link is Link.REGISTERED:
            t = self.last_recv + self.interval * self.liveness
            if self.link is Link.REGISTERED:
                t = min(t, self.last_send + self.interval)
                if self._unannounced and self.takes_starts and not self.send_blocked:
                    t = min(t, min(self._unannounced.values()) + STARTED_DELAY)
        elif self.link is Link.BACKING_OFF and self.reconnect_at is not None:
            t = self.reconnect_at
        if self.phase is Phase.DRAINING and self.drain_deadline is not None:
            t = min(t, self.drain_deadline)
        elif self.phase is Phase.FLUSHING and self.ack_deadline is not None:
            t = min(t, self.ack_deadline)
        return t

    def _output_pending(self) -> bool:
        if self.link is Link.CONNECTING:
            return self._hello_due
        if self.link is not Link.REGISTERED:
            return False
        return bool(self._credit_due or self._results or self._resend or self._partials
                    or self._progress)

    @property
    def registered(self) -> bool:
        return self.link is Link.REGISTERED

    def running_ids(self) -> list[str]:
        """Tasks we hold without a result: listed in HELLO so the master adopts them."""
        return list(self.held)

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(len(self.held), len(self.outbox), self._reconnects,
                                self._duplicates, self._over_credit, self._unexpected,
                                self._garbage, self._partials_dropped)

    def validate(self) -> None:
        """Check internal invariants (tests call it after every step); RuntimeError if
        one is broken, which is a bug in this module."""
        problems = []
        if (self.link is Link.BACKING_OFF) != (self.reconnect_at is not None):
            problems.append("reconnect_at must be set exactly while backing off")
        if self.phase is Phase.DONE and self.link is not Link.CLOSED:
            problems.append("a finished session must be closed")
        if self.phase is Phase.RUNNING and (self._returned or self.drain_deadline is not None):
            problems.append("only a stopping worker returns tasks")
        if set(self._returned) & set(self.held):
            problems.append("a returned task is still held")
        if self.phase is Phase.DRAINING and self.drain_deadline is None:
            problems.append("a draining worker must have a drain deadline")
        if self.phase is Phase.FLUSHING and self.ack_deadline is None:
            problems.append("a flushing worker must have an ACK deadline")
        if self.phase in (Phase.FLUSHING, Phase.DONE) and self.held:
            problems.append("a worker past draining holds no task")
        if self.link is Link.REGISTERED and (self.master_id is None or self.failures):
            problems.append("a registered worker knows its master and has no failures")
        if not (self._unannounced.keys() | self._announced) <= self.held.keys():
            problems.append("only held tasks are announced as started")
        if not self._unannounced.keys().isdisjoint(self._announced):
            problems.append("a task is either announced or not")
        if any(task_id != e[0] for task_id, e in self.outbox.items()):
            problems.append("the outbox is keyed by each entry's task id")
        if not (self.interval > 0 and self.liveness >= 1):
            problems.append("bad heartbeat settings")
        if problems:
            raise RuntimeError("; ".join(problems))

    # --- link -------------------------------------------------------------------------

    def _set_link(self, new: Link) -> None:
        if (self.link, new) not in LINK_EDGES:
            raise RuntimeError(f"illegal link transition {self.link.value} -> {new.value}")
        self.link = new

    def _connect(self, now: float) -> list[Command]:
        self._set_link(Link.CONNECTING)
        self.reconnect_at = None
        self.last_recv = now  # a fresh liveness window for the new socket
        self._hello_due = True
        return [OpenConnection()]

    def _hello(self) -> m.Hello:
        credit = self.credit if self.phase is Phase.RUNNING else 0
        return m.Hello(self.name, self.host, self.pid, self.queues, self.concurrency,
                       self.pool, credit, self.running_ids(), self.session, self.catalogue,
                       self.allow_code, started=True)

    def _check_link(self, now: float, cmds: list[Command]) -> None:
        if self.link is Link.CONNECTING or self.link is Link.REGISTERED:
            if now - self.last_recv >= self.interval * self.liveness:
                self._lose_master(now, cmds)
        elif (self.link is Link.BACKING_OFF and self.reconnect_at is not None
              and now >= self.reconnect_at):
            self._reconnects += 1
            cmds.extend(self._connect(now))

    def _lose_master(self, now: float, cmds: list[Command], why: str | None = None) -> None:
        delay = compute_backoff(self.failures, base=self.reconnect_min, cap=self._backoff_cap(),
                                jitter_fraction=self.jitter_fraction, rand=self._rand())
        silent = now - self.last_recv
        self.failures += 1
        self._set_link(Link.BACKING_OFF)
        self.reconnect_at = now + delay
        # The last master's heartbeat settings stay until the next WELCOME: they time
        # the next connection's wait for an answer, so a worker sent to a master that
        # died (a standby's hint, or its turn in the list) gives up on it after that
        # master's liveness window, not after the defaults' (3 s: more than a failover).
        self._hello_due = False
        why = why or f"no message from the master for {silent:.1f} s"
        cmds.append(CloseConnection(f"{why}; reconnecting in {delay:.2f} s"))

    def _backoff_cap(self) -> float:
        """The longest reconnect wait: reconnect_max; with several masters, at most one
        liveness window (of the last master, or the defaults'), as a standby that takes
        over is worth trying again soon. The jitter still spreads a fleet's tries."""
        if self.masters <= 1:
            return self.reconnect_max
        return min(self.reconnect_max, self.interval * self.liveness)

    # --- messages from the master -----------------------------------------------------

    def _on_started(self, ev: Started) -> list[Command]:
        return self._connect(ev.now)

    def _on_message(self, ev: MessageReceived) -> list[Command]:
        if self.link is not Link.CONNECTING and self.link is not Link.REGISTERED:
            return []  # a stale message from a socket we already gave up on
        self.last_recv = ev.now
        handler = _MESSAGE_HANDLERS.get(type(ev.message))
        if handler is None:
            self._unexpected += 1
            return []
        return handler(self, ev.message, ev.now)

    def _on_garbage(self, ev: GarbageReceived) -> list[Command]:
        self._garbage += 1
        if self.link is Link.CONNECTING or self.link is Link.REGISTERED:
            self.last_recv = ev.now
        return []

    def _on_welcome(self, msg: m.Welcome, now: float) -> list[Command]:
        if self.link is Link.CONNECTING:
            self._set_link(Link.REGISTERED)
        if msg.heartbeat_interval > 0 and math.isfinite(msg.heartbeat_interval):
            self.interval = msg.heartbeat_interval
        self.liveness = msg.liveness
        if msg.max_message > 0:
            self.max_message = msg.max_message
        self.master_id = msg.master_id
        self.failures = 0
        self._resend = bool(self.outbox)
        self.takes_starts = msg.started
        if self._announced:  # this master may not know them: announce them again at once
            self._unannounced.update(dict.fromkeys(self._announced, -math.inf))
            self._announced.clear()
        return []

    def _on_task(self, msg: m.Task, now: float) -> list[Command]:
        entries, held = msg.entries, self.held
        if self.phase is Phase.RUNNING:  # the hot path: a batch of new, distinct tasks
            new = {e[0]: e[1] for e in entries}
            if len(new) == len(entries) and held.keys().isdisjoint(new):
                held.update(new)
                if len(held) > self.credit:
                    self._over_credit += 1
                return [Execute(entries)] if entries else []
        fresh = []
        for entry in entries:
            task_id = entry[0]
            if task_id in self.held:
                self._duplicates += 1  # already running here: never twice at once
            elif self.phase is not Phase.RUNNING:
                self._returned.append(task_id)  # stopping: start nothing new
                self._credit_due = True
            else:
                self.held[task_id] = entry[1]
                fresh.append(entry)
        if len(self.held) > self.credit:
            self._over_credit += 1
        return [Execute(fresh)] if fresh else []

    def _on_ack(self, msg: m.Ack, now: float) -> list[Command]:
        list(map(self.outbox.pop, msg.ids, repeat(None)))  # unknown ids are fine
        return []

    def _on_cancel(self, msg: m.Cancel, now: float) -> list[Command]:
        # A task we finished already keeps its result; one we never had is not ours.
        ids = [i for i in msg.ids if i in self.held]
        return [CancelTasks(ids)] if ids else []

    def _on_disconnect(self, msg: m.Disconnect, now: float) -> list[Command]:
        if msg.final:  # 1.4: the master will not take us as we are (the shell logs why)
            cmds: list[Command] = []
            self._finish(cmds, code=REFUSED_EXIT)
            return cmds
        if self.link is Link.REGISTERED:
            self._set_link(Link.CONNECTING)
        self._hello_due = True
        return []

    def _on_standby(self, msg: m.Standby, now: float) -> list[Command]:
        """A standby master (1.4): go to another (the shell picks which), with backoff."""
        cmds: list[Command] = []
        self._lose_master(now, cmds, "the master is a standby")
        return cmds

    def _on_quiet(self, msg: m.Message, now: float) -> list[Command]:
        return []  # HEARTBEAT, ERROR: a sign of life (the shell logs ERROR)

    # --- the pool -----------------------------------------------------------------------

    def _adapt_credit(self, now: float) -> None:
        """Prefetch about BUFFER_SECONDS of work at the rate tasks complete: no-op tasks
        get a deep pipeline, slow ones hardly any (never below `concurrency` extra),
        so a slow worker holds little it cannot start. Told only on changes > 25%.
        A rise is told after GROW_WINDOW (a burst must not wait on a shallow pipeline);
        a fall after ADAPT_WINDOW, and only while the worker holds tasks: with none in
        hand the low rate measured what the master had to give, not how long tasks
        take, and the next burst should find the pipeline as deep as the last one."""
        if not self.adaptive or self.phase is not Phase.RUNNING:
            return
        if self._window_start is None:
            self._window_start = now
            return
        elapsed = now - self._window_start
        if elapsed < GROW_WINDOW:
            return
        rate = self._done_in_window / elapsed
        prefetch = min(MAX_PREFETCH, max(self.concurrency, math.ceil(rate * BUFFER_SECONDS)))
        credit = self.concurrency + prefetch
        if credit <= self.credit:
            if elapsed < ADAPT_WINDOW:
                return  # not yet a fall worth telling: measure on
            if not self.held:  # idle: keep the depth for the next burst
                self._window_start, self._done_in_window = now, 0
                return
        self._window_start, self._done_in_window = now, 0
        if abs(credit - self.credit) * 4 > self.credit:
            self.credit = credit
            self._credit_changed = True

    def _on_report(self, ev: PoolReported) -> list[Command]:
        if self.phase is Phase.DONE:
            return []
        results, limit = ev.results, self.max_message
        self._done_in_window += len(results)
        if ev.started:
            self._note_started(ev.started, ev.now)
        if results:
            ids = [e[0] for e in results]
            list(map(self.held.pop, ids, repeat(None)))
            if self._unannounced or self._announced:
                self._forget_starts(ids)
            if max(map(len, [e[3] for e in results])) > limit:  # len >= its largest frame
                results = [_too_large(e, limit) if largest_frame(e[3]) > limit else e
                           for e in results]
            self.outbox.update(zip(ids, results))
            self._results.extend(results)
        if ev.partials:
            room = MAX_BUFFERED_PARTIALS - len(self._partials)
            if self.link is Link.REGISTERED or room >= len(ev.partials):
                self._partials.extend(ev.partials)
            else:
                self._partials_dropped += len(ev.partials)
        for p in ev.progress:
            self._progress[p[0]] = p
        if ev.returned:
            for task_id in ev.returned:
                self.held.pop(task_id, None)
            self._forget_starts(ev.returned)
            self._returned.extend(ev.returned)
            self._credit_due = True
        return []

    def _note_started(self, ids: list[str], now: float) -> None:
        """Held tasks the pool says run now: announced once they have run STARTED_DELAY."""
        held, unannounced, announced = self.held, self._unannounced, self._announced
        for task_id in ids:
            if task_id in held and task_id not in unannounced and task_id not in announced:
                unannounced[task_id] = now

    def _forget_starts(self, ids: list[str]) -> None:
        """These tasks are no longer held (a result, given back): nothing to announce."""
        unannounced, announced = self._unannounced, self._announced
        for task_id in ids:
            unannounced.pop(task_id, None)
            announced.discard(task_id)

    def _due_starts(self, now: float) -> list[m.StartedEntry]:
        """STARTED entries for the tasks that have run STARTED_DELAY; they move to
        _announced."""
        due = [tid for tid, seen in self._unannounced.items() if now - seen >= STARTED_DELAY]
        held, unannounced = self.held, self._unannounced
        for tid in due:
            del unannounced[tid]
        self._announced.update(due)
        return [(tid, held[tid]) for tid in due]

    def _on_link_dropped(self, ev: LinkDropped) -> list[Command]:
        """The transport saw the master's connection close (a master killed, or fenced
        and closing): go to the next master now, with backoff, instead of after a
        liveness window of silence."""
        if self.link is not Link.CONNECTING and self.link is not Link.REGISTERED:
            return []
        cmds: list[Command] = []
        self._lose_master(ev.now, cmds, "the master closed the connection")
        return cmds

    def _on_send_failed(self, ev: SendFailed) -> list[Command]:
        msg = ev.message
        self.send_blocked = True
        if isinstance(msg, m.Result):
            self._resend = bool(self.outbox)  # every unACKed result goes again next turn
        elif isinstance(msg, m.Started):  # still running? then announce them again
            for tid, _ in msg.entries:
                if tid in self._announced:
                    self._announced.discard(tid)
                    self._unannounced[tid] = -math.inf
        elif isinstance(msg, m.Credit):
            self._returned[:0] = msg.returned
            self._credit_due = True
        elif isinstance(msg, m.Hello):
            self._hello_due = True
        return []  # HEARTBEAT, PARTIAL, PROGRESS: lost, like on any reconnect

    # --- stopping -------------------------------------------------------------------------

    def _on_stop(self, ev: StopRequested) -> list[Command]:
        if self.phase is not Phase.RUNNING:
            return []
        for task_id in ev.returned:
            self.held.pop(task_id, None)
        self._forget_starts(ev.returned)
        self._returned.extend(ev.returned)
        self._credit_due = True  # CREDIT(0, returned) even when nothing is returned
        self.phase = Phase.DRAINING
        self.drain_deadline = ev.now + self.shutdown_timeout
        return []

    def _on_stop_forced(self, ev: StopForced) -> list[Command]:
        if self.phase is Phase.DONE:
            return []
        cmds: list[Command] = [KillTasks()]
        self._clear_held()
        self._flush(ev.now, cmds)  # results already made still get one chance
        self._finish(cmds, code=1)
        return cmds

    def _check_drain(self, now: float, cmds: list[Command]) -> None:
        if self.phase is not Phase.DRAINING:
            return
        if self.held and self.drain_deadline is not None and now >= self.drain_deadline:
            cmds.append(KillTasks())  # the master counts them lost when it sees BYE
            self._clear_held()
        if not self.held:
            self.phase = Phase.FLUSHING
            self.ack_deadline = now + self.interval * self.liveness

    def _clear_held(self) -> None:
        self.held.clear()
        self._unannounced.clear()
        self._announced.clear()

    def _check_done(self, now: float, cmds: list[Command]) -> None:
        if self.phase is not Phase.FLUSHING:
            return
        if self.outbox and self.ack_deadline is not None and now < self.ack_deadline:
            return
        self._finish(cmds, code=0)

    def _finish(self, cmds: list[Command], code: int) -> None:
        if self.link is Link.REGISTERED:
            cmds.append(Send(m.Bye(self._returned)))
            self._returned = []
        if self.link is not Link.CLOSED:
            if self.link is not Link.BACKING_OFF:
                cmds.append(CloseConnection("worker stopped", lost=False))
            self._set_link(Link.CLOSED)
            self.reconnect_at = None
        self.phase = Phase.DONE
        cmds.append(Exit(code))

    # --- sending --------------------------------------------------------------------------

    def _flush(self, now: float, cmds: list[Command]) -> None:
        before = len(cmds)
        self.send_blocked = False  # try again: a failure says so again
        if self.link is Link.CONNECTING and self._hello_due:
            cmds.append(Send(self._hello()))
            self._hello_due = False
        if self.link is Link.REGISTERED:
            if self._credit_due:
                cmds.append(Send(m.Credit(0, self._returned)))
                self._returned = []
                self._credit_due = False
            elif self._credit_changed and self.phase is Phase.RUNNING:
                cmds.append(Send(m.Credit(self.credit, [])))
            self._credit_changed = False
            if self._unannounced and self.takes_starts:
                due = self._due_starts(now)
                if due:  # before this turn's PARTIALs and RESULTs, as they happened
                    cmds.append(Send(m.Started(due)))
            if self._partials:  # split as results are: chunks may carry arrays as frames
                cmds.extend(Send(m.Partial(part)) for part in self._split(self._partials))
                self._partials = []
            if self._progress:
                cmds.append(Send(m.Progress(list(self._progress.values()))))
                self._progress = {}
            entries = list(self.outbox.values()) if self._resend else self._results
            self._resend = False
            if entries:
                cmds.extend(Send(m.Result(part)) for part in self._split(entries))
        self._results = []  # when not registered they wait in the outbox for WELCOME
        if len(cmds) > before:
            self.last_send = now
        elif self.link is Link.REGISTERED and now - self.last_send >= self.interval:
            cmds.append(Send(m.Heartbeat()))
            self.last_send = now

    def _split(self, entries: list[Any]) -> list[list[Any]]:
        """RESULT or PARTIAL entries (their payload at index 3) in messages whose inline
        payloads stay well under max_message (a resend after a long outage can be large)
        and whose payload frames fit one message; usually one message."""
        budget = min(self.max_message, codec.HEADER_BUDGET * 2) // 2  # and the header bound
        get = itemgetter(3)
        if (not Parts.made or Parts not in map(type, map(get, entries))) and (
                len(entries) * codec.LARGE_PAYLOAD <= budget
                or sum(map(len, map(get, entries))) <= budget):
            return [entries]  # plain payloads within the budget: at most 64 frames
        parts: list[list[Any]] = []
        part: list[Any] = []
        size = frames = 0
        for e in entries:
            n, f = inline_of(e[3], codec.LARGE_PAYLOAD), frames_of(e[3], codec.LARGE_PAYLOAD)
            if part and (size + n > budget or frames + f > codec.MAX_FRAMES - 2):
                parts.append(part)
                part, size, frames = [], 0, 0
            size += n
            frames += f
            part.append(e)
        parts.append(part)
        return parts


def _too_large(entry: m.ResultEntry, limit: int) -> m.ResultEntry:
    message = (f"the task's result has a frame of {largest_frame(entry[3])} bytes, over the "
               f"master's limit of {limit} bytes per frame")
    return (entry[0], entry[1], int(Outcome.FATAL), encode_error("SerializationError", message))


# Commands a master sends a worker; anything else is counted as unexpected and dropped.
_MESSAGE_HANDLERS: dict[type, Callable[[WorkerCore, m.Message, float], list[Command]]] = {
    m.Welcome: WorkerCore._on_welcome,  # type: ignore[dict-item]
    m.Task: WorkerCore._on_task,  # type: ignore[dict-item]
    m.Ack: WorkerCore._on_ack,  # type: ignore[dict-item]
    m.Cancel: WorkerCore._on_cancel,  # type: ignore[dict-item]
    m.Disconnect: WorkerCore._on_disconnect,  # type: ignore[dict-item]
    m.Standby: WorkerCore._on_standby,  # type: ignore[dict-item]
    m.Heartbeat: WorkerCore._on_quiet,
    m.Error: WorkerCore._on_quiet,
}

_EVENT_HANDLERS: dict[type, Callable[[WorkerCore, Event], list[Command]]] = {
    Started: WorkerCore._on_started,  # type: ignore[dict-item]
    MessageReceived: WorkerCore._on_message,  # type: ignore[dict-item]
    GarbageReceived: WorkerCore._on_garbage,  # type: ignore[dict-item]
    PoolReported: WorkerCore._on_report,  # type: ignore[dict-item]
    StopRequested: WorkerCore._on_stop,  # type: ignore[dict-item]
    StopForced: WorkerCore._on_stop_forced,  # type: ignore[dict-item]
    SendFailed: WorkerCore._on_send_failed,  # type: ignore[dict-item]
    LinkDropped: WorkerCore._on_link_dropped,  # type: ignore[dict-item]
}

MASTER_COMMANDS = frozenset(_MESSAGE_HANDLERS)
