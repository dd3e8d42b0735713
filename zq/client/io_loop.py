"""The client's I/O thread: owns the socket, turns what the mailbox holds and what the
master sends into events for the client core (zq.core.client_core), and carries out the
commands it returns: send, open or close the socket, settle futures and queries."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Any, Callable

import zmq

from zq import transport
from zq.client.exit import AT_EXIT, FINAL_LINGER
from zq.client.mailbox import Mailbox, Stop
from zq.config import ClientConfig
from zq.core import client_events as ce
from zq.core import messages as m
from zq.core.client_core import ClientCore
from zq.core.messages import Role
from zq.errors import AccessRefused, ConnectionLost, PeerCongested, ZqError
from zq.masters import MasterList

log = logging.getLogger(__name__)

class _PollInterrupted(Exception):
    """A KeyboardInterrupt raised in a leader's poll, where the loop's state is whole."""


MAX_DRAIN = 10_000  # messages read per loop turn before the loop acts on timers again
FINAL_LINGER_MS = int(FINAL_LINGER * 1000)  # the last close: ms to hand queued messages on


class IoLoop:
    """One client's I/O thread and the core it drives. The first socket is made in
    the constructor, so a bad endpoint fails in Client(); start() runs the thread."""

    def __init__(self, config: ClientConfig, keys: Any, ctx: zmq.Context[Any], own_ctx: bool,
                 mailbox: Mailbox) -> None:
        self.config, self.keys, self.ctx, self.own_ctx = config, keys, ctx, own_ctx
        self.mailbox = mailbox
        self.core = ClientCore(batch_size=config.batch_size,
                               heartbeat_interval=config.heartbeat_interval,
                               liveness=config.heartbeat_liveness, now=time.monotonic(),
                               rand=random.random)
        self.sock: zmq.Socket[Any] | None = None
        self.monitor: zmq.Socket[Any] | None = None  # the link closing, or refused (LinkWatch)
        self.masters = MasterList(config.connect)  # several: tried in turn
        self.watch = transport.LinkWatch("client", config.connect, keys)
        self.busy_notes = transport.LogThrottle()
        self.refused: AccessRefused | None = None  # the master turned us away for good
        self.poller = zmq.Poller()
        self.poller.register(mailbox.wake_fd(), zmq.POLLIN)
        self.backlog: list[m.Message] = []  # messages zmq would not take yet (HWM)
        self.pollout = False
        self.dropped = 0  # malformed messages from the master
        self.unaccepted: list[tuple[str, str]] = []  # (id, name) left unacknowledged at the end
        self.thread = threading.Thread(target=self.run, name="zq-client-io", daemon=True)
        # Whoever runs a turn holds the baton: the I/O thread, or a caller waiting for its
        # future (lead()), while the I/O thread parks. The socket and the core move with it.
        self._baton = threading.Lock()
        self._ended = False  # a turn said stop (on either thread)
        self._leader_error: BaseException | None = None  # a leader's turn failed: end with it
        self._open_socket()
        self._run(self.core.handle(ce.LinkOpened(time.monotonic())))

    # --- the thread, seen from other threads ----------------------------------------------

    def start(self) -> None:
        self.thread.start()
        AT_EXIT.add(self)

    def stop(self, stop: Stop) -> None:
        """Close the mailbox; the thread ends as stop says: ("flush", deadline) once
        nothing is unacknowledged or at the deadline, ("idle", inf) once nothing is open."""
        self.mailbox.shutdown(stop)

    def join(self, timeout: float | None = None) -> None:
        if not self.mailbox.on_io_thread():
            self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    # --- the thread itself ------------------------------------------------------------------

    def run(self) -> None:
        self.mailbox.attach_io_thread()
        error: BaseException = ConnectionLost(
            "the client was closed before the result arrived; the task itself goes on")
        mailbox, baton = self.mailbox, self._baton
        try:
            while not self._ended:
                if mailbox.lead_wanted():  # a caller runs the turns now: wait until it is done
                    mailbox.wait_lead_done()
                    if self._leader_error is not None:
                        raise self._leader_error
                    continue
                with baton:
                    self._ended = self._turn()
            if self.refused is not None:
                error = self.refused
        except BaseException as e:  # a bug here must not leave futures hanging forever
            log.exception("zq client I/O thread failed")
            error = ZqError(f"the client's I/O thread failed: {type(e).__name__}: {e}")
        finally:
            self._finish(error)

    def lead(self, fut: Any, timeout: float | None) -> None:
        """Wait for fut by running the loop's turns on the calling thread (the fast path
        of a lone submit().result(): the result is read, decoded and settled right here,
        without waking this thread from the I/O thread). Returns once fut is done, the
        timeout passed, or this thread cannot lead (fut is not the only future waited
        for, another thread leads, the client is closing, or this is the I/O thread: a
        done-callback); the caller then waits as usual.

        The I/O thread parks meanwhile; every other future, submission, heartbeat and
        timer is served by the leader's turns as by the I/O thread's. A KeyboardInterrupt
        while the leader waits in poll (almost all of its time) leaves the loop whole and
        is raised in the caller; anywhere else in a turn it may have cut a message short,
        so the client then ends with it as the I/O thread's error (every waiting future
        raises; nothing is lost silently)."""
        mailbox = self.mailbox
        if self._ended or mailbox.on_io_thread() or not self.thread.is_alive():
            return
        # Lone: nothing else is followed or waits to be sent (a read of sizes from this
        # thread: a hint, right or wrong only for speed). Else the I/O thread serves all.
        if len(self.core.sinks) + mailbox.waiting() > 1:
            return
        if not mailbox.ask_lead():
            return
        try:
            until = math.inf if timeout is None else time.monotonic() + timeout
            if not self._baton.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
                return
            try:
                if not self._ended:
                    self._lead_until(fut, until)
            finally:
                self._baton.release()
        finally:
            mailbox.end_lead()

    def _lead_until(self, fut: Any, until: float) -> None:
        """Turns on the caller's thread (baton held) until fut is done or until passes."""
        mailbox = self.mailbox
        own = mailbox.lead_as(threading.get_ident())
        try:
            while not fut.done() and time.monotonic() < until:
                if self._turn(until):
                    self._ended = True
                    return
        except _PollInterrupted as e:  # the loop is whole: only the caller is interrupted
            raise e.__cause__ from None  # type: ignore[misc]
        except BaseException as e:
            self._leader_error = e  # the I/O thread ends the client with it
            raise
        finally:
            mailbox.lead_as(own)

    def _turn(self, until: float | None = None) -> bool:
        """One loop turn; True when the client should stop. until: this turn runs on a
        caller's thread (lead()), whose poll waits until then at most."""
        now = time.monotonic()
        self._run(self.core.tick(now))
        self._send()
        if self._should_stop(now):
            return True
        if until is None:
            events = dict(self.poller.poll(self._timeout(now)))
        else:
            try:
                events = dict(self.poller.poll(self._timeout(now, until)))
            except KeyboardInterrupt as e:
                raise _PollInterrupted() from e
        if self.mailbox.wake_fd() in events:
            self.mailbox.drain_wake()
        if self.sock is not None and events.get(self.sock, 0) & zmq.POLLIN:
            self._receive()
        dropped = self.monitor is not None and self.monitor in events and self._link_dropped()
        if self.refused is not None:
            return True
        if dropped:  # in a failing handshake LinkWatch has the story: say it once, there
            log.log(logging.DEBUG if self.watch.failing else logging.WARNING,
                    "zq master at %s %s; reconnecting", self.masters.current,
                    "could not be reached" if self.watch.unreachable
                    else "closed the connection")
            self._run(self.core.handle(ce.LinkDropped(time.monotonic())))
        self._take_mailbox()
        self._send()
        return False

    def _timeout(self, now: float, until: float | None = None) -> int:
        """Milliseconds poll may sleep: until the core's next deadline (or a leader's
        until), or 0 when the mailbox already has work."""
        stop_at = self.mailbox.go_idle(leading=until is not None)
        if stop_at is None:
            return 0
        due = min(self.core.next_deadline(), stop_at, math.inf if until is None else until)
        return max(0, math.ceil((due - now) * 1000)) if due < math.inf else -1

    def _take_mailbox(self) -> None:
        entries, sinks, requests = self.mailbox.take()
        if entries:  # one event for the whole take: the submit hot path
            self._run(self.core.handle(ce.Submitted(entries, sinks)))
        for event in requests:
            self._run(self.core.handle(event))

    def _should_stop(self, now: float) -> bool:
        stop = self.mailbox.stop_requested()
        if stop is None:
            return False
        if stop[0] == "flush":
            return not self.core.unacked or now >= stop[1]
        return self.core.idle

    # --- socket ---

    def _open_socket(self) -> None:
        endpoint = self.watch.endpoint = self.masters.next()
        self.sock, self.monitor = transport.watched_peer_socket(
            self.ctx, endpoint, keys=self.keys)
        self.poller.register(self.sock, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)
        self.pollout = False
        self.backlog = []

    def _close_socket(self, linger: int = 0) -> None:
        """linger 0 after a lost master: what is queued for it is stale (rebuilt on the
        next open). The client's last close lingers instead, so fire-and-forget messages
        still queued (a CANCEL right before close()) reach a live master."""
        if self.sock is not None:
            self.poller.unregister(self.sock)
            if self.monitor is not None:
                self.poller.unregister(self.monitor)
                transport.unwatch(self.sock, self.monitor)
                self.monitor = None
            self.sock.close(linger=linger)
            self.sock = None
        self.backlog = []

    def _final_linger(self) -> int:
        """Milliseconds the last close may spend handing queued messages (a CANCEL made
        just before close()) to the master: FINAL_LINGER_MS, but never past the deadline
        close() was given, so close(0) after no master answered returns at once."""
        stop = self.mailbox.final_stop()
        if stop is None or stop[0] != "flush":
            return FINAL_LINGER_MS
        left_ms = int((stop[1] - time.monotonic()) * 1000)
        return max(0, min(FINAL_LINGER_MS, left_ms))

    def _link_dropped(self) -> bool:
        """Drain the monitor; True if the link dropped. A refusal for good (the master
        does not admit this client) ends the client with AccessRefused, which every
        waiting future and call then raises; a busy master is retried."""
        dropped, refusal = self.watch.read(self.monitor)  # type: ignore[arg-type]
        if refusal is not None and refusal.final:
            self.refused = AccessRefused(refusal.message)
        elif refusal is not None:
            left_out = self.busy_notes.allow(refusal.message)
            if left_out is not None:
                log.warning("%s", refusal.message)
        return dropped

    def _send(self) -> None:
        """Hand the backlog to zmq, in order, until its high-water mark says wait."""
        if not self.backlog or self.sock is None:
            return
        sent = 0
        for msg in self.backlog:
            try:
                transport.send(self.sock, Role.CLIENT, msg)
            except PeerCongested:  # high-water mark: keep the rest and poll for POLLOUT
                break
            except Exception:  # an unencodable message is a bug; drop it, keep the link
                log.exception("zq client could not send %s", type(msg).__name__)
            sent += 1
        del self.backlog[:sent]
        if sent:
            self._run(self.core.handle(ce.MessagesSent(time.monotonic())))
        if self.pollout != bool(self.backlog):
            self.pollout = bool(self.backlog)
            self.poller.register(self.sock, zmq.POLLIN | (zmq.POLLOUT if self.pollout else 0))

    def _receive(self) -> None:
        sock, core, now = self.sock, self.core, time.monotonic()
        if sock is None:
            return
        for got in transport.drain(sock, MAX_DRAIN, expect=Role.MASTER):
            if got.message is None:
                self.dropped += 1
                log.debug("zq client dropped a malformed message: %s", got.error)
                continue
            if type(got.message) is m.Standby:
                self.masters.follow(got.message.active)
                log.info("zq master at %s is a standby%s", self.masters.current,
                         f"; the active one is at {got.message.active}"
                         if got.message.active else "")
            self._run(core.handle(ce.MessageReceived(got.message, now)))
            if self.sock is not sock:  # closed (a standby): the next open reads the new one
                return

    # --- commands -----------------------------------------------------------------------

    def _run(self, commands: list[ce.Command]) -> None:
        for cmd in commands:
            _COMMANDS[type(cmd)](self, cmd)

    def _do_send(self, cmd: ce.Send) -> None:
        self.backlog.append(cmd.message)

    def _do_open(self, cmd: ce.OpenConnection) -> None:
        now = time.monotonic()
        try:
            self._open_socket()
        except ConnectionLost as e:
            log.warning("zq client: %s; retrying", e)
            self._run(self.core.handle(ce.OpenFailed(now)))
        else:
            self._run(self.core.handle(ce.LinkOpened(now)))

    def _do_close(self, cmd: ce.CloseConnection) -> None:
        if cmd.silent_for is not None:
            log.warning("zq master at %s silent for %.1f s; reconnecting",
                        self.masters.current, cmd.silent_for)
        self._close_socket()

    # One loop per command, one guarded call per sink: a sink that raises (a bug, or a
    # done-callback's error escaping) must not cost the others their outcome.

    def _settle_results(self, cmd: ce.SettleResults) -> None:
        for sink, entry in cmd.items:
            try:
                sink.on_result(*entry)
            except Exception:
                log.exception("zq client could not deliver a result")

    def _settle_partials(self, cmd: ce.SettlePartials) -> None:
        for sink, entry in cmd.items:
            try:
                sink.on_partial(*entry)
            except Exception:
                log.exception("zq client could not deliver a chunk")

    def _settle_progress(self, cmd: ce.SettleProgress) -> None:
        for sink, tid, done, total in cmd.items:
            try:
                sink.on_progress(tid, done, total)
            except Exception:
                log.exception("zq client could not deliver progress")

    def _fail_tasks(self, cmd: ce.FailTasks) -> None:
        for sink, tid, exc in cmd.items:
            try:
                sink.on_failed(tid, exc)
            except Exception:
                log.exception("zq client could not deliver a failure")

    def _settle_cancelled(self, cmd: ce.SettleCancelled) -> None:
        for sink, tid in cmd.items:
            try:
                sink.on_cancelled(tid)
            except Exception:
                log.exception("zq client could not deliver a cancellation")

    def _follow(self, cmd: ce.FollowTasks) -> None:
        for sink, tid, existing in cmd.items:
            try:
                sink.on_followed(tid, existing)
            except Exception:
                log.exception("zq client could not deliver a deduplication")

    def _answer(self, cmd: ce.AnswerQuery) -> None:
        try:
            cmd.sink.on_reply(cmd.ok, cmd.body)
        except Exception:
            log.exception("zq client could not deliver a reply")

    def _fail_queries(self, cmd: ce.FailQueries) -> None:
        for sink, exc in cmd.items:
            try:
                if exc is None:
                    sink.on_expired()
                else:
                    sink.on_lost(exc)
            except Exception:
                log.exception("zq client could not deliver a lost query")

    def _log_master_error(self, cmd: ce.LogMasterError) -> None:
        log.warning("zq master reported an error: %s", cmd.reason)

    def _free_room(self, cmd: ce.FreeRoom) -> None:
        self.mailbox.acked(cmd.count)

    def _finish(self, error: BaseException) -> None:
        leftover, replies = self.mailbox.finish(error)
        # Kept for the report at interpreter exit: what the master never acknowledged.
        self.unaccepted = self.core.unaccepted()
        self.unaccepted += [(tid, name) for (tid, name, *_), _ in leftover]
        AT_EXIT.discard(self)
        self._fail_tasks(ce.FailTasks([(sink, tid, error) for (tid, *_), sink in leftover]))
        self._fail_queries(ce.FailQueries([(reply, error) for reply in replies]))
        try:
            self._run(self.core.handle(ce.ClientClosed(error)))
        finally:
            self._close_socket(linger=self._final_linger())
            self.mailbox.close_wake()
            if self.own_ctx:
                self.ctx.term()


_COMMANDS: dict[type, Callable[[IoLoop, Any], None]] = {
    ce.Send: IoLoop._do_send, ce.OpenConnection: IoLoop._do_open,
    ce.CloseConnection: IoLoop._do_close,
    ce.SettleResults: IoLoop._settle_results, ce.SettlePartials: IoLoop._settle_partials,
    ce.SettleProgress: IoLoop._settle_progress, ce.FailTasks: IoLoop._fail_tasks,
    ce.SettleCancelled: IoLoop._settle_cancelled, ce.FollowTasks: IoLoop._follow,
    ce.AnswerQuery: IoLoop._answer, ce.FailQueries: IoLoop._fail_queries,
    ce.LogMasterError: IoLoop._log_master_error, ce.FreeRoom: IoLoop._free_room,
}
