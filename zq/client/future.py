"""Future (one task's eventual result) and Reply (one QUERY's answer): the sinks the
I/O thread settles. Both are made by the Client, never directly by users."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import TYPE_CHECKING, Any, Callable, Iterator

from zq.client import cancels
from zq.core import serde, values
from zq.core.client_events import ChunkOrder
from zq.core.messages import State
from zq.errors import ConnectionLost, Rejected, SerializationError, ZqError

if TYPE_CHECKING:
    from zq.client.mailbox import Mailbox

_DONE = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})
_CANCELLED = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED})
SUCCEEDED = int(State.SUCCEEDED)
STATE_CANCELLED = int(State.CANCELLED)
# The master's state labels in which Future.cancel() leaves a task alone (but a
# "running" one that has not started: it waits in a worker's queue, see _remote_state).
_NOT_CANCELLABLE = frozenset({"running", "succeeded", "failed", "dead"})


class Future(cf.Future):  # type: ignore[type-arg]
    """The eventual result of one task, a ``concurrent.futures.Future`` (``wait`` and
    ``as_completed`` work on it). ``id`` is the task id; after a key deduplication it is
    the id of the existing task this future follows.

    ``running()`` and ``cancel()`` follow concurrent.futures, with the master's word for
    the task's state (one QUERY round trip each): the task is running once a worker has
    started it, and ``cancel()`` returns False then, leaving it to finish. A task still
    waiting (pending, queued, retrying, held in a worker's prefetch queue, or not yet
    accepted) is cancelled and never delivers a result. The master decides, in one step
    (QUERY `cancel_unstarted`, protocol 1.5): True means the master cancelled it; a
    worker that began it in the instant the master's CANCEL was on its way stops it
    (docs/PROTOCOL.md §5, Cancel). The master learns of a start from the worker
    (protocol 1.4: at once for a task that went to an idle slot, else some 10 to 20 ms
    after it starts); with a worker or master older than 1.4, a task handed to a worker
    counts as running, prefetched or not. With a master older than 1.5, cancel() asks
    the task's state (QUERY get) and then cancels it unless it runs, as before.
    ``revoke()`` (or ``client.cancel(future)``) cancels whatever the state, stopping a
    running task on its worker. Created by Client, never directly.
    """

    # Class-level defaults: most are never set for most futures, which keeps __init__ cheap.
    _cond: threading.Condition | None = None
    _state = PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _chunks: list[Any] | None = None
    _order: ChunkOrder | None = None
    _progress: tuple[float, float] | None = None
    _w: list[Any] | None = None
    _cb: list[Callable[[Any], Any]] | None = None

    def __init__(self, mailbox: Mailbox, task_id: str) -> None:
        # cf.Future.__init__ is not called on purpose: its Condition costs ~2 us per task
        # and most futures are never waited on one by one, so _condition, _waiters and
        # _done_callbacks are made on first use (fewer objects for the GC to track, too).
        self.id = task_id
        self._mailbox = mailbox

    # concurrent.futures touches these two only while holding _condition.
    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        w = self._w
        if w is None:
            w = self._w = []
        return w

    @property
    def _done_callbacks(self) -> list[Callable[[Any], Any]]:  # type: ignore[override]
        cb = self._cb
        if cb is None:
            cb = self._cb = []
        return cb

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        cond = self._cond
        if cond is None:
            with self._mailbox.guard:
                cond = self._cond
                if cond is None:
                    cond = self._cond = threading.Condition()
        return cond

    @property
    def progress(self) -> tuple[float, float] | None:
        """The latest (done, total) the task reported, or None."""
        return self._progress

    def done(self) -> bool:
        return self._state in _DONE

    def cancelled(self) -> bool:
        return self._state in _CANCELLED

    def running(self) -> bool:
        """True while a worker runs the task (asks the master: do not poll this in a
        tight loop). False once the future is done, and inside a done-callback (the
        client's I/O thread cannot wait for the answer)."""
        return self._state == PENDING and self._remote_state() == "running"

    def _remote_state(self) -> str | None:
        """The task's state label as the master has it, but "leased" for a task handed
        to a worker that has not started it (it waits in that worker's queue: `started`
        is null); None if the master cannot say (not yet accepted, the master
        unreachable, or asked from the I/O thread)."""
        ask = self._mailbox.ask
        if ask is None or self._mailbox.on_io_thread():
            return None
        try:
            record = ask("get", id=self.id)
        except ZqError:  # Rejected: not accepted yet (unknown); ConnectionLost; closed
            return None
        state = record.get("state") if type(record) is dict else None
        if state == "running" and "started" in record and record["started"] is None:
            return "leased"  # (a master without task timing has no "started": running)
        return state if type(state) is str else None

    def result(self, timeout: float | None = None) -> Any:
        if self._state == FINISHED:  # the common case, without touching the condition
            if self._exception is not None:
                raise self._exception
            return self._result
        self._wait_final(timeout)
        return super().result(0)  # final by now, or TimeoutError

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == FINISHED:
            return self._exception
        self._wait_final(timeout)
        return super().exception(0)

    def _wait_final(self, timeout: float | None) -> None:
        """Wait until the future is final or timeout seconds pass. Each chunk of a
        streaming task also wakes the condition (stream() waits on it), so a wake-up is
        not the end: the standard single wait would give up at the first chunk."""
        lead = self._mailbox.lead
        if lead is not None and self._state == PENDING:
            began = time.monotonic()
            lead(self, timeout)  # runs the client's I/O loop here while it can
            if self._state != PENDING:
                return
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - began))
        cond = self._condition
        with cond:
            cond.wait_for(self.done, timeout)

    def cancel(self) -> bool:
        """Cancel the task unless it is running or done (concurrent.futures): True if
        the future is cancelled. One QUERY `cancel_unstarted` (protocol 1.5): the master
        cancels the task only if it has not started, and says which it did."""
        if self._state != PENDING:
            return self._state in _CANCELLED
        return self._cancel_as_answered(cancels.ask(self._mailbox, [self.id]))

    def _cancel_as_answered(self, answer: cancels.Answer) -> bool:
        """Settle as the master's answer to cancel_unstarted says (see zq.client.cancels);
        True if the future is cancelled."""
        if self.id in answer.cancelled:  # its RESULT (cancelled) came before the REPLY
            self._settle(CANCELLED_AND_NOTIFIED)
        elif self.id in answer.unknown:  # not accepted yet, so not started
            return self.revoke()
        elif self.id in answer.unanswered:  # a master before 1.5, or no answer
            return self._cancel_by_state()
        return self._state in _CANCELLED  # running, or ended: left alone

    def _cancel_by_state(self) -> bool:
        """cancel() before protocol 1.5: ask the task's state, then cancel it unless it
        runs (a start in between is stopped by the CANCEL)."""
        if self._remote_state() in _NOT_CANCELLABLE:
            return False  # running, or finished with the result on its way
        return self.revoke()

    def revoke(self) -> bool:
        """Cancel the task whatever its state: the future settles as cancelled at once,
        a queued task never runs and a running one is stopped on its worker (it may
        still have finished remotely before the request arrived). False only when the
        result is already here."""
        if not self._settle(CANCELLED_AND_NOTIFIED):
            return self._state in _CANCELLED
        self._mailbox.cancel([self.id], self)
        return True

    def stream(self, timeout: float | None = None) -> Iterator[Any]:
        """The values a generator task yields, in order, as they arrive (including those
        that came before this call); ends when the task ends, then raises its error if it
        failed. timeout bounds the wait for each next chunk (TimeoutError)."""
        cond = self._condition
        given = 0
        while True:
            with cond:
                deadline = None if timeout is None else time.monotonic() + timeout
                while len(self._chunks or ()) <= given and self._state == PENDING:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"no chunk of task {self.id} within {timeout} s")
                    cond.wait(left)
                new = (self._chunks or [])[given:]
                final = self._state != PENDING
            for payload in new:
                yield serde.decode_value(payload)
            given += len(new)
            if final:  # chunks are all in before the final state is set
                break
        if self._state in _CANCELLED:
            raise cf.CancelledError()
        if self._exception is not None:
            raise self._exception

    def __repr__(self) -> str:
        label = {PENDING: "pending", FINISHED: "finished"}.get(self._state, "cancelled")
        return f"<zq.Future id={self.id} {label}>"

    # --- sink side: called by the I/O thread -------------------------------------------

    def on_result(self, task_id: str, state: int, payload: Any) -> None:
        if self._order is not None:
            self._add_chunks(self._order.drain())
        if state == SUCCEEDED:
            try:
                value = serde.decode_value(payload)
            except Exception as e:
                self._settle(FINISHED, exc=SerializationError(f"unreadable result: {e}"))
                return
            self._settle(FINISHED, value)
        elif state == STATE_CANCELLED:
            self._settle(CANCELLED_AND_NOTIFIED)
        else:
            self._settle(FINISHED, exc=serde.exception_from_error(serde.decode_error(payload)))

    def on_failed(self, task_id: str, exc: BaseException) -> None:
        self._settle(FINISHED, exc=exc)

    def on_cancelled(self, task_id: str) -> None:
        self._settle(CANCELLED_AND_NOTIFIED)

    def on_partial(self, task_id: str, attempt: int, seq: int, payload: Any) -> None:
        if self._order is None:
            self._order = ChunkOrder()
        ready = self._order.push(attempt, seq, payload)
        if ready:
            self._add_chunks(ready)

    def on_progress(self, task_id: str, done: float, total: float) -> None:
        self._progress = (done, total)

    def on_followed(self, task_id: str, new_id: str) -> None:
        self.id = new_id

    def _add_chunks(self, payloads: list[Any]) -> None:
        if not payloads:
            return
        with self._mailbox.guard:
            if self._chunks is None:
                self._chunks = []
            self._chunks.extend(payloads)
            cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()

    def _settle(self, state: str, result: Any = None, exc: BaseException | None = None) -> bool:
        """Move to a final state once (False if already final); wake waiters, run callbacks."""
        guard = self._mailbox.guard
        guard.acquire()  # not `with`: this runs once per task on the I/O thread
        try:
            if self._state != PENDING:
                return False
            cond = self._cond
            if cond is None:
                # Nobody asked for the condition, so nobody waits and no callback is set.
                self._result, self._exception, self._state = result, exc, state
                return True
        finally:
            guard.release()
        with cond:
            if self._state != PENDING:
                return False
            self._result, self._exception, self._state = result, exc, state
            for w in self._w or ():
                if state != FINISHED:
                    w.add_cancelled(self)
                elif exc is not None:
                    w.add_exception(self)
                else:
                    w.add_result(self)
            cond.notify_all()
        if self._cb:
            self._invoke_callbacks()  # type: ignore[attr-defined]
        return True


def cancel_all(futures: list[Future]) -> None:
    """Future.cancel() of many futures of one client, in one query per 10,000."""
    if futures:
        answer = cancels.ask(futures[0]._mailbox, [f.id for f in futures])
        for f in futures:
            if f._state == PENDING:
                f._cancel_as_answered(answer)


def decode_outcome(state: int, payload: Any) -> Any:
    """A task's value from a final (state, payload), or its error raised; state -1 means
    payload is the client-side error itself (map() runs keep outcomes this way)."""
    if state == SUCCEEDED:
        return serde.decode_value(payload)
    if state == -1:
        raise payload
    if state == STATE_CANCELLED:
        raise cf.CancelledError()
    raise serde.exception_from_error(serde.decode_error(payload))


class Reply:
    """Waits for one QUERY's REPLY; `silence` is the error if none comes in time."""

    __slots__ = ("_event", "ok", "body", "exc", "silence")

    def __init__(self, silence: ConnectionLost) -> None:
        self._event = threading.Event()
        self.ok, self.body = False, None
        self.exc: BaseException | None = None
        self.silence = silence

    def on_reply(self, ok: bool, body: Any) -> None:
        self.ok, self.body = ok, body
        self._event.set()

    def on_lost(self, exc: BaseException) -> None:
        self.exc = exc
        self._event.set()

    def on_expired(self) -> None:
        self.exc = self.silence
        self._event.set()

    def wait(self, timeout: float) -> Any:
        if not self._event.wait(timeout):
            raise self.silence
        if self.exc is not None:
            raise self.exc
        if not self.ok:
            raise Rejected(str(self.body))
        return self.body


# A Future among a submit's arguments travels as a reference to its task's result: the
# master runs the task once that one succeeded and the worker passes the result in its
# place (issue 17, zq.core.workflows).
values.refer_with(Future, lambda fut: fut.id)
