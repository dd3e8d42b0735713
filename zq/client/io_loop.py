"""The client's I/O thread: owns the socket, takes the mailbox into the session, sends
what the session says, reads every message waiting and settles futures."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Any

import zmq

from zq import transport
from zq.client.exit import AT_EXIT, FINAL_LINGER
from zq.client.mailbox import Mailbox, Stop
from zq.config import ClientConfig
from zq.core import messages as m
from zq.core.client_core import ClientSession, Delivery, LinkAction
from zq.core.messages import Role
from zq.errors import AccessRefused, ConnectionLost, PeerCongested, ZqError

log = logging.getLogger(__name__)

MAX_DRAIN = 10_000  # messages read per loop turn before the loop acts on timers again
FINAL_LINGER_MS = int(FINAL_LINGER * 1000)  # the last close: ms to hand queued messages on


class IoLoop:
    """One client's I/O thread and the session it drives. The first socket is made in
    the constructor, so a bad endpoint fails in Client(); start() runs the thread."""

    def __init__(self, config: ClientConfig, keys: Any, ctx: zmq.Context[Any], own_ctx: bool,
                 mailbox: Mailbox) -> None:
        self.config, self.keys, self.ctx, self.own_ctx = config, keys, ctx, own_ctx
        self.mailbox = mailbox
        self.session = ClientSession(batch_size=config.batch_size,
                                     heartbeat_interval=config.heartbeat_interval,
                                     liveness=config.heartbeat_liveness, now=time.monotonic())
        self.sock: zmq.Socket[Any] | None = None
        self.monitor: zmq.Socket[Any] | None = None  # the link closing, or refused (LinkWatch)
        self.watch = transport.LinkWatch("client", config.connect, keys)
        self.busy_notes = transport.LogThrottle()
        self.refused: AccessRefused | None = None  # the master turned us away for good
        self.poller = zmq.Poller()
        self.poller.register(mailbox.wake_fd(), zmq.POLLIN)
        self.backlog: list[m.Message] = []  # messages zmq would not take yet (HWM)
        self.acked_seen = 0
        self.pollout = False
        self.dropped = 0  # malformed messages from the master
        self.unaccepted: list[tuple[str, str]] = []  # (id, name) left unacknowledged at the end
        self.thread = threading.Thread(target=self.run, name="zq-client-io", daemon=True)
        self._open_socket()
        self.session.opened(time.monotonic())

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
        try:
            while not self._turn():
                pass
            if self.refused is not None:
                error = self.refused
        except BaseException as e:  # a bug here must not leave futures hanging forever
            log.exception("zq client I/O thread failed")
            error = ZqError(f"the client's I/O thread failed: {type(e).__name__}: {e}")
        finally:
            self._finish(error)

    def _turn(self) -> bool:
        """One loop turn; True when the client should stop."""
        session, now = self.session, time.monotonic()
        action, notes = session.tick(now, random.random())
        self._apply(notes)
        if action is LinkAction.CLOSE:
            log.warning("zq master at %s silent for %.1f s; reconnecting",
                        self.config.connect, session.window)
            self._close_socket()
        elif action is LinkAction.OPEN:
            try:
                self._open_socket()
            except ConnectionLost as e:
                log.warning("zq client: %s; retrying", e)
                session.open_failed(now, random.random())
            else:
                self._apply(session.opened(now))
        self._send()
        if self._should_stop(now):
            return True
        events = dict(self.poller.poll(self._timeout(now)))
        if self.mailbox.wake_fd() in events:
            self.mailbox.drain_wake()
        if self.sock is not None and events.get(self.sock, 0) & zmq.POLLIN:
            self._receive()
        dropped = self.monitor is not None and self.monitor in events and self._link_dropped()
        if self.refused is not None:
            return True
        if dropped:  # in a failing handshake LinkWatch has the story: say it once, there
            log.log(logging.DEBUG if self.watch.failing else logging.WARNING,
                    "zq master at %s closed the connection; reconnecting", self.config.connect)
            if session.dropped(time.monotonic(), random.random()) is LinkAction.CLOSE:
                self._close_socket()
        self._take_mailbox()
        self._send()
        self._report_acked()
        return False

    def _timeout(self, now: float) -> int:
        """Milliseconds poll may sleep: until the session's next deadline, or 0 when
        the mailbox already has work."""
        stop_at = self.mailbox.go_idle()
        if stop_at is None:
            return 0
        due = min(self.session.next_deadline(), stop_at)
        return max(0, math.ceil((due - now) * 1000)) if due < math.inf else -1

    def _take_mailbox(self) -> None:
        entries, sinks, ops = self.mailbox.take()
        if entries:
            self.session.submit(entries, sinks)
        for op, args in ops:
            if op == "cancel_all":
                self._apply(self.session.cancel_all())
            else:
                getattr(self.session, op)(*args)

    def _report_acked(self) -> None:
        acked = self.session.acked
        if acked != self.acked_seen:
            self.mailbox.acked(acked - self.acked_seen)
            self.acked_seen = acked

    def _should_stop(self, now: float) -> bool:
        stop = self.mailbox.stop_requested()
        if stop is None:
            return False
        if stop[0] == "flush":
            return not self.session.unacked or now >= stop[1]
        return self.session.idle

    # --- socket ---

    def _open_socket(self) -> None:
        self.sock, self.monitor = transport.watched_peer_socket(
            self.ctx, self.config.connect, keys=self.keys)
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
        out = self.session.take_outbox()
        if out:
            self.backlog.extend(out)
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
            self.session.sent(time.monotonic())
        if self.pollout != bool(self.backlog):
            self.pollout = bool(self.backlog)
            self.poller.register(self.sock, zmq.POLLIN | (zmq.POLLOUT if self.pollout else 0))

    def _receive(self) -> None:
        sock, session, now = self.sock, self.session, time.monotonic()
        if sock is None:
            return
        for got in transport.drain(sock, MAX_DRAIN, expect=Role.MASTER):
            if got.message is None:
                self.dropped += 1
                log.debug("zq client dropped a malformed message: %s", got.error)
                continue
            self._apply(session.received(got.message, now))

    # --- settling ---

    def _apply(self, deliveries: list[Delivery]) -> None:
        for name, sink, args in deliveries:
            if sink is None:
                log.warning("zq master reported an error: %s", args[0])
                continue
            try:
                getattr(sink, name)(*args)
            except Exception:
                log.exception("zq client could not deliver %s", name)

    def _finish(self, error: BaseException) -> None:
        leftover, replies = self.mailbox.finish(error)
        # Kept for the report at interpreter exit: what the master never acknowledged.
        self.unaccepted = [(e[0], e[1]) for e in self.session.unacked.values()]
        self.unaccepted += [(tid, name) for (tid, name, *_), _ in leftover]
        AT_EXIT.discard(self)
        self._apply([("on_failed", sink, (tid, error)) for (tid, *_), sink in leftover])
        self._apply([("on_lost", reply, (error,)) for reply in replies])
        try:
            self._apply(self.session.abandon(error))
        finally:
            self._close_socket(linger=self._final_linger())
            self.mailbox.close_wake()
            if self.own_ctx:
                self.ctx.term()
