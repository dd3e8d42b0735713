"""The worker's I/O loop: one DEALER to the master, a pool of task runners, and the
session core (zq.core.worker_core) between them. Poll, drain, decode, hand events to the
core, apply its commands; every rule about tasks and the session lives in the core.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import socket as _socket
import threading
import time
import weakref
from typing import Any

import zmq

from zq import shipping, transport
from zq.config import WorkerConfig
from zq.core import codec
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as ev
from zq.core.messages import Role
from zq.errors import PeerCongested
from zq.masters import MasterList
from zq.pools import make_pool
from zq.security import peer_keys

log = logging.getLogger(__name__)

MAX_DRAIN = 10_000  # messages read per loop turn at most, so results still go out
MAX_POLL_MS = 1000  # wake at least this often, whatever the deadlines say


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Worker:
    """One worker process: ``Worker(config).run()`` blocks until stopped and returns the
    exit code (0 after a graceful stop, 1 after a forced one or a broken pool).
    ``stop()`` may be called from any thread or a signal handler."""

    def __init__(self, config: WorkerConfig, *, context: zmq.Context | None = None) -> None:
        self.config = config.validate()
        self._keys = peer_keys("worker", config.keys, config.secret_key, config.master_key)
        self._given_context = context
        self._stop_level = 0  # 1 graceful, 2 at once; an int store is atomic, no lock:
        # a lock here could deadlock when a signal handler interrupts its holder
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # The pipe outlives run() so a late stop() never writes to a reused fd number.
        weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None  # the socket's handshake news (LinkWatch)
        self._masters = MasterList(config.connect)  # --connect a,b: tried in turn
        self._watch = transport.LinkWatch("worker", config.connect, self._keys)
        self._refusals = transport.LogThrottle()
        self._poller = zmq.Poller()
        self._pollout = False  # the socket is polled for room too (_sync_pollout)
        self._pool_fds: list[int] = []
        self._exit: int | None = None
        self._dropped = 0
        # Who we are to the master (PROTOCOL §4): random, kept across reconnects, never
        # shared with another process, so two workers with one --name stay apart.
        self._session = os.urandom(16).hex()

    # --- public -------------------------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Request a graceful stop (return unstarted tasks, finish running ones, wait for
        ACKs, BYE), or with ``force`` a stop at once that kills running tasks."""
        self._stop_level = max(self._stop_level, 2 if force else 1)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full: a wake-up is pending anyway

    def run(self) -> int:
        config = self.config
        ctx = self._given_context or zmq.Context()
        if config.allow_code:
            shipping.require_cloudpickle("zq worker --allow-code")
            log.warning("--allow-code: this worker runs code that clients send (ship_code=True)"
                        "; the master admits it only if it runs with keys")
        pool = make_pool(config.pool, config.apps, config.concurrency,
                         allow_code=config.allow_code, inline_under=config.inline_under)
        pool.start()  # ConfigError when an --app cannot be imported
        self._pool = pool
        catalogue, problems = codec.fit_catalogue(pool.catalogue)
        for why in problems:
            log.warning("not announced to the master (a submission by name gets no declared "
                        "options for it): %s", why)
        self._core = wc.WorkerCore.from_config(config, host=_socket.gethostname(),
                                               pid=os.getpid(), session=self._session,
                                               rand=random.random, catalogue=catalogue)
        self._ctx = ctx
        self._poller.register(self._wake_r, zmq.POLLIN)
        log.info("worker %s (session %s): %s pool of %d, credit %d, apps %s, master %s",
                 config.name, self._session[:8], config.pool, config.concurrency,
                 config.credit, ", ".join(config.apps), config.connect)
        graceful = False
        try:
            code = self._loop()
            graceful = code == 0
            return code
        finally:
            self._close_socket()
            self._poller.unregister(self._wake_r)
            pool.close(kill=not graceful)
            if self._given_context is None:
                ctx.term()
            unacked = self._core.statistics().unacked
            if unacked:
                log.warning("%d results were not acknowledged by the master before exit; "
                            "it will run those tasks again", unacked)

    # --- the loop -----------------------------------------------------------------------

    def _loop(self) -> int:
        core, pool = self._core, self._pool
        now = time.monotonic()
        self._apply(core.handle(ev.Started(now)), now)
        self._apply(core.tick(now), now)  # HELLO goes out before the first wait
        stop_seen = 0
        while self._exit is None:
            now = time.monotonic()
            self._sync_pool_fds()
            self._sync_pollout()
            deadline = core.next_deadline()
            pool_deadline = pool.next_deadline(now)
            if pool_deadline is not None:
                deadline = min(deadline, pool_deadline)
            wait = deadline - now  # -inf: something to send: no wait
            timeout = (MAX_POLL_MS if wait == math.inf
                       else min(MAX_POLL_MS, math.ceil(max(0.0, wait) * 1000)))
            events = self._poller.poll(timeout)
            now = time.monotonic()
            ready: set[int] = set()
            sock_ready = False
            for what, _ in events:
                if what is self._sock:
                    sock_ready = True
                elif what is self._monitor:
                    if self._read_monitor():
                        self._apply(self._core.handle(ev.LinkDropped(now)), now)
                elif what == self._wake_r:
                    self._drain_wake()
                else:
                    ready.add(what)
            if pool.broken and self._stop_level < 2:
                log.error("stopping: %s", pool.broken)
                self._stop_level = 2
            if self._stop_level > stop_seen:
                stop_seen = self._stop_level
                self._on_stop(stop_seen, now)
            if sock_ready and self._exit is None:
                self._drain_socket(now)
            report = pool.collect(now, ready)
            if report is not None:
                self._apply(core.handle(ev.PoolReported(
                    report.results, report.partials, report.progress, report.returned, now,
                    report.started)), now)
            self._apply(core.tick(now), now)
        return self._exit

    def _on_stop(self, level: int, now: float) -> None:
        if level >= 2:
            log.warning("stopping at once: running tasks are killed")
            self._apply(self._core.handle(ev.StopForced(now)), now)
        else:
            returned = self._pool.withdraw_unstarted()
            log.info("stopping: %d unstarted tasks returned, waiting up to %g s for running "
                     "ones (send the signal again to stop at once)", len(returned),
                     self.config.shutdown_timeout)
            self._apply(self._core.handle(ev.StopRequested(returned, now)), now)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass

    def _sync_pool_fds(self) -> None:
        fds = self._pool.fds()
        if fds == self._pool_fds:
            return
        for fd in set(self._pool_fds) - set(fds):
            self._poller.unregister(fd)
        for fd in set(fds) - set(self._pool_fds):
            self._poller.register(fd, zmq.POLLIN)
        self._pool_fds = list(fds)

    def _sync_pollout(self) -> None:
        """Poll the socket for room too while the core waits for it (a send failed); a
        DEALER with room is always writable, so only then."""
        sock = self._sock
        want = sock is not None and self._core.send_blocked
        if want != self._pollout and sock is not None:
            self._pollout = want
            self._poller.register(sock, zmq.POLLIN | (zmq.POLLOUT if want else 0))

    def _drain_socket(self, now: float) -> None:
        core, sock = self._core, self._sock
        if sock is None:
            return
        for got in transport.drain(sock, MAX_DRAIN, expect=Role.MASTER):
            if got.message is None:
                self._log_dropped(str(got.error))
                core.handle(ev.GarbageReceived(now))
            else:
                self._log_message(got.message)
                self._apply(core.handle(ev.MessageReceived(got.message, now)), now)
            if self._sock is not sock:  # closed or replaced: the next turn reads the new one
                return

    def _log_message(self, msg: m.Message) -> None:
        if type(msg) is m.Task or type(msg) is m.Ack:
            return  # the hot path
        if isinstance(msg, m.Welcome):
            log.info("registered with master %s (heartbeat %g s x %d)", msg.master_id,
                     msg.heartbeat_interval, msg.liveness)
        elif isinstance(msg, m.Disconnect):
            if msg.final:
                log.error("the master refused this worker: %s", msg.reason)
            else:
                log.info("master asked us to register again: %s", msg.reason)
        elif isinstance(msg, m.Error):
            log.warning("master says our last message was invalid: %s", msg.reason)
        elif isinstance(msg, m.Standby):
            self._masters.follow(msg.active)
            log.info("the master at %s is a standby%s", self._masters.current,
                     f"; the active one is at {msg.active}" if msg.active else "")
        elif type(msg) not in wc.MASTER_COMMANDS:
            self._log_dropped(f"unexpected {msg.cmd.name} from the master")

    def _log_dropped(self, why: str) -> None:
        self._dropped += 1
        n = self._dropped
        if n <= 10 or n % 1000 == 0:  # a flood of garbage must not flood the log
            log.warning("dropped a message from the master (%d so far): %s", n, why)

    # --- commands -----------------------------------------------------------------------

    def _apply(self, cmds: list[ev.Command], now: float) -> None:
        for c in cmds:
            match c:  # the frequent ones first
                case ev.Send(message):
                    self._send(message, now)
                case ev.Execute(entries):
                    self._pool.submit(entries)
                case ev.CancelTasks(ids):
                    self._pool.cancel(ids)
                case ev.OpenConnection():
                    self._open_socket()
                case ev.CloseConnection(reason, lost):
                    if lost:
                        log.warning("master lost: %s", reason)
                    self._close_socket()
                case ev.KillTasks():
                    self._pool.close(kill=True)
                case ev.Exit(code):
                    self._exit = code

    def _send(self, msg: m.Message, now: float) -> None:
        sock = self._sock
        try:
            if sock is None:
                raise PeerCongested("not connected")  # as good as full: the core retries
            transport.send(sock, Role.WORKER, msg)
        except PeerCongested:
            log.debug("could not send %s now; the core will retry what matters", msg.cmd.name)
            self._apply(self._core.handle(ev.SendFailed(msg, now)), now)

    def _open_socket(self) -> None:
        self._close_socket()
        endpoint = self._watch.endpoint = self._masters.next()
        log.debug("connecting to %s", endpoint)
        self._sock, self._monitor = transport.watched_peer_socket(
            self._ctx, endpoint, keys=self._keys)
        self._poller.register(self._sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        monitor, self._monitor = self._monitor, None
        self._pollout = False
        if sock is not None:
            self._poller.unregister(sock)
            if monitor is not None:
                self._poller.unregister(monitor)
                transport.unwatch(sock, monitor)
            sock.close(linger=0)

    def _read_monitor(self) -> bool:
        """Whether the master's connection closed (a master killed: the core goes to the
        next master at once, as a client does) or, with several masters, could not be
        made (LinkWatch.go_round: no master listens there now). A refused handshake is
        logged, at most every LogThrottle.every seconds; the core's liveness window then
        makes a fresh socket (the refused one is dead), with backoff, so the worker keeps
        trying until the master admits it."""
        if self._monitor is None:
            return False
        dropped, refusal = self._watch.read(self._monitor)
        if self._watch.unreachable:
            log.info("no master reached at %s (the connection failed); trying the next",
                     self._masters.current)
        if refusal is not None:
            left_out = self._refusals.allow(refusal.final)
            if left_out is not None:
                more = f" ({left_out} more refusals not logged)" if left_out else ""
                log.log(logging.ERROR if refusal.final else logging.WARNING,
                        "%s%s", refusal.message, more)
        return dropped and not self._watch.failing  # a failed handshake: as before


def run_worker(config: WorkerConfig) -> int:
    """Run a worker until SIGTERM or SIGINT: the first stops it gracefully, a second at
    once. Returns the exit code (0 graceful). A configuration problem found at start (an
    --app that cannot be imported, a bad endpoint) raises ZqError."""
    worker = Worker(config)
    received = 0

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal received
        received += 1
        worker.stop(force=received > 1)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        return worker.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
