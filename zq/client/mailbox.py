"""The mailbox between user threads and the client's I/O thread: one lock over the
submissions and requests waiting to be taken, the back-pressure count, the closed flag
and the wake socket that interrupts the I/O thread's poll."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from typing import Any, Callable

import msgpack

from zq.client.future import Future
from zq.config import MasterConfig
from zq.core import client_events as ce
from zq.core import messages as m
from zq.core import serde
from zq.core.parts import Refs, largest_frame
from zq.errors import AccessRefused, SerializationError, ZqError

# A larger frame makes the master (at its default --max-message) drop the connection, and
# the submission would be sent again after every reconnect: refuse it up front.
MAX_PAYLOAD = MasterConfig.max_message
CLOSED_ROOM = -(1 << 62)  # room_left once closed: no submission fits any more

Spec = tuple[str, dict[str, Any]]  # (task name, wire options) of a submission
Pack = Callable[[tuple[Any, dict[str, Any]]], m.Payload]  # ((args, kwargs)) -> payload
Stop = tuple[str, float]  # ("flush", deadline) or ("idle", inf): how the I/O thread ends


def too_large(n: int) -> SerializationError:
    return SerializationError(f"the task's arguments take {n} bytes, over the {MAX_PAYLOAD} "
                              "a master accepts by default; pass a reference (a path, a key) "
                              "instead of the data")


def serialization_error(e: Exception) -> SerializationError:
    return SerializationError(
        f"the task's arguments cannot be sent (msgpack with zq's extension types): {e}")


def _unblock_wake(sock: socket.socket) -> None:
    try:
        sock.send(b"\0")
    except (BlockingIOError, OSError):  # full means a wake is pending; closed means done
        pass


class Mailbox:
    """What user threads hand the I/O thread, all under one lock. ``guard`` is a second,
    separate lock for futures' lazily made conditions and chunk lists (and the client's
    admin connection), so settling a future never waits on a busy submitter."""

    def __init__(self, max_unacked: int) -> None:
        self.guard = threading.Lock()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # back-pressure: unacked under limit
        self._max_unacked = max_unacked
        self._prefix = os.urandom(8).hex()  # task ids: this + a counter, unique enough
        self._counter = itertools.count(1)  # next() is atomic under the GIL
        self._packer = msgpack.Packer(use_bin_type=True)  # not thread-safe: used under _lock
        # ((args, kwargs)) -> bytes, or a Refs when futures stand among them; thread-safe
        self._pack = serde.pack_submit_call
        self._entries: list[m.SubmitEntry] = []
        self._sinks: list[Any] = []
        self._events: list[ce.Event] = []  # requests other than submissions, in order
        self._idle = False  # the I/O thread sleeps in poll: the next post wakes it
        # A thread waiting in Future.result() asked to run the I/O loop itself (IoLoop.lead):
        # the I/O thread parks after its turn until the lead is given back.
        self._lead_wanted = False
        self._lead_done = threading.Condition(self._lock)
        # Submissions that may still be made before one must wait for ACCEPTED:
        # max_unacked - (submitted - acknowledged); forced negative once closed.
        self._room_left = max_unacked
        self._blocked = 0
        self._closed = False
        self._refused: AccessRefused | None = None  # why the client closed by itself
        self._stop: Stop | None = None
        # Client.query, set by the Client: Future.running() and cancel() ask the master
        # for the task's state with it.
        self.ask: Callable[..., Any] | None = None
        # (kind, args, sink): a QUERY nobody waits for, its REPLY to sink on the I/O
        # thread (map() cancelling what has not started, zq.client.cancels).
        self.ask_later: Callable[[str, dict[str, Any], Any], None] | None = None
        # IoLoop.lead, set by the Client: Future.result() waits by running the I/O loop.
        self.lead: Callable[[Any, float | None], None] | None = None
        self._io_ident: int | None = None  # the I/O thread, once it runs
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # --- user side ----------------------------------------------------------------------

    def submit(self, spec: Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future:
        """The one submission path (Client.submit, options views): a fresh id, the
        payload packed and checked, then queued; blocks while max_unacked wait for
        ACCEPTED. Inlined on purpose (bench: every call and attribute counts here)."""
        tid = self._prefix + str(next(self._counter))
        fut = Future(self, tid)
        lock = self._lock
        lock.acquire()  # cheaper than `with` on CPython 3.11
        try:
            try:
                payload = self._pack((args, kwargs))
            except Exception as e:
                raise serialization_error(e) from e
            opts = spec[1]
            if type(payload) is Refs:  # futures among the arguments: their tasks' ids
                opts = {**opts, "inputs": payload.refs}
                payload = payload.payload
            if len(payload) > MAX_PAYLOAD and largest_frame(payload) > MAX_PAYLOAD:
                raise too_large(largest_frame(payload))
            if self._room_left <= 0:
                self._wait_for_room()
            self._room_left -= 1
            self._entries.append((tid, spec[0], payload, opts))  # type: ignore[arg-type]
            self._sinks.append(fut)
            if self._idle:  # at most once per I/O loop turn
                self._idle = False
                _unblock_wake(self._wake_w)
        finally:
            lock.release()
        return fut

    def submit_packed(self, spec: Spec, payload: m.Payload) -> Future:
        """submit() of a payload packed already (a shipped callable, zq.shipping)."""
        if largest_frame(payload) > MAX_PAYLOAD:
            raise too_large(largest_frame(payload))
        fut = Future(self, self._prefix + str(next(self._counter)))
        self.post_entries([(fut.id, spec[0], payload, spec[1])], [fut])
        return fut

    def new_ids(self, n: int) -> list[str]:
        prefix = self._prefix
        return [prefix + str(i) for i in itertools.islice(self._counter, n)]

    def pack_calls(self, calls: list[tuple[Any, ...]], pack: Pack | None = None
                   ) -> tuple[list[m.Payload], SerializationError | None]:
        """Payloads of positional-argument tuples, up to the first that cannot be sent,
        and the error for that one (None if all could be). pack: how, if not as values
        (a shipped callable's calls)."""
        out: list[m.Payload] = []
        pack = pack or serde.pack_call  # a future among map()'s arguments is refused
        kwargs: dict[str, Any] = {}
        with self._lock:
            for args in calls:
                try:
                    payload = pack((args, kwargs))
                except Exception as e:
                    return out, serialization_error(e)
                if len(payload) > MAX_PAYLOAD and largest_frame(payload) > MAX_PAYLOAD:
                    return out, too_large(largest_frame(payload))
                out.append(payload)
        return out, None

    def check_packable(self, value: Any) -> None:
        """Raise SerializationError now if value (a query's arguments) cannot be sent."""
        with self._lock:
            try:
                self._packer.pack(value)
            except Exception as e:
                raise SerializationError(f"query arguments cannot be sent: {e}") from e

    def post_entries(self, entries: list[m.SubmitEntry], sinks: list[Any]) -> None:
        """Several ready entries at once (a map() batch); blocks as submit() does."""
        with self._lock:
            if self._room_left <= 0:
                self._wait_for_room()
            self._room_left -= len(entries)
            self._entries.extend(entries)
            self._sinks.extend(sinks)
            if self._idle:
                self._idle = False
                _unblock_wake(self._wake_w)

    def watch(self, ids: list[str], sinks: list[Any]) -> None:
        self._post(ce.WatchRequested(ids, sinks))

    def cancel(self, ids: list[str], sink: Any) -> None:
        """sink (already settled as cancelled) stops following ids; the master is asked
        to cancel them."""
        self._post(ce.CancelRequested(ids, sink))

    def cancel_all(self) -> None:
        """Cancel every task still waited for (Executor.shutdown(cancel_futures=True));
        taken even after close, as the shutdown that follows it closes the mailbox."""
        self._post(ce.CancelAllRequested())

    def query(self, request_id: int, kind: str, args: dict[str, Any], reply: Any,
              deadline: float) -> None:
        self._post(ce.QueryAsked(request_id, kind, args, reply, deadline))

    def wait_acked(self, deadline: float | None) -> bool:
        """Wait until every submission so far is acknowledged; False if the deadline
        (monotonic seconds) passes first or the client closes."""
        with self._lock:
            self._blocked += 1  # so the I/O thread notifies _room as ACCEPTEDs come in
            try:
                while self._room_left < self._max_unacked:
                    left = None if deadline is None else deadline - time.monotonic()
                    if self._closed or (left is not None and left <= 0):
                        return False
                    self._room.wait(left)
            finally:
                self._blocked -= 1
        return True

    def shutdown(self, stop: Stop) -> None:
        """No more submissions; the I/O thread ends as stop says (the earliest stop wins)."""
        with self._lock:
            self._closed = True
            self._room_left = CLOSED_ROOM
            if self._stop is None or stop[1] < self._stop[1]:
                self._stop = stop
            self._room.notify_all()
            self._idle = False
        _unblock_wake(self._wake_w)

    def closed_error(self) -> ZqError | None:
        """What a call on a closed client raises (None while open)."""
        if not self._closed:
            return None
        return self._refused or ZqError("the client is closed")

    def on_io_thread(self) -> bool:
        return threading.get_ident() == self._io_ident

    # --- I/O thread side ----------------------------------------------------------------

    def attach_io_thread(self) -> None:
        """Called first thing on the I/O thread: calls made from it (done-callbacks)
        must never block waiting for it."""
        self._io_ident = threading.get_ident()

    def wake_fd(self) -> int:
        return self._wake_r.fileno()

    def drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def go_idle(self, leading: bool = False) -> float | None:
        """None if work is waiting (for the I/O thread itself: or a caller wants the
        lead); else mark the loop asleep (the next post wakes it) and return the stop
        deadline (math.inf if none)."""
        with self._lock:
            if self._entries or self._events or (self._lead_wanted and not leading):
                return None
            self._idle = True
            return self._stop[1] if self._stop is not None else float("inf")

    def take(self) -> tuple[list[m.SubmitEntry], list[Any], list[ce.Event]]:
        """Everything posted since the last take: (entries, their sinks, requests)."""
        with self._lock:
            entries, sinks, events = self._entries, self._sinks, self._events
            if entries:
                self._entries, self._sinks = [], []
            if events:
                self._events = []
            self._idle = False
        return entries, sinks, events

    def stop_requested(self) -> Stop | None:
        """How the I/O thread should end, once nothing posted is left to take."""
        if self._stop is None:
            return None
        with self._lock:
            if self._entries or self._events:
                return None  # take what was posted before the close first
            return self._stop

    def final_stop(self) -> Stop | None:
        return self._stop

    def acked(self, n: int) -> None:
        """n more submissions acknowledged: that much room for blocked submitters."""
        with self._lock:
            self._room_left += n
            if self._blocked:
                self._room.notify_all()

    def finish(self, error: BaseException
               ) -> tuple[list[tuple[m.SubmitEntry, Any]], list[Any]]:
        """The I/O thread ends: close for good, and return what was never taken,
        (entry, sink) pairs and query replies, for the caller to fail with error."""
        with self._lock:
            self._closed = True
            if isinstance(error, AccessRefused):
                self._refused = error
            self._room_left = CLOSED_ROOM
            self._room.notify_all()
            leftover = list(zip(self._entries, self._sinks))
            replies = [ev.sink for ev in self._events if type(ev) is ce.QueryAsked]
            self._entries, self._sinks, self._events = [], [], []
        return leftover, replies

    def close_wake(self) -> None:
        with self._lock:
            self._wake_r.close()
            self._wake_w.close()

    # --- the lead: a waiting caller runs the I/O loop (IoLoop.lead) ------------------------

    def ask_lead(self) -> bool:
        """A caller wants to run the I/O loop while it waits: False if another does or
        the client is closed; else the I/O thread is woken to park after its turn."""
        with self._lock:
            if self._lead_wanted or self._closed:
                return False
            self._lead_wanted = True
            wake, self._idle = self._idle, False
        if wake:
            _unblock_wake(self._wake_w)
        return True

    def waiting(self) -> int:
        """Submissions not taken by the I/O loop yet (unlocked: a hint)."""
        return len(self._entries)

    def lead_wanted(self) -> bool:
        return self._lead_wanted

    def lead_as(self, ident: int | None) -> int | None:
        """The thread that counts as the I/O thread from now (done-callbacks run on it
        and must not block on it); returns the one before."""
        before, self._io_ident = self._io_ident, ident
        return before

    def end_lead(self) -> None:
        with self._lock:
            self._lead_wanted = False
            self._lead_done.notify_all()

    def wait_lead_done(self) -> None:
        """The I/O thread, parked while a caller leads."""
        with self._lock:
            while self._lead_wanted:
                self._lead_done.wait()

    # --- internals ----------------------------------------------------------------------

    def _wait_for_room(self) -> None:
        """Called under _lock: block until unacked submissions drop below the limit."""
        if self._closed:
            raise self._refused or ZqError("the client is closed")
        if self.on_io_thread():
            return  # a done-callback submitting: blocking the I/O thread would deadlock it
        if self._idle:  # what is pending must go out for ACCEPTED to ever come
            self._idle = False
            _unblock_wake(self._wake_w)
        self._blocked += 1
        try:
            while not self._closed and self._room_left <= 0:
                self._room.wait()
        finally:
            self._blocked -= 1
        if self._closed:
            raise self._refused or ZqError("the client is closed")

    def _post(self, event: ce.Event) -> None:
        """Hand a request (watch, cancel, query, cancel all) to the I/O thread."""
        with self._lock:
            if self._closed and type(event) is not ce.CancelAllRequested:
                if type(event) is ce.QueryAsked:
                    event.sink.on_lost(self._refused or ZqError("the client is closed"))
                return  # a cancel or watch after close has nothing left to act on
            self._events.append(event)
            wake = self._idle
            self._idle = False
        if wake:
            _unblock_wake(self._wake_w)

