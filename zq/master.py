"""The master's I/O loop: drain the ROUTER, hand each message to the core, commit the
turn's changes in one transaction, then send what the core decided. No queue rules here.

About 780 lines: the turn itself is short; the rest is what the loop must do around the
store and the peers (commit retries while the store cannot write, output held for a peer
that does not read, key reloads, the gate), which shares the loop's state and so stays
with it. A shared store's lease (standby, renewal, fencing) is zq.lease's.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import signal
import socket
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from operator import itemgetter
from typing import Any, Callable, Iterator

import zmq

from zq import lease, transport
from zq.config import MasterConfig
from zq.core import codec, queries
from zq.core import master_events as ev
from zq.core import messages as m
from zq.core.catalogue import META_KEY as CATALOGUE_KEY
from zq.core.holdback import AckHold
from zq.core.master_core import MasterCore
from zq.core.messages import Role
from zq.core.metrics_tap import MetricsTap
from zq.core.outbox import BUSY_RETRY_AFTER
from zq.errors import LeaseLost, PeerCongested, PeerGone, ProtocolError, StoreUnavailable, ZqError
from zq.gate import Gate, connection_cap, fd_limit, local_only_transport, raise_fd_limit
from zq.lease import Lease
from zq.metrics import GAUGE_PERIOD, Metrics, MetricsServer, read_gauges
from zq.security import load_master_keys
from zq.store import Store, open_store, redact

log = logging.getLogger(__name__)

# One turn is bounded whatever the load (issue 10: 200,000 tasks read in one turn and a
# commit that folded the journal in line stalled the master for seconds, and its peers
# took it for lost). Messages are handled for DRAIN_BUDGET seconds (MAX_DRAIN at most),
# the core leases at most its MAX_LEASES tasks a tick, the commit and the sends are in
# proportion, and the store's upkeep gets UPKEEP_BUDGET: the loop comes round every
# ~0.1 s under any load. (One message is handled whole: a SUBMIT of 1,000 tasks takes
# ~3 ms.)
MAX_DRAIN = 2000  # messages handled per turn before the core dispatches and we send
DRAIN_BUDGET = 0.02  # seconds of message handling per turn
# The store's deferred work (folding the SQLite journal) waits until the master has had
# nothing to do for UPKEEP_QUIET seconds: done in the short pauses of a burst it would
# take CPU from the workers and clients the master shares its host with. Then it goes
# UPKEEP_CHUNK tasks per turn (~8 ms of SQLite), so a new message waits little. While
# the store is behind (too much unfolded), slices run every turn, busy or not, for up
# to UPKEEP_BUDGET seconds, so the fold keeps up with what comes in.
UPKEEP_QUIET = 0.1
UPKEEP_CHUNK = 500
UPKEEP_BUDGET = 0.02
STORE_RETRY = 1.0  # seconds between commits tried while the store cannot write
STORE_RETRY_NOTE = 10.0  # seconds between log lines about it
HELD_RETRY = 0.01  # seconds before messages held for a peer with a full queue are retried
# A peer whose session was dropped (it stopped reading) is not served for this long:
# what it still sends is dropped and counted, so it cannot make the master work for it
# again at once. Then it is served as a new peer (a worker says HELLO again).
SHUN_SECONDS = 10.0
MAX_SHUNNED = 10_000
TURN_WINDOW = 10.0  # status `longest_turn`: the longest turn in the last 10 to 20 s
SLOW_TURN = 1.0  # a turn this long is logged: peers may be close to taking us for lost
# While the store cannot commit, these still go out (they promise nothing durable);
# everything else waits for the commit, and an ACCEPTED becomes a BUSY.
SENT_WHILE_UNCOMMITTED = (m.Heartbeat, m.Busy, m.Error, m.Disconnect, m.Welcome)


class TurnTimes:
    """The longest loop turn over the last TURN_WINDOW to 2 * TURN_WINDOW seconds (for
    `status`), and a warning for a turn of SLOW_TURN or more, with where it went."""

    PHASES = ("messages and dispatch", "commit", "send", "store upkeep")

    def __init__(self) -> None:
        self._longest = self._before = 0.0  # in this window, in the one before
        self._until = 0.0  # end of this window

    @property
    def longest(self) -> float:
        return max(self._longest, self._before)

    def note(self, start: float, *marks: float) -> None:
        """start and the end of each phase (PHASES), monotonic seconds."""
        end = marks[-1]
        took = end - start
        if end >= self._until:
            self._before = self._longest if end < self._until + TURN_WINDOW else 0.0
            self._longest, self._until = 0.0, end + TURN_WINDOW
        if took > self._longest:
            self._longest = took
        if took >= SLOW_TURN:
            phases = [b - a for a, b in zip((start, *marks), marks)]
            log.warning("a loop turn took %.2f s (%s)", took, ", ".join(
                f"{name} {s:.2f} s" for name, s in zip(self.PHASES, phases)))


def _tune_gc() -> None:
    """The master allocates a few short-lived containers per task and keeps every task
    record alive: with CPython's default thresholds (700, 10, 10) the collector runs
    every few hundred tasks and now and then walks every record, finding nothing to
    free (task records form no cycles). Freeze what is alive after the restore, and
    collect young objects every 50,000 allocations instead: measured on the throughput
    benchmark, master CPU per task -10% with the memory store, -20% with SQLite."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


class Master:
    def __init__(self, config: MasterConfig, context: zmq.Context | None = None, *,
                 own_process: bool = False, wall: Callable[[], float] = time.time) -> None:
        """own_process: the master is all this process does (`zq master`), so it may
        tune the process-wide garbage collector for itself. wall: the wall clock, for
        what users date by it (eta, cron, result ttl); tests step it. Durations use
        time.monotonic, which never jumps."""
        self.config = config.validate()
        self._wall = wall
        self._own_process = own_process
        self._own_context = context is None
        self.ctx = context or zmq.Context()
        self.keys = load_master_keys(config.secret_key, config.worker_keys, config.client_keys,
                                     config.admin_keys, config.keys)
        self.store: Store = open_store(config.store, config.store_sync)
        self.exit_code = 0
        self.core = MasterCore(
            master_id=uuid.uuid4().hex[:12], heartbeat_interval=config.heartbeat_interval,
            liveness=config.heartbeat_liveness, result_ttl=config.result_ttl,
            max_queued=config.max_queued, max_message=config.max_message,
            durable=self.store.durable, rand=random.random)
        self.core.store_info.update(spec=redact(config.store), sync=config.store_sync)
        # A shared store's lease (zq.store.postgres): None for SQLite and memory.
        self.lease = (Lease(self.store, config.heartbeat_interval * config.heartbeat_liveness,
                            self.core.master_id)
                      if getattr(self.store, "leased", False) else None)
        self.sock: zmq.Socket | None = None
        self._stop = threading.Event()
        # Per peer whose queue was full: its encoded messages (frames, bytes) in order,
        # and their bytes, at most config.max_held (then the peer's session is dropped).
        self._held: dict[bytes, list[tuple[list[Any], int]]] = {}
        self._held_bytes: dict[bytes, int] = {}
        self._acks = AckHold()  # ACKs wait ACK_HOLD seconds and go together (zq.core.holdback)
        self._shunned: dict[bytes, float] = {}  # rid -> monotonic time its drop ends
        self._store_upkeep = False  # the store may have deferred work for quiet turns
        self._gate: Gate | None = None  # the ZAP handler: who may connect (zq.gate)
        # While commits fail: since when, the next try, and what waits for a commit.
        self._store_down: float | None = None
        self._store_retry_at = self._store_noted = 0.0
        self._uncommitted: list[tuple[bytes, m.Message]] = []
        self.turns = TurnTimes()
        self._refused_keys: set[str] = set()  # logged once each
        self._reload = False  # SIGHUP seen: read the key folders again (next turn)
        self._revoked: set[str] = set()  # keys removed (or moved) by a reload
        self._hang_ups: list[int] = []  # connections of revoked keys, closed after _send
        self._revoked_notes = transport.LogThrottle()
        # A failure is logged with its traceback a few times a minute at most: a peer
        # that makes every message fail must not flood the log.
        self._failure_notes = transport.LogThrottle(every=60.0, burst=5)
        self._last_busy = 0.0  # monotonic time of the last turn with messages
        self.ready = threading.Event()  # set once bound and restored
        self.endpoint = ""
        # --metrics: the numbers (fed once per turn) and the HTTP server that shows them.
        self.metrics: Metrics | None = None
        self._metrics_server: MetricsServer | None = None
        self._gauges_due = 0.0  # monotonic time the gauges are read again
        self._commit_took: float | None = None  # seconds of this turn's commit, if any
        if config.metrics is not None:
            self.metrics = Metrics()
            self.core.tap = MetricsTap()

    # --- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its turn, commit and close. Safe from any thread."""
        self._stop.set()

    def reload_keys(self) -> None:
        """Read the key folders again at the next turn (SIGHUP). Safe from a signal
        handler: it only sets a flag."""
        self._reload = True

    def run(self) -> None:
        """Serve until stopped; on a shared store, first wait as a standby until this
        master takes the lease. exit_code says how it ended."""
        if self.lease is not None:
            try:
                self._open_socket()  # a standby answers peers: they go elsewhere
                if not self.lease.wait_until_taken(self._advertised(), self._poll_peers,
                                                   self._answer_standby, self._stop.is_set):
                    self._close()  # stopped while standby
                    return
            except BaseException:
                self._close()
                raise
        core = self.core
        core.advance(time.monotonic(), self._wall())
        core.load_catalogue(self.store.get_meta(CATALOGUE_KEY))
        restored = core.restore(self.store.load())
        epoch = self.lease.epoch if self.lease else None
        if self.lease is not None:  # a takeover, maybe: the old master's workers notice it
            # is gone after a liveness window of silence, then reconnect; hold their
            # tasks for them that long and one window more (a restart holds one)
            core.hold_until = core.now + lease.HOLD * self.lease.ttl
        core.restore_cancelling(self.store.get_meta("cancelling"))
        for note in core.periodic.load(self.store.get_meta("schedules"), core.wall):
            log.error("%s", note)
        for note in core.load_rates(self.store.get_meta("rates")):
            log.error("%s", note)
        for spec in self._schedule_file():
            core.add_schedule(spec)  # read_schedule_file validated them
        if self.sock is None:
            self._open_socket()
        log.info("zq master %s listening on %s (store %s, %d tasks restored%s)",
                 core.master_id, self.endpoint, redact(self.config.store), restored,
                 "" if epoch is None else f", serving under lease epoch {epoch}")
        if self.metrics is not None and self.config.metrics is not None:
            try:
                self._metrics_server = MetricsServer(self.metrics, self.config.metrics)
            except ZqError:
                self._close()
                raise
            log.info("metrics at http://%s/metrics", self._metrics_server.address)
        self.ready.set()
        if self._own_process:
            _tune_gc()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                self._turn(poller)
        except LeaseLost as e:
            self.lease.lost = True  # type: ignore[union-attr]
            self.exit_code = lease.LOST_EXIT
            log.error("%s. Stopped serving at once (exit code %d): another master serves "
                      "now; started again, this one waits as a standby", e, lease.LOST_EXIT)
        finally:
            self._close()

    # --- the lease (a shared store) --------------------------------------------------------

    def _answer_standby(self) -> None:
        """Every message a peer sends a standby gets STANDBY: go elsewhere."""
        frames = codec.encode(Role.MASTER, m.Standby(self.lease.hint if self.lease else ""))
        for got in transport.drain(self.sock, MAX_DRAIN, router=True,  # type: ignore[arg-type]
                                   keys=self.keys is not None):
            if got.message is not None:
                self._send_frames(got.peer, frames)

    def _poll_peers(self, ms: int) -> bool:
        return bool(self.sock.poll(ms))  # type: ignore[union-attr]

    def _advertised(self) -> str:
        """The endpoint standbys name to peers: --advertise, else the bound one with a
        wildcard address as this host's name."""
        if self.config.advertise:
            return self.config.advertise
        host = socket.gethostname()
        return self.endpoint.replace("0.0.0.0", host).replace("[::]", host)

    def _serving(self) -> bool:
        """Whether this master may go on serving: no lease, or its lease was renewed
        less than lease.FENCE_AT of it ago, or it waited fenced until a renewal
        succeeded (then it holds the tasks of the workers that left meanwhile, as after
        a takeover). False when stopped while fenced (then nothing more is sent).
        LeaseLost when the lease moved meanwhile (run() exits 3)."""
        if self.lease is None or not self.lease.overdue():
            return True
        fenced = self.lease.fence(self._poll_peers, self._answer_standby, self._stop.is_set)
        if fenced is None:
            return False
        core = self.core
        core.advance(time.monotonic(), self._wall())
        core.hold_until = max(core.hold_until, core.now + lease.HOLD * self.lease.ttl)
        return True

    def _open_socket(self) -> None:
        """The gate first (it must answer the first handshake), then the ROUTER."""
        config = self.config
        loopback_only = (self.keys is None and not config.insecure
                         and not local_only_transport(config.bind))
        limit = raise_fd_limit() if self._own_process else fd_limit()
        self._gate = Gate(self.ctx, self.keys, loopback_only=loopback_only,
                          max_connections=connection_cap(config.max_connections, limit),
                          fd_limit=limit)
        self.sock, monitor = transport.master_socket(self.ctx, config.bind,
                                                     config.max_message, self.keys)
        self._gate.start(monitor)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("accepting up to %d connections (open-file limit %d)",
                 self._gate.max_connections, limit)
        if self.keys is not None:
            log.info("keys on: admitting %d worker, %d client and %d admin keys",
                     len(self.keys.workers), len(self.keys.clients), len(self.keys.admins))
            if config.insecure:
                log.warning("--insecure has no effect with keys: only admitted keys connect")
        elif loopback_only:
            log.info("no keys: admitting peers on this host (loopback) only; others need "
                     "keys, or --insecure on a trusted network")
        elif config.insecure:
            log.warning("no keys and --insecure: anyone who reaches %s may submit tasks and "
                        "run as a worker", self.endpoint)

    def _schedule_file(self) -> list[dict[str, Any]]:
        if not self.config.schedule:
            return []
        from zq.schedule_file import read_schedule_file
        return read_schedule_file(self.config.schedule)

    def _close(self) -> None:
        serving = self.lease is None or (self.lease.epoch is not None and not self.lease.lost)
        if not serving:
            self._close_socket()  # at once: nothing more goes out (the lease moved, or
            # it was never taken: a standby, which commits nothing either)
        try:
            if serving:
                persist = _persist_of(self.core.handle(ev.Stopping()))
                if not self._commit(persist, force=True):
                    log.error("stopping with changes the store could not commit; they "
                              "were never acknowledged, and clients and workers send them "
                              "again")
        except ZqError:
            pass  # logged; what was not committed was not acknowledged either
        if serving and self.sock is not None and not self.sock.closed:
            with suppress(ZqError):  # best effort, like the last turn's sends
                for rid, ack in self._acks.take_all():
                    self._send_one(rid, ack)
        self.store.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        self._close_socket()
        if self._gate is not None:
            self._gate.stop()
        if self._own_context:
            self.ctx.term()
        log.info("zq master stopped")

    def _close_socket(self) -> None:
        if self.sock is not None and not self.sock.closed:
            self.sock.disable_monitor()
            self.sock.close(linger=0)

    # --- one turn --------------------------------------------------------------------

    def _turn(self, poller: zmq.Poller) -> None:
        core = self.core
        if self._reload:
            self._reload = False
            self._reload_keys()
        # Whole milliseconds, rounded up: rounded down, a deadline less than 1 ms away
        # would make poll return at once, turn after turn, until it came.
        events = poller.poll(math.ceil(self._poll_timeout() * 1000))
        start = time.monotonic()
        core.advance(start, self._wall())
        if self.lease is not None:
            self.lease.renew_if_due(start)
        if not self._serving():
            return  # stopped while fenced
        if events:
            self._last_busy = start
            self._drain(start + DRAIN_BUDGET)
        persist, sends, notes = _sorted_commands(core.tick(start))
        handled = time.monotonic()
        durable = self._commit(persist)
        committed = time.monotonic()
        if not self._serving():  # the commit may have hung on a link gone dark
            return
        self._send(self._after_commit(sends, durable))
        if self._hang_ups:
            for fd in self._hang_ups:
                transport.hang_up(fd)
            self._hang_ups = []
        for note in notes:
            log.log(_LOG_LEVELS.get(note.level, logging.INFO), note.text)
        sent = time.monotonic()
        self._upkeep(sent)
        if self.metrics is not None:
            self._feed_metrics(self.metrics, sent)
        self.turns.note(start, handled, committed, sent, time.monotonic())
        core.longest_turn = self.turns.longest

    def _feed_metrics(self, metrics: Metrics, now: float) -> None:
        """This turn's tasks and commit time, in one call; the gauges every GAUGE_PERIOD."""
        tap = self.core.tap
        if tap or self._commit_took is not None:
            metrics.apply(tap.take() if tap else None, self._commit_took)
            self._commit_took = None
        if now >= self._gauges_due:
            self._gauges_due = now + GAUGE_PERIOD
            metrics.set_gauges(read_gauges(self.core))

    def _poll_timeout(self) -> float:
        """Seconds the turn may wait for a message: until the core's next deadline, the
        store's upkeep, a held peer's retry or the next commit try, 0.5 s at most."""
        now = time.monotonic()
        deadline = self.core.next_deadline()
        if self._store_upkeep:
            deadline = min(deadline, self._last_busy + UPKEEP_QUIET)
        if self._held:  # a peer's queue was full: look again soon, without spinning
            deadline = min(deadline, now + HELD_RETRY)
        if self._store_down is not None:
            deadline = min(deadline, self._store_retry_at)
        if self.lease is not None and self.lease.due is not None:
            deadline = min(deadline, self.lease.due)
        if self._acks:
            deadline = min(deadline, self._acks.due)
        return max(0.0, min(deadline - now, 0.5))

    def _upkeep(self, now: float) -> None:
        """The store's deferred work, in slices: one per turn once the master has been
        quiet for UPKEEP_QUIET; while the store is behind, as many as UPKEEP_BUDGET
        allows every turn, busy or not. Never while the store cannot commit."""
        if not self._store_upkeep or self._store_down is not None:
            return
        store = self.store
        if now < self._last_busy + UPKEEP_QUIET and not store.behind():
            return
        deadline = now + UPKEEP_BUDGET
        with self._stop_on_store_failure():
            try:
                self._store_upkeep = store.compact(UPKEEP_CHUNK)
                while self._store_upkeep and store.behind() and time.monotonic() < deadline:
                    self._store_upkeep = store.compact(UPKEEP_CHUNK)
            except StoreUnavailable as e:  # nothing depends on it: later
                log.warning("%s; the store's upkeep waits %g s", e, STORE_RETRY)
                self._last_busy = self.core.now + STORE_RETRY

    def _drain(self, deadline: float) -> None:
        """Handle waiting messages until none is left, MAX_DRAIN are or the clock
        passes deadline (what is left waits for the next turn). With keys, each message
        comes with the key its sender was admitted with (User-Id), which must be
        admitted in the role the message claims."""
        keys = self.keys
        handle, clock = self._handle, time.monotonic
        for got in transport.drain(self.sock, MAX_DRAIN, router=True,  # type: ignore[arg-type]
                                   keys=keys is not None):
            allowed = keys.admitted.get(got.role) if keys is not None else None  # type: ignore[arg-type]
            if allowed is not None and got.key not in allowed:
                if got.key in self._revoked:
                    self._close_session(got.peer, got.key, got.frame)  # type: ignore[arg-type]
                else:
                    self._refuse(got)
            else:
                handle(got)
            if clock() >= deadline:
                return

    def _reload_keys(self) -> None:
        """SIGHUP: read the key folders again. New handshakes see the new keys at once; a
        removed key's sessions close at their next message (any peer sends one within
        a heartbeat interval): a worker is sent DISCONNECT and its tasks count as lost,
        and the connection is closed, so the peer reconnects and is refused."""
        old = self.keys
        if old is None:
            log.warning("SIGHUP: this master runs without keys; there are none to read again")
            return
        try:
            new = old.reload()
        except ZqError as e:
            log.error("SIGHUP: the keys were not changed: %s", e)
            return
        changed = {k for k in old.known if new.role_of(k) != old.role_of(k)}
        self._revoked = (self._revoked - new.known) | changed
        self._refused_keys.clear()
        self.keys = new
        if self._gate is not None:
            self._gate.keys = new
        for role, before, after in (("worker", old.workers, new.workers),
                                    ("client", old.clients, new.clients),
                                    ("admin", old.admins, new.admins)):
            for key in sorted(after - before):
                log.info("SIGHUP: %s key %s admitted", role, key)
            for key in sorted(before - after):
                log.warning("SIGHUP: %s key %s removed: its sessions close", role, key)
        log.info("SIGHUP: keys read again: %d worker, %d client and %d admin keys",
                 len(new.workers), len(new.clients), len(new.admins))

    def _close_session(self, rid: bytes, key: str, frame: Any) -> None:
        """A message from a key a reload removed: drop it, end the peer's session."""
        as_worker = rid in self.core.workers
        self.core.handle(ev.KeyRevoked(rid, f"its key {key} is no longer admitted by this "
                                            "master"))
        if self._revoked_notes.allow(key) is not None:
            log.warning("closed the session of %s %s: its key %s was removed from the "
                        "master's keys", "worker" if as_worker else "peer", rid.hex(), key)
        try:
            fd = frame.get(zmq.SRCFD)
        except zmq.ZMQError:
            return
        if isinstance(fd, int) and fd >= 0:
            # Shut down after this turn's sends (the worker's DISCONNECT goes first). The
            # fd is the one this message just came from; were it closed and reused within
            # the turn, another peer would be hung up on and would simply reconnect.
            self._hang_ups.append(fd)

    def _refuse(self, got: transport.Received) -> None:
        """A key speaking out of its role (a client key as a worker, say): a key has one.
        A query gets REPLY ok=false and a submission REJECTED, so the caller's call or
        future fails saying why; anything else gets ERROR."""
        rid, key, msg = got.peer, got.key or "(none)", got.message  # CURVE: always a key
        what = got.role.name.lower()  # type: ignore[union-attr]  # admitted has no None
        has = self.keys.role_of(key) if self.keys is not None else None
        if key not in self._refused_keys:
            self._refused_keys.add(key)
            log.warning("refused a message from key %s: it is a %s key, not admitted as a "
                        "%s (a key has one role: give that peer a key from the %s keys)",
                        key, has or "removed", what, what)
        reason = (f"this key is not admitted as a {what} by this master (it is a "
                  f"{has or 'removed'} key): use a key from the master's {what} keys")
        if isinstance(msg, m.Submit):
            self.core.handle(ev.EntriesRefused(rid, m.Cmd.SUBMIT,
                                               [(e[0], reason) for e in msg.entries]))
        else:
            request_id = msg.request_id if isinstance(msg, m.Query) else None
            self.core.handle(ev.HandlingFailed(rid, reason, request_id))

    def _commit(self, out: ev.Persist, force: bool = False) -> bool:
        """Make the turn durable before anything that promises it goes out; True when
        it is (or there was nothing to make durable). A store that cannot write now (a
        full disk, say) keeps what is pending and is tried again every STORE_RETRY
        seconds (force: now); meanwhile the loop goes on, and _after_commit holds back
        every message that promises something durable."""
        changes = out.saves or out.updates or out.deletes or out.meta
        if not changes and self._store_down is None:
            return True
        began = time.monotonic()
        with self._stop_on_store_failure():
            if out.saves:
                self.store.save(out.saves)
            if out.updates:
                self.store.update(out.updates)
            if out.deletes:
                self.store.delete(out.deletes)
            for key, value in out.meta.items():
                self.store.set_meta(key, value)
            if self._store_down is not None and not force and (
                    time.monotonic() < self._store_retry_at):
                return False  # not yet: the next try is due at _store_retry_at
            try:
                self.store.commit()
            except StoreUnavailable as e:
                self._store_failed(e)
                return False
        if self._store_down is not None:
            log.warning("the store commits again, after %.0f s; acknowledging what waited",
                        time.monotonic() - self._store_down)
            self._store_down = None
            self.core.handle(ev.StoreChanged(writable=True))
        self._store_upkeep = True
        if self.metrics is not None:
            self._commit_took = time.monotonic() - began
        return True

    def _store_failed(self, e: StoreUnavailable) -> None:
        now = time.monotonic()
        if self._store_down is None or now - self._store_noted >= STORE_RETRY_NOTE:
            log.error("%s. Until a commit succeeds (tried every %g s), submissions get BUSY "
                      "and nothing is acknowledged meanwhile", e, STORE_RETRY)
            self._store_noted = now
        if self._store_down is None:
            self._store_down = now
            self.core.handle(ev.StoreChanged(writable=False))  # BUSY; no new leases
        self._store_retry_at = now + STORE_RETRY

    def _after_commit(self, messages: list[tuple[bytes, m.Message]],
                      durable: bool) -> list[tuple[bytes, m.Message]]:
        """What to send now. Committed: what waited for the commit, then this turn's.
        Not committed: only messages that promise nothing durable; the others wait, in
        order, except an ACCEPTED, which becomes a BUSY (the client sends those tasks
        again, and hears ACCEPTED once they are committed). A peer whose messages wait
        gets a HEARTBEAT, so it does not take the master for lost meanwhile."""
        if durable:
            if not self._uncommitted:
                return messages
            waiting, self._uncommitted = self._uncommitted, []
            return waiting + messages
        now: list[tuple[bytes, m.Message]] = []
        beat: set[bytes] = set()
        for rid, msg in messages:
            if isinstance(msg, SENT_WHILE_UNCOMMITTED):
                now.append((rid, msg))
            elif isinstance(msg, m.Accepted):
                now.append((rid, m.Busy(list(msg.ids), BUSY_RETRY_AFTER)))
            else:
                self._uncommitted.append((rid, msg))
                beat.add(rid)
        beat.difference_update(rid for rid, _ in now)
        now.extend((rid, m.Heartbeat()) for rid in beat)
        return now

    @contextmanager
    def _stop_on_store_failure(self) -> Iterator[None]:
        try:
            yield
        except LeaseLost:
            self._stop.set()  # run() says why
            raise
        except ZqError:
            log.exception("the store failed; stopping so no unpersisted task is acknowledged")
            self._stop.set()
            raise

    def _send(self, messages: list[tuple[bytes, m.Message]]) -> None:
        """Send in order per peer. A peer whose queue is full (it does not read) has its
        messages held, in order, and tried again next turn; everyone else is served.
        What is held for one peer is bounded in bytes (MasterConfig.max_held). ACKs
        wait up to ACK_HOLD seconds and go together (zq.core.holdback)."""
        held, self._held = self._held, {}
        for rid, waiting in held.items():
            for i, (frames, size) in enumerate(waiting):
                if not self._send_frames(rid, frames):
                    self._held[rid] = waiting[i:]
                    break
                self._held_bytes[rid] -= size
            else:
                del self._held_bytes[rid]
        acks, send = self._acks, self._send_one
        now = time.monotonic()
        for rid, msg in messages:
            if type(msg) is m.Ack:
                for ack in acks.hold(rid, msg, now):  # none: it waits a little
                    send(rid, ack)
                continue
            if acks and (early := _ack_before(acks, rid, msg)) is not None:
                send(rid, early)
            send(rid, msg)
        for rid, ack in acks.take_due(now):
            send(rid, ack)

    def _send_one(self, rid: bytes, msg: m.Message) -> None:
        # Idle, most of what goes out is a HEARTBEAT to each of many workers: its
        # frames are the same for all, encoded once (1,000 workers: 1,000 a second).
        frames = _HEARTBEAT if type(msg) is m.Heartbeat else codec.encode(Role.MASTER, msg)
        if rid in self._held or not self._send_frames(rid, frames):
            self._hold(rid, frames)

    def _send_frames(self, rid: bytes, frames: list[Any]) -> bool:
        """False when the peer's queue is full; a peer that is gone counts as sent (workers
        are expired by liveness; clients WATCH again when they come back)."""
        try:
            transport.send_frames(self.sock, frames, rid)  # type: ignore[arg-type]
        except PeerCongested:
            return False
        except PeerGone:
            pass
        return True

    def _hold(self, rid: bytes, frames: list[Any]) -> None:
        size = sum(map(len, frames))
        self._held.setdefault(rid, []).append((frames, size))
        total = self._held_bytes[rid] = self._held_bytes.get(rid, 0) + size
        if total > self.config.max_held:
            self._drop_session(rid, total)

    def _still_shunned(self, rid: bytes) -> bool:
        until = self._shunned.get(rid)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._shunned[rid]
        return False

    def _drop_session(self, rid: bytes, total: int) -> None:
        """A peer that stopped reading while the master holds max_held bytes for it:
        forget what is held and drop its session (a worker is lost, its tasks run
        elsewhere; a client must WATCH again once it reconnects). Others go on."""
        self._held.pop(rid, None)
        self._held_bytes.pop(rid, None)
        if len(self._shunned) >= MAX_SHUNNED:
            self._shunned.pop(next(iter(self._shunned)))
        self._shunned[rid] = time.monotonic() + SHUN_SECONDS
        w = self.core.workers.get(rid)
        what = f"worker {w.name}" if w is not None else "client"
        self.core.handle(ev.PeerStoppedReading(rid))
        log.warning("peer %s (%s) stopped reading: %d bytes were held for it, over the "
                    "limit of %d (max_held); its session is dropped and what was held "
                    "discarded; what it sends in the next %g s is dropped",
                    rid.hex(), what, total, self.config.max_held, SHUN_SECONDS)

    # --- messages ------------------------------------------------------------------------

    def _handle(self, got: transport.Received) -> None:
        """One message from peer got.peer (got.key: the public key it was admitted with).
        Nothing raised while handling it ends the loop: it is logged, counted and answered."""
        rid, key, msg = got.peer, got.key, got.message
        core = self.core
        if self._shunned and self._still_shunned(rid):
            core.handle(ev.MessageDropped(rid))
            return
        if msg is None:
            log.debug("dropped a malformed message from %s: %s", rid.hex(), got.error)
            core.handle(ev.GarbageReceived(rid, str(got.error), answer=got.role is not None))
            return
        try:
            role = got.role
            if role is Role.CLIENT and type(msg) in _READS_STORED:
                self._load_missing(rid, msg)
            core.handle(ev.MessageReceived(rid, role, msg, key,  # type: ignore[arg-type]
                                           key is None or self._is_admin(key)))
        except ProtocolError as e:
            log.debug("dropped a malformed message from %s: %s", rid.hex(), e)
            core.handle(ev.GarbageReceived(rid, str(e), answer=True))
        except Exception as e:  # noqa: BLE001 - one message must never end the loop
            self._failed(rid, msg, e)

    def _failed(self, rid: bytes, msg: m.Message | None, e: Exception) -> None:
        """Handling one message raised: a bug, or input no check caught. Log it with the
        peer (a few times a minute at most), count it, tell the peer, go on."""
        what = type(msg).__name__.upper() if msg is not None else "message"
        left_out = self._failure_notes.allow("handling")
        if left_out is not None:
            since = f" ({left_out} more failures since were not logged)" if left_out else ""
            log.error("handling a %s from peer %s failed: %s: %s%s", what, rid.hex(),
                      type(e).__name__, e, since, exc_info=e)
        request_id = msg.request_id if isinstance(msg, m.Query) else None
        self.core.handle(ev.HandlingFailed(rid, f"the master could not handle this {what} "
                                                f"({type(e).__name__}: {e})", request_id))

    def _is_admin(self, key: str) -> bool:
        return self.keys is not None and self.keys.is_admin(key)

    def _load_missing(self, rid: bytes, msg: m.Message) -> None:
        """Old results live only in the store: read those a WATCH or a query names back
        before the core answers."""
        if isinstance(msg, m.Watch):
            ids = msg.ids
        elif isinstance(msg, m.Query):
            ids = queries.ids_to_load(msg.kind, msg.args)
        else:
            return
        tasks = self.core.tasks
        freed = queries.args_to_load(self.core, rid, msg.kind, msg.args) \
            if isinstance(msg, m.Query) else []
        read = {i: self.store.get(i) for i in dict.fromkeys([
            *(i for i in ids if i not in tasks), *freed])}
        loaded = [t for t in read.values() if t is not None and t.id not in tasks]
        args = {i: read[i].payload for i in freed if read[i] is not None}  # type: ignore[union-attr]
        if loaded or args:
            self.core.handle(ev.RecordsLoaded(loaded, args, rid))


def _ack_before(acks: AckHold, rid: bytes, msg: m.Message) -> m.Ack | None:
    """The held ACK that must go before msg: a TASK or CANCEL naming one of its tasks."""
    if type(msg) is m.Task:
        return acks.before(rid, map(_task_id, msg.entries))  # C-speed, no list built
    if type(msg) is m.Cancel:
        return acks.before(rid, msg.ids)
    return None


_task_id = itemgetter(0)  # of a TASK entry
_HEARTBEAT = codec.encode(Role.MASTER, m.Heartbeat())
_LOG_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}

# Messages that may name tasks only the store still holds.
_READS_STORED = (m.Watch, m.Query)


def _sorted_commands(cmds: list[ev.Command]) -> tuple[ev.Persist, list[tuple[bytes, m.Message]],
                                                      list[ev.Log]]:
    """A tick's commands by kind: the Persist, the Sends as (rid, message) in order, the
    Logs."""
    persist = ev.Persist()
    sends: list[tuple[bytes, m.Message]] = []
    notes: list[ev.Log] = []
    for c in cmds:
        if type(c) is ev.Send:
            sends.append((c.rid, c.message))
        elif type(c) is ev.Persist:
            persist = c
        else:
            notes.append(c)  # type: ignore[arg-type]
    return persist, sends, notes


def _persist_of(cmds: list[ev.Command]) -> ev.Persist:
    return _sorted_commands(cmds)[0]


def run_master(config: MasterConfig) -> int:
    """Run until SIGTERM/SIGINT, then commit and close cleanly. Returns an exit code."""
    master = Master(config, own_process=True)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        master.stop()

    def on_hangup(signum: int, frame: Any) -> None:
        master.reload_keys()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    master.run()
    return master.exit_code
