"""Client, Future and Executor: submit tasks to a zq master and get their results back.

One background I/O thread owns the DEALER socket (zmq sockets are not thread-safe);
user threads hand it submissions through a locked mailbox. Rules live in
zq.core.client_core; this module only moves bytes, threads and futures.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import datetime as _dt
import itertools
import logging
import math
import os
import random
import socket
import sys
import threading
import time
import weakref
from concurrent.futures._base import (
    CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING,
)
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

import msgpack
import zmq

from zq import registry, transport
from zq.config import ClientConfig, MasterConfig
from zq.core import codec, queries, serde
from zq.core import messages as m
from zq.core.access import Need
from zq.core.client_core import ChunkOrder, ClientSession, Delivery, LinkAction
from zq.core.messages import Role, State
from zq.errors import (
    AccessRefused, ConfigError, ConnectionLost, PeerCongested, Rejected, SerializationError,
    ZqError,
)
from zq.security import has_role, peer_keys

log = logging.getLogger(__name__)

_DONE = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})
_CANCELLED = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED})
_SUCCEEDED = int(State.SUCCEEDED)
_STATE_CANCELLED = int(State.CANCELLED)
# Queries only an admin key may ask (zq.core.access): with a keys folder they go out
# with its admin key.
ADMIN_KINDS = frozenset(k.name for k in queries.KINDS.values() if k.need is Need.ADMIN)
MAX_DRAIN = 10_000  # messages read per loop turn before the loop acts on timers again
FINAL_LINGER_MS = 1000  # close(): at most this long to hand queued messages to the master
EXIT_NOTE_AFTER = 1.0  # seconds of waiting at interpreter exit before saying what for
EXIT_NAMES_SHOWN = 10  # unaccepted tasks named one by one at exit; the rest are counted
MAX_ID = codec.MAX_ID
MAX_NAME = codec.MAX_NAME
# A larger frame makes the master (at its default --max-message) drop the connection, and
# the submission would be sent again after every reconnect: refuse it up front.
MAX_PAYLOAD = MasterConfig.max_message


def _too_large(n: int) -> SerializationError:
    return SerializationError(f"the task's arguments take {n} bytes, over the {MAX_PAYLOAD} "
                              "a master accepts by default; pass a reference (a path, a key) "
                              "instead of the data")


def _serialization_error(e: Exception) -> SerializationError:
    return SerializationError(
        f"the task's arguments cannot be sent (msgpack with zq's extension types): {e}")


def no_master_error(connect: str, timeout: float) -> ConnectionLost:
    """What to say when nothing came back from the master in time: where zq looked, how
    long, and how to start a master there."""
    bind = connect
    if connect.startswith("tcp://") and connect.rfind(":") > len("tcp://"):
        bind = "tcp://*" + connect[connect.rfind(":"):]
    return ConnectionLost(f"no zq master answered at {connect} within {timeout:g} s: is it "
                          f"running? (start one with: zq master --bind {bind})")


def _unblock_wake(sock: socket.socket) -> None:
    try:
        sock.send(b"\0")
    except (BlockingIOError, OSError):  # full means a wake is pending; closed means done
        pass


# --- futures -----------------------------------------------------------------------------


class Future(cf.Future):
    """The eventual result of one task, a ``concurrent.futures.Future`` (``wait`` and
    ``as_completed`` work on it). ``id`` is the task id; after a key deduplication it is
    the id of the existing task this future follows.

    ``cancel()`` settles the future as cancelled at once and asks the master to cancel
    the task (a queued task never runs, a running one is stopped on its worker); the
    task may still have finished remotely before the request arrived. It returns False
    only when the result is already here. Created by Client, never directly.
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

    def __init__(self, client: "Client", task_id: str) -> None:
        # cf.Future.__init__ is not called on purpose: its Condition costs ~2 us per task
        # and most futures are never waited on one by one, so _condition, _waiters and
        # _done_callbacks are made on first use (fewer objects for the GC to track, too).
        self.id = task_id
        self._client = client

    # concurrent.futures touches these two only while holding _condition.
    @property
    def _waiters(self) -> list[Any]:
        w = self._w
        if w is None:
            w = self._w = []
        return w

    @property
    def _done_callbacks(self) -> list[Callable[[Any], Any]]:
        cb = self._cb
        if cb is None:
            cb = self._cb = []
        return cb

    @property  # type: ignore[override]
    def _condition(self) -> threading.Condition:
        cond = self._cond
        if cond is None:
            with self._client._guard:
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
        return False  # the client does not know when a worker starts; cancel() always tries

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
        cond = self._condition
        with cond:
            cond.wait_for(self.done, timeout)

    def cancel(self) -> bool:
        if not self._settle(CANCELLED_AND_NOTIFIED):
            return self._state in _CANCELLED
        self._client._post("cancel", [self.id], self)
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
        if state == _SUCCEEDED:
            try:
                value = serde.decode_value(payload)
            except Exception as e:
                self._settle(FINISHED, exc=SerializationError(f"unreadable result: {e}"))
                return
            self._settle(FINISHED, value)
        elif state == _STATE_CANCELLED:
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
        with self._client._guard:
            if self._chunks is None:
                self._chunks = []
            self._chunks.extend(payloads)
            cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()

    def _settle(self, state: str, result: Any = None, exc: BaseException | None = None) -> bool:
        """Move to a final state once (False if already final); wake waiters, run callbacks."""
        guard = self._client._guard
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
            self._invoke_callbacks()
        return True


class _Reply:
    """Waits for one QUERY's REPLY; `silence` is the error if none comes in time."""

    __slots__ = ("_event", "ok", "body", "exc", "silence")

    def __init__(self, silence: ConnectionLost) -> None:
        self._event = threading.Event()
        self.ok, self.body, self.exc = False, None, None
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


class _MapRun:
    """One map() call: a slot per task instead of a Future, results yielded in order,
    at most `window` tasks in flight, submitted `chunk` at a time."""

    def __init__(self, client: "Client", spec: tuple[str, dict], args: Iterator[tuple],
                 chunk: int, window: int) -> None:
        self.client, self.spec, self.args = client, spec, args
        self.chunk, self.window = chunk, window
        self.index: dict[str, Any] = {}  # task id -> position (a list after a key dedup)
        self.done: dict[int, tuple[int, Any]] = {}  # position -> (state or -1, payload or exc)
        self.cond = threading.Condition()
        self.waiting_for = -1
        self.count = 0  # positions handed out
        self.head = 0  # next position to yield
        self.stop: tuple[int, BaseException] | None = None  # args that could not be sent
        self.exhausted = False

    # --- sink side (I/O thread) ---

    def on_result(self, task_id: str, state: int, payload: Any) -> None:
        pos = self.index.pop(task_id, None)
        if type(pos) is int:  # the common case, inlined: this runs once per task
            self.done[pos] = (state, payload)
            if pos == self.waiting_for:
                with self.cond:
                    self.cond.notify()
        elif pos is not None:
            self.index[task_id] = pos
            self._put(task_id, (state, payload))

    def on_failed(self, task_id: str, exc: BaseException) -> None:
        self._put(task_id, (-1, exc))

    def on_cancelled(self, task_id: str) -> None:
        self._put(task_id, (_STATE_CANCELLED, b""))

    def on_partial(self, *a: Any) -> None:
        pass

    def on_progress(self, *a: Any) -> None:
        pass

    def on_followed(self, task_id: str, new_id: str) -> None:
        pos = self.index.pop(task_id, None)
        if pos is None:
            return
        have = self.index.get(new_id)
        if have is None:
            self.index[new_id] = pos
        else:  # several tasks of this map deduplicated to one by key
            self.index[new_id] = (have if type(have) is list else [have]) + (
                pos if type(pos) is list else [pos])

    def _put(self, task_id: str, item: tuple[int, Any]) -> None:
        pos = self.index.pop(task_id, None)
        if pos is None:
            return
        for p in (pos if type(pos) is list else (pos,)):
            self.done[p] = item
            if p == self.waiting_for:
                with self.cond:
                    self.cond.notify()

    # --- consumer side (the user's thread) ---

    def top_up(self) -> None:
        """Submit more tasks while the window has room for a chunk."""
        while not self.exhausted and self.count - self.head <= self.window - self.chunk:
            batch = list(itertools.islice(self.args, self.chunk))
            if len(batch) < self.chunk:
                self.exhausted = True
            if batch:
                self._submit(batch)

    def _submit(self, batch: list[tuple]) -> None:
        client, (name, wire) = self.client, self.spec
        payloads, error = client._pack_calls(batch)
        if error is not None:
            self.stop = (self.count + len(payloads), error)  # raised at that position
            self.exhausted = True
        if not payloads:
            return
        prefix, counter, index, first = client._prefix, client._counter, self.index, self.count
        entries = []
        for pos, payload in enumerate(payloads, first):
            tid = prefix + str(next(counter))
            index[tid] = pos
            entries.append((tid, name, payload, wire))
        self.count = first + len(entries)
        client._post_entries(entries, [self] * len(entries))

    def results(self, deadline: float | None) -> Iterator[Any]:
        try:
            while True:
                if not self.exhausted:
                    self.top_up()
                if self.stop is not None and self.head == self.stop[0]:
                    raise self.stop[1]
                if self.head >= self.count:
                    return
                item = self.done.pop(self.head, None)
                if item is None:
                    item = self._wait(self.head, deadline)
                self.head += 1
                yield _decode_outcome(*item)
        finally:
            if self.index:  # stopped early: the remaining tasks are not wanted any more
                self.client._post("cancel", list(self.index), self)

    def _wait(self, pos: int, deadline: float | None) -> tuple[int, Any]:
        with self.cond:
            self.waiting_for = pos
            try:
                while True:
                    item = self.done.pop(pos, None)
                    if item is not None:
                        return item
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError("map() results did not come in time")
                    self.cond.wait(left)
            finally:
                self.waiting_for = -1


def _decode_outcome(state: int, payload: Any) -> Any:
    if state == _SUCCEEDED:
        return serde.decode_value(payload)
    if state == -1:
        raise payload
    if state == _STATE_CANCELLED:
        raise cf.CancelledError()
    raise serde.exception_from_error(serde.decode_error(payload))


# --- submission options ------------------------------------------------------------------


def _normalize(overrides: dict[str, Any]) -> dict[str, Any]:
    """User-friendly option values turned into what the wire takes (see SUBMIT options)."""
    out = dict(overrides)
    if "eta" in out and out["eta"] is not None:
        eta = out["eta"]
        out["eta"] = float(eta.timestamp() if isinstance(eta, _dt.datetime) else eta)
    if "delay" in out and out["delay"] is not None:
        delay = out["delay"]
        out["delay"] = float(delay.total_seconds() if isinstance(delay, _dt.timedelta) else delay)
    if "after" in out and out["after"] is not None:
        after = out["after"]
        if isinstance(after, (str, cf.Future)):
            after = [after]
        out["after"] = [a.id if isinstance(a, Future) else a for a in after]
    for k in [k for k, v in out.items() if v is None and k in ("eta", "delay", "after", "key")]:
        del out[k]  # None means "not set" for the options that have no default value
    return out


def _check_wire(wire: dict[str, Any]) -> None:
    """Fail here, with a clear message, what the master would reject as a malformed
    message (and with it every other task of the same SUBMIT)."""
    for k, v in wire.items():
        want = m.SUBMIT_OPTIONS.get(k)
        if want is None:
            raise ConfigError(f"option {k!r} is not a SUBMIT option")
        if want is float:
            ok = type(v) in (int, float) and v == v
        elif k == "after":
            ok = type(v) is list and all(type(i) is str and 0 < len(i) <= MAX_ID for i in v)
        elif want is list:
            ok = type(v) is list and all(type(i) is str and 0 < len(i) <= MAX_NAME for i in v)
        else:
            ok = type(v) is want
        if not ok:
            raise ConfigError(f"task option {k}={v!r} must be {want.__name__}"
                              + (" of task ids / names" if want is list else ""))


def _make_spec(fn: Callable | str, overrides: dict[str, Any]) -> tuple[str, dict]:
    """(wire name, wire options) of fn with overrides; raises ConfigError early."""
    name = registry.name_of(fn)
    if len(name) > MAX_NAME:
        raise ConfigError(f"task name {name[:40]!r}... is over {MAX_NAME} characters")
    base = registry.TaskOptions() if isinstance(fn, str) else registry.options_of(fn)
    # Options given here are sent even at their default: they win over the declared ones
    # the master fills in for what a submission leaves unset.
    wire = registry.with_overrides(base, **overrides).to_wire(explicit=overrides)
    _check_wire(wire)
    return name, wire


class _Submitter:
    """submit() and map() with a fixed set of option overrides; specs cached per function."""

    def __init__(self, client: "Client", overrides: dict[str, Any]) -> None:
        self._client = client
        self._overrides = overrides
        self._specs: dict[Any, tuple[str, dict]] = {}
        if overrides:  # unknown names and wrong types fail here, not at submit()
            _check_wire(registry.with_overrides(registry.TaskOptions(), **overrides).to_wire())

    def _spec(self, fn: Callable | str) -> tuple[str, dict]:
        try:
            return self._specs[fn]
        except KeyError:
            spec = self._specs[fn] = _make_spec(fn, self._overrides)
            return spec
        except TypeError:  # an unhashable callable
            return _make_spec(fn, self._overrides)

    def submit(self, fn: Callable | str, /, *args: Any, **kwargs: Any) -> Future:
        """Send one task; returns at once with its Future. fn is a module-level function
        or its name "module:function"."""
        try:
            spec = self._specs[fn]
        except (KeyError, TypeError):
            spec = self._spec(fn)
        return self._client._submit(spec, args, kwargs)

    def map(self, fn: Callable | str, *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None) -> Iterator[Any]:
        """Results of fn(*args) for args in zip(*iterables), in order. Tasks are submitted
        in batches as results come back (the first window at once); no Future per task.
        A failed task raises its error at its position and cancels the rest."""
        return self._client._map(self._spec(fn), iterables, timeout, chunksize)

    def options(self, **overrides: Any) -> "_Submitter":
        """Another submitter with more option overrides (queue, priority, retries,
        timeout, delay, eta, key, after, retry_on, retry_backoff, result_ttl...)."""
        return _Submitter(self._client, {**self._overrides, **_normalize(overrides)})


# --- the client --------------------------------------------------------------------------


class Client:
    """A connection to one zq master. Thread-safe; use as a context manager or close().

    ``Client(connect=None, *, config=None, context=None)``: connect defaults to
    config.connect, which defaults to $ZQ_CONNECT or tcp://127.0.0.1:5555. A zmq context
    passed in is the caller's; otherwise the client makes its own and terminates it.

    - submit() returns at once; it blocks only while config.max_unacked submissions wait
      for the master's ACCEPTED (back-pressure), and raises SerializationError / ConfigError
      before anything is sent.
    - A lost master (silent for heartbeat_interval x heartbeat_liveness, or its connection
      closed) is reconnected to with backoff; unacknowledged submissions are sent again and
      unfinished futures WATCHed again, so a master restart does not lose a result.
    - Done-callbacks run on the client's I/O thread: keep them short and do not wait in
      them for other results or queries.
    - At interpreter exit, a client still open waits until the master has ACCEPTED (made
      durable) everything submitted, at most config.exit_timeout seconds ($ZQ_EXIT_TIMEOUT,
      default 10), then closes; tasks still not accepted are named on stderr. So a script
      may submit and exit, as with concurrent.futures. Results are not waited for.
    """

    def __init__(self, connect: str | None = None, *, config: ClientConfig | None = None,
                 context: zmq.Context | None = None, keys: str | os.PathLike[str] | None = None
                 ) -> None:
        config = config or ClientConfig()
        if connect is not None:
            config = replace(config, connect=connect)
        if keys is not None:  # a keys folder given here wins over the environment's
            config = replace(config, keys=os.fspath(keys), secret_key=None, master_key=None)
        self.config = config.validate()
        self._keys = peer_keys("client", config.keys, config.secret_key, config.master_key,
                               config.admin)
        # With a keys folder holding a client and an admin key, admin queries go through
        # a second connection with the admin key, made when first needed.
        self._admin_route = bool(config.keys and not config.admin and has_role(
            config.keys, "client") and has_role(config.keys, "admin"))
        self._admin: Client | None = None
        self._ctx = context if context is not None else zmq.Context()
        self._own_ctx = context is None
        self._prefix = os.urandom(8).hex()  # task ids: this + a counter, unique enough
        self._counter = itertools.count(1)  # next() is atomic under the GIL
        self._requests = itertools.count(1)
        self._guard = threading.Lock()  # lazily made Conditions of futures, chunk lists
        self._packer = msgpack.Packer(use_bin_type=True)  # not thread-safe: used under _lock
        self._pack_locked = serde.pack_call  # ((args, kwargs)) -> bytes, thread-safe
        # The mailbox: what user threads hand the I/O thread, all under _lock.
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # back-pressure: unacked under limit
        self._entries: list[m.SubmitEntry] = []
        self._sinks: list[Any] = []
        self._ops: list[tuple[str, tuple]] = []
        self._io_idle = False  # the I/O thread sleeps in poll: the next post wakes it
        # Submissions that may still be made before one must wait for ACCEPTED:
        # max_unacked - (submitted - acknowledged); forced negative once closed.
        self._room_left = config.max_unacked
        self._blocked = 0
        self._closed = False
        self._refused: AccessRefused | None = None  # why the client closed by itself
        self._stop: tuple[str, float] | None = None  # ("flush", deadline) or ("idle", inf)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._default = _Submitter(self, {})
        self._specs = self._default._specs  # submit()'s fast path reads it directly
        try:
            self._io = _IoLoop(self)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            if self._own_ctx:
                self._ctx.term()
            raise
        self._thread = threading.Thread(target=self._io.run, name="zq-client-io", daemon=True)
        self._thread.start()
        _AT_EXIT.add(self)

    # --- public API ---

    def submit(self, fn: Callable | str, /, *args: Any, **kwargs: Any) -> Future:
        """Send fn(*args, **kwargs) to run on a worker; returns its Future at once.
        Blocks while config.max_unacked submissions are not yet acknowledged."""
        try:
            spec = self._specs[fn]
        except (KeyError, TypeError):
            spec = self._default._spec(fn)
        # The hot path, inlined on purpose (bench: every call and attribute counts here).
        tid = self._prefix + str(next(self._counter))
        fut = Future(self, tid)
        lock = self._lock
        lock.acquire()  # cheaper than `with` on CPython 3.11
        try:
            try:
                payload = self._pack_locked((args, kwargs))
            except Exception as e:
                raise _serialization_error(e) from e
            if len(payload) > MAX_PAYLOAD:
                raise _too_large(len(payload))
            if self._room_left <= 0:
                self._wait_for_room()
            self._room_left -= 1
            self._entries.append((tid, spec[0], payload, spec[1]))
            self._sinks.append(fut)
            if self._io_idle:  # at most once per I/O loop turn
                self._io_idle = False
                _unblock_wake(self._wake_w)
        finally:
            lock.release()
        return fut

    def map(self, fn: Callable | str, *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None) -> Iterator[Any]:
        return self._default.map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    map.__doc__ = _Submitter.map.__doc__

    def options(self, **overrides: Any) -> _Submitter:
        """submit()/map() with these options instead of the task's defaults: queue,
        priority, retries, timeout, delay, eta (datetime or unix time), key, after
        (futures or ids), retry_on, retry_backoff, retry_backoff_max, result_ttl."""
        return _Submitter(self, _normalize(overrides))

    def future(self, task_id: str) -> Future:
        """A Future for a task submitted elsewhere or earlier (WATCH)."""
        if type(task_id) is not str or not 0 < len(task_id.encode()) <= MAX_ID:
            raise ConfigError(f"a task id is a non-empty string of at most {MAX_ID} bytes")
        fut = Future(self, task_id)
        self._post("watch", [task_id], [fut])
        return fut

    def query(self, kind: str, /, timeout: float | None = None, **args: Any) -> Any:
        """Send QUERY(kind, args) and return the REPLY body. Raises Rejected when the
        master answers ok=false, ConnectionLost when no reply comes within timeout
        (default config.query_timeout)."""
        if timeout is None:
            timeout = self.config.query_timeout
        if self._admin_route and kind in ADMIN_KINDS:
            return self._admin_client().query(kind, timeout=timeout, **args)
        with self._lock:
            try:
                self._packer.pack(args)
            except Exception as e:
                raise SerializationError(f"query arguments cannot be sent: {e}") from e
        reply = _Reply(no_master_error(self.config.connect, timeout))
        self._post("query", next(self._requests), kind, args, reply,
                   time.monotonic() + timeout)
        # The I/O thread answers at the deadline itself; the margin only guards against a dead loop.
        return reply.wait(timeout + 1.0)

    def status(self) -> dict:
        """Workers, queue depths, counts per state and throughput (QUERY "status")."""
        return self.query("status")

    def tasks(self, state: str | None = None, queue: str | None = None, name: str | None = None,
              limit: int = 100) -> list[dict]:
        """Tasks newest first, filtered by state label, queue and task name."""
        args: dict[str, Any] = {"limit": int(limit)}
        if state is not None:
            args["state"] = state.label if isinstance(state, State) else state
        if queue is not None:
            args["queue"] = queue
        if name is not None:
            args["name"] = registry.name_of(name)
        return self.query("tasks", **args)

    def get(self, task_id: str) -> dict:
        """One task's record; Rejected if the master does not know it."""
        return self.query("get", id=task_id)

    def retry(self, task_id: str) -> dict:
        """Put a failed, dead or cancelled task back in its queue."""
        return self.query("retry", id=task_id)

    def purge(self, state: str, older_than: float) -> dict:
        """Forget tasks in state updated more than older_than seconds ago."""
        return self.query("purge", state=state.label if isinstance(state, State) else state,
                          older_than=float(older_than))

    def schedule(self, name: str, task: Callable | str, *args: Any, cron: str | None = None,
                 every: float | None = None, timezone: str = "UTC",
                 kwargs: dict | None = None, queue: str | None = None,
                 priority: int | None = None) -> dict:
        """Run task periodically, owned by the master: on a 5-field `cron` expression (in
        `timezone`) or `every` N seconds. Kept in the master's store across restarts; a
        schedule with the same name is replaced. Returns it with its next run time.
        A queue or priority not given here is the one the task declares."""
        spec = {"name": name, "task": registry.name_of(task), "cron": cron,
                "every": None if every is None else float(every), "timezone": timezone,
                "args": list(args), "kwargs": dict(kwargs or {})}
        if queue is not None:
            spec["queue"] = queue
        if priority is not None:
            spec["priority"] = priority
        return self.query("schedule_add", **spec)

    def schedules(self) -> list[dict]:
        return self.query("schedule_list")

    def unschedule(self, name: str) -> None:
        """Remove a periodic task; zq.Rejected if there is none with that name."""
        self.query("schedule_remove", name=name)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the master has acknowledged every submission made so far (ACCEPTED:
        it is durable; or REJECTED: its future holds the reason). False if some still
        are not after timeout seconds, or the client is closed."""
        if threading.current_thread() is self._thread:
            raise ZqError("flush() cannot wait on the client's own I/O thread (a done-callback)")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._blocked += 1  # so the I/O thread notifies _room as ACCEPTEDs come in
            try:
                while self._room_left < self.config.max_unacked:
                    left = None if deadline is None else deadline - time.monotonic()
                    if self._closed or (left is not None and left <= 0):
                        return False
                    self._room.wait(left)
            finally:
                self._blocked -= 1
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the client. Submissions not yet acknowledged get up to timeout seconds to
        be (so a fire-and-forget submit is not lost); futures still waiting then fail
        with ConnectionLost: their tasks go on, only this client stops listening."""
        self._shutdown(("flush", time.monotonic() + timeout))
        with self._guard:
            admin, self._admin = self._admin, None
        if admin is not None:
            admin.close(timeout)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout + 5.0)
            if self._thread.is_alive():
                log.warning("zq client I/O thread did not stop in time")

    def _admin_client(self) -> "Client":
        """The connection with the keys folder's admin key (see __init__)."""
        with self._guard:
            if self._closed:
                raise self._refused or ZqError("the client is closed")
            if self._admin is None:
                self._admin = Client(config=replace(self.config, admin=True))
            return self._admin

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- internals shared with _Submitter, _MapRun, Future, Executor ---

    def _pack_calls(self, calls: list[tuple]) -> tuple[list[bytes], SerializationError | None]:
        """Payloads of positional-argument tuples, up to the first that cannot be sent,
        and the error for that one (None if all could be)."""
        out: list[bytes] = []
        pack = self._pack_locked
        kwargs: dict = {}
        with self._lock:
            for args in calls:
                try:
                    payload = pack((args, kwargs))
                except Exception as e:
                    return out, _serialization_error(e)
                if len(payload) > MAX_PAYLOAD:
                    return out, _too_large(len(payload))
                out.append(payload)
        return out, None

    def _submit(self, spec: tuple[str, dict], args: tuple, kwargs: dict) -> Future:
        """submit() with a known spec (options views); Client.submit inlines the same."""
        tid = self._prefix + str(next(self._counter))
        fut = Future(self, tid)
        with self._lock:
            try:
                payload = self._pack_locked((args, kwargs))
            except Exception as e:
                raise _serialization_error(e) from e
            if len(payload) > MAX_PAYLOAD:
                raise _too_large(len(payload))
            if self._room_left <= 0:
                self._wait_for_room()
            self._room_left -= 1
            self._entries.append((tid, spec[0], payload, spec[1]))
            self._sinks.append(fut)
            if self._io_idle:
                self._io_idle = False
                _unblock_wake(self._wake_w)
        return fut

    def _post_entries(self, entries: list[m.SubmitEntry], sinks: list[Any]) -> None:
        with self._lock:
            if self._room_left <= 0:
                self._wait_for_room()
            self._room_left -= len(entries)
            self._entries.extend(entries)
            self._sinks.extend(sinks)
            if self._io_idle:
                self._io_idle = False
                _unblock_wake(self._wake_w)

    def _wait_for_room(self) -> None:
        """Called under _lock: block until unacked submissions drop below the limit."""
        if self._closed:
            raise self._refused or ZqError("the client is closed")
        if threading.current_thread() is self._thread:
            return  # a done-callback submitting: blocking the I/O thread would deadlock it
        if self._io_idle:  # what is pending must go out for ACCEPTED to ever come
            self._io_idle = False
            _unblock_wake(self._wake_w)
        self._blocked += 1
        try:
            while not self._closed and self._room_left <= 0:
                self._room.wait()
        finally:
            self._blocked -= 1
        if self._closed:
            raise self._refused or ZqError("the client is closed")

    def _post(self, op: str, *args: Any) -> None:
        """Hand a request (watch, cancel, query, cancel_all) to the I/O thread."""
        with self._lock:
            if self._closed and op != "cancel_all":
                if op == "query":
                    args[3].on_lost(self._refused or ZqError("the client is closed"))
                return  # a cancel or watch after close has nothing left to act on
            self._ops.append((op, args))
            wake = self._io_idle
            self._io_idle = False
        if wake:
            _unblock_wake(self._wake_w)

    def _shutdown(self, stop: tuple[str, float]) -> None:
        with self._lock:
            self._closed = True
            self._room_left = -(1 << 62)
            if self._stop is None or stop[1] < self._stop[1]:
                self._stop = stop
            self._room.notify_all()
            self._io_idle = False
        _unblock_wake(self._wake_w)

    def _map(self, spec: tuple[str, dict], iterables: tuple[Iterable[Any], ...],
             timeout: float | None, chunksize: int | None) -> Iterator[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        chunk = max(1, min(chunksize or self.config.batch_size, self.config.batch_size))
        window = max(chunk, self.config.max_unacked)
        run = _MapRun(self, spec, zip(*iterables), chunk, window)
        run.top_up()  # the first window goes out now, as with Executor.map
        return run.results(deadline)


# --- the I/O thread ----------------------------------------------------------------------


class _IoLoop:
    """The I/O thread: owns the socket, drains the mailbox into the session, sends what
    the session says, reads every message waiting and settles futures."""

    def __init__(self, client: Client) -> None:
        self.client = client
        cfg = client.config
        self.session = ClientSession(batch_size=cfg.batch_size,
                                     heartbeat_interval=cfg.heartbeat_interval,
                                     liveness=cfg.heartbeat_liveness, now=time.monotonic())
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None  # the link closing, or refused (LinkWatch)
        self.watch = transport.LinkWatch("client", cfg.connect, client._keys)
        self.busy_notes = transport.LogThrottle()
        self.refused: AccessRefused | None = None  # the master turned us away for good
        self.poller = zmq.Poller()
        self.poller.register(client._wake_r.fileno(), zmq.POLLIN)
        self.backlog: list[m.Message] = []  # messages zmq would not take yet (HWM)
        self.acked_seen = 0
        self.pollout = False
        self.dropped = 0  # malformed messages from the master
        self.unaccepted: list[tuple[str, str]] = []  # (id, name) left unacknowledged at the end
        # The first socket is made here, in Client(), so a bad endpoint fails there.
        self._open_socket()
        self.session.opened(time.monotonic())

    def run(self) -> None:
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
                        self.client.config.connect, session.window)
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
        if self.client._wake_r.fileno() in events:
            self._drain_wake()
        if self.sock is not None and events.get(self.sock, 0) & zmq.POLLIN:
            self._receive()
        dropped = self.monitor is not None and self.monitor in events and self._link_dropped()
        if self.refused is not None:
            return True
        if dropped:  # in a failing handshake LinkWatch has the story: say it once, there
            log.log(logging.DEBUG if self.watch.failing else logging.WARNING,
                    "zq master at %s closed the connection; reconnecting",
                    self.client.config.connect)
            if session.dropped(time.monotonic(), random.random()) is LinkAction.CLOSE:
                self._close_socket()
        self._take_mailbox()
        self._send()
        self._report_acked()
        return False

    def _timeout(self, now: float) -> int:
        """Milliseconds poll may sleep: until the session's next deadline, or 0 when
        the mailbox already has work."""
        c = self.client
        with c._lock:
            if c._entries or c._ops:
                return 0
            c._io_idle = True
            due = self.session.next_deadline()
            if c._stop is not None:
                due = min(due, c._stop[1])
        return max(0, math.ceil((due - now) * 1000)) if due < math.inf else -1

    def _take_mailbox(self) -> None:
        c = self.client
        with c._lock:
            entries, sinks, ops = c._entries, c._sinks, c._ops
            if entries:
                c._entries, c._sinks = [], []
            if ops:
                c._ops = []
            c._io_idle = False
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
            c = self.client
            with c._lock:
                c._room_left += acked - self.acked_seen
                if c._blocked:
                    c._room.notify_all()
            self.acked_seen = acked

    def _should_stop(self, now: float) -> bool:
        stop = self.client._stop
        if stop is None:
            return False
        with self.client._lock:
            if self.client._entries or self.client._ops:
                return False  # take what was posted before the close first
        if stop[0] == "flush":
            return not self.session.unacked or now >= stop[1]
        return self.session.idle

    # --- socket ---

    def _open_socket(self) -> None:
        self.sock, self.monitor = transport.watched_peer_socket(
            self.client._ctx, self.client.config.connect, keys=self.client._keys)
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
        stop = self.client._stop
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

    def _drain_wake(self) -> None:
        try:
            while self.client._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

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
        c = self.client
        with c._lock:
            c._closed = True
            if isinstance(error, AccessRefused):
                c._refused = error
            c._room_left = -(1 << 62)
            c._room.notify_all()
            leftover = list(zip(c._entries, c._sinks))
            queries = [args[3] for op, args in c._ops if op == "query"]
            c._entries, c._sinks, c._ops = [], [], []
        # Kept for the report at interpreter exit: what the master never acknowledged.
        self.unaccepted = [(e[0], e[1]) for e in self.session.unacked.values()]
        self.unaccepted += [(tid, name) for (tid, name, *_), _ in leftover]
        _AT_EXIT.discard(c)
        self._apply([("on_failed", sink, (tid, error)) for (tid, *_), sink in leftover])
        self._apply([("on_lost", reply, (error,)) for reply in queries])
        try:
            self._apply(self.session.abandon(error))
        finally:
            self._close_socket(linger=self._final_linger())
            with c._lock:
                c._wake_r.close()
                c._wake_w.close()
            if c._own_ctx:
                c._ctx.term()


# --- Executor ----------------------------------------------------------------------------


class Executor(cf.Executor):
    """A concurrent.futures.Executor whose calls run on zq workers.

    ``Executor(connect=None, **kw)``: kw go to Client (config=, context=). map() ignores
    chunksize (it batches by config.batch_size). shutdown(wait=True) waits for every
    result still due, then closes the client; wait=False returns at once and lets the
    client close by itself once they are in (at interpreter exit it still waits, as an
    open Client does, until the master has accepted every task submitted);
    cancel_futures=True cancels those first.
    """

    def __init__(self, connect: str | None = None, **kw: Any) -> None:
        self.client = Client(connect, **kw)
        self._closed = False

    def submit(self, fn: Callable | str, /, *args: Any, **kwargs: Any) -> Future:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self.client.submit(fn, *args, **kwargs)

    def map(self, fn: Callable | str, *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self.client.map(fn, *iterables, timeout=timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        client = self.client
        if cancel_futures:
            client._post("cancel_all")
        client._shutdown(("idle", math.inf))
        if wait and threading.current_thread() is not client._thread:
            client._thread.join()


# --- interpreter exit --------------------------------------------------------------------


class _ExitFlush:
    """At interpreter exit, every client still open waits, at most config.exit_timeout,
    until the master has ACCEPTED what it submitted, then closes; tasks still not
    accepted are named on stderr (what a concurrent.futures user expects of a submit).

    Why atexit with a daemon I/O thread: at exit CPython first joins the non-daemon
    threads, then runs atexit handlers, and only then freezes daemon threads. So this
    handler runs once the program's own threads are all done (no submit can come after
    it) while the I/O thread still runs to finish the flush. A non-daemon I/O thread
    stopped through threading._register_atexit (private API) would be told to stop
    *before* those threads are joined, failing a submit they make later; and the
    process could not end while a forgotten client waits for results.

    One registry for the process (as concurrent.futures keeps for its threads): the
    handler must see every open client, start all their flushes at once and so bound
    the whole exit by the longest exit_timeout, not by their sum.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()
        self._registered = False

    def add(self, client: Client) -> None:
        with self._lock:
            self._clients.add(client)
            if not self._registered:
                self._registered = True
                atexit.register(self.run)
                # A forked child has none of these clients' I/O threads: it starts empty.
                os.register_at_fork(after_in_child=self._forget_all)

    def discard(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)

    def _forget_all(self) -> None:
        self._lock = threading.Lock()
        self._clients = weakref.WeakSet()

    def run(self) -> None:
        with self._lock:
            clients = [c for c in self._clients if c._thread.is_alive()]
        started = time.monotonic()
        for c in clients:  # all at once: their waits overlap
            c._shutdown(("flush", started + c.config.exit_timeout))
        for c in clients:
            _finish_at_exit(c, started)


def _finish_at_exit(client: Client, started: float) -> None:
    """Wait for one client's exit flush; say on stderr what it waits for if that takes
    a while, and name the tasks the master did not accept."""
    cfg, thread = client.config, client._thread
    # The I/O thread stops at the flush deadline, then lingers at most FINAL_LINGER_MS.
    deadline = started + cfg.exit_timeout + FINAL_LINGER_MS / 1000 + 1.0
    thread.join(max(0.0, min(started + EXIT_NOTE_AFTER, deadline) - time.monotonic()))
    if thread.is_alive():
        _say(f"zq: waiting up to {cfg.exit_timeout:g} s (ZQ_EXIT_TIMEOUT) for the master at "
             f"{cfg.connect} to accept the tasks submitted before exit")
        thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        _say(f"zq: the client of {cfg.connect} did not stop in time; tasks it submitted "
             "may not have reached the master")
        return
    lost = client._io.unaccepted
    if lost:
        named = ", ".join(f"{tid} ({name})" for tid, name in lost[:EXIT_NAMES_SHOWN])
        more = f" and {len(lost) - EXIT_NAMES_SHOWN} more" if len(lost) > EXIT_NAMES_SHOWN else ""
        _say(f"zq: the master at {cfg.connect} did not accept {len(lost)} task(s) within "
             f"{cfg.exit_timeout:g} s of exit (ZQ_EXIT_TIMEOUT); they may never run: "
             f"{named}{more}")


def _say(line: str) -> None:
    if sys.stderr is not None:  # None under pythonw
        print(line, file=sys.stderr, flush=True)


_AT_EXIT = _ExitFlush()
