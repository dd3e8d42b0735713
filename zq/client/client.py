"""Client: a connection to one zq master, to submit tasks, follow them and ask the master
questions. Its parts live beside it: the mailbox user threads post to, the I/O thread
(io_loop) that owns the socket, futures, options and map runs.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from dataclasses import replace
from typing import Any, Iterable, Iterator, Sequence

import zmq

from zq import registry, shipping
from zq.canvas import GroupFuture
from zq.client.future import Future, Reply
from zq.client.io_loop import IoLoop
from zq.client.mailbox import Mailbox
from zq.client.options import MAX_ID, Submitter, TaskRef, normalize
from zq.client.upstream import cancel_workflow
from zq.config import ClientConfig
from zq.core import queries
from zq.core.access import Need
from zq.core.messages import State
from zq.errors import ConfigError, ConnectionLost, ZqError
from zq.masters import join_connect
from zq.security import has_role, peer_keys

log = logging.getLogger(__name__)

# Queries only an admin key may ask (zq.core.access): with a keys folder they go out
# with its admin key.
ADMIN_KINDS = frozenset(k.name for k in queries.KINDS.values() if k.need is Need.ADMIN)


def no_master_error(connect: str, timeout: float) -> ConnectionLost:
    """What to say when nothing came back from the master in time: where zq looked, how
    long, and how to start a master there."""
    bind = connect
    if connect.startswith("tcp://") and connect.rfind(":") > len("tcp://"):
        bind = "tcp://*" + connect[connect.rfind(":"):]
    return ConnectionLost(f"no zq master answered at {connect} within {timeout:g} s: is it "
                          f"running? (start one with: zq master --bind {bind})")


class Client:
    """A connection to one zq master. Thread-safe; use as a context manager or close().

    ``Client(connect=None, *, config=None, context=None, keys=None, ship_code=None)``:
    connect defaults to config.connect, which defaults to $ZQ_CONNECT or
    tcp://127.0.0.1:5555. A zmq context passed in is the caller's; otherwise the client
    makes its own and terminates it. ship_code=True (trusted clusters, needs the `code`
    extra): a lambda, closure, bound method or function of __main__ travels by value,
    and only workers started with --allow-code run it (docs/TASKS.md, Code shipping).

    - submit() returns at once; it blocks only while config.max_unacked submissions wait
      for the master's ACCEPTED (back-pressure), and raises SerializationError / ConfigError
      before anything is sent.
    - A lost master (silent for heartbeat_interval x heartbeat_liveness, or its connection
      closed) is reconnected to with backoff; unacknowledged submissions are sent again and
      unfinished futures WATCHed again, so a master restart does not lose a result.
    - Done-callbacks run on the client's I/O thread, or on a thread waiting in
      Future.result() that runs the client's I/O loop meanwhile (the fast path of a lone
      submit().result(), IoLoop.lead): keep them short and do not wait in them for
      other results or queries.
    - At interpreter exit, a client still open waits until the master has ACCEPTED (made
      durable) everything submitted, at most config.exit_timeout seconds ($ZQ_EXIT_TIMEOUT,
      default 10), then closes; tasks still not accepted are named on stderr. So a script
      may submit and exit, as with concurrent.futures. Results are not waited for.
    """

    def __init__(self, connect: str | Sequence[str] | None = None, *,
                 config: ClientConfig | None = None,
                 context: zmq.Context | None = None, keys: str | os.PathLike[str] | None = None,
                 ship_code: bool | None = None) -> None:
        config = config or ClientConfig()
        if connect is not None:
            config = replace(config, connect=join_connect(connect))  # a list: tried in turn
        if ship_code is not None:
            config = replace(config, ship_code=bool(ship_code))
        if config.ship_code:
            shipping.require_cloudpickle("zq.Client(ship_code=True)")
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
        ctx = context if context is not None else zmq.Context()
        self._requests = itertools.count(1)
        self._mailbox = Mailbox(config.max_unacked)
        self._default = Submitter(self._mailbox, self.config, {})
        self._specs = self._default.specs  # submit()'s fast path reads it directly
        try:
            self._io = IoLoop(self.config, self._keys, ctx, context is None, self._mailbox)
        except BaseException:
            self._mailbox.close_wake()
            if context is None:
                ctx.term()
            raise
        self._mailbox.ask = self.query
        self._mailbox.ask_later = self._ask_later
        if self.config.fast_result:
            self._mailbox.lead = self._io.lead
        self._io.start()

    # --- public API ---

    def submit(self, fn: TaskRef, /, *args: Any, **kwargs: Any) -> Future:
        """Send fn(*args, **kwargs) to run on a worker; returns its Future at once.
        Blocks while config.max_unacked submissions are not yet acknowledged."""
        try:
            spec = self._specs[fn]
        except (KeyError, TypeError):
            return self._default.submit(fn, *args, **kwargs)  # a new callable, or shipped
        return self._mailbox.submit(spec, args, kwargs)

    def map(self, fn: TaskRef, *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int | None = None, progress: bool = False) -> Iterator[Any]:
        return self._default.map(fn, *iterables, timeout=timeout, chunksize=chunksize,
                                 progress=progress)

    map.__doc__ = Submitter.map.__doc__

    def cancel(self, future: Future | GroupFuture) -> bool:
        """Stop future's task whatever its state (future.revoke()): a queued task never
        runs, a running one is stopped on its worker. False if its result is already
        here. Future.cancel() instead follows concurrent.futures and leaves a running
        task alone. What runs after the task is cancelled with it; so is, for a
        workflow's final future (a chain's, a chord's; a GroupFuture's members), what it
        takes results from that has not started and that no other unfinished task
        needs (protocol 1.5; zq.client.upstream)."""
        if isinstance(future, GroupFuture):
            return future.cancel()
        if not isinstance(future, Future):
            raise TypeError(f"cancel() takes a zq Future or GroupFuture, not "
                            f"{type(future).__name__}")
        return cancel_workflow([future])

    def options(self, **overrides: Any) -> Submitter:
        """submit()/map() with these options instead of the task's defaults: queue,
        priority, retries, timeout, delay, eta (datetime or unix time), key, after
        (futures or ids), retry_on, retry_backoff, retry_backoff_max, result_ttl."""
        return Submitter(self._mailbox, self.config, normalize(overrides))

    def future(self, task_id: str) -> Future:
        """A Future for a task submitted elsewhere or earlier (WATCH)."""
        if type(task_id) is not str or not 0 < len(task_id.encode()) <= MAX_ID:
            raise ConfigError(f"a task id is a non-empty string of at most {MAX_ID} bytes")
        fut = Future(self._mailbox, task_id)
        self._mailbox.watch([task_id], [fut])
        return fut

    def query(self, kind: str, /, timeout: float | None = None, **args: Any) -> Any:
        """Send QUERY(kind, args) and return the REPLY body. Raises Rejected when the
        master answers ok=false, ConnectionLost when no reply comes within timeout
        (default config.query_timeout)."""
        if timeout is None:
            timeout = self.config.query_timeout
        if self._admin_route and kind in ADMIN_KINDS:
            return self._admin_client().query(kind, timeout=timeout, **args)
        self._mailbox.check_packable(args)
        reply = Reply(no_master_error(self.config.connect, timeout))
        self._mailbox.query(next(self._requests), kind, args, reply, time.monotonic() + timeout)
        # The I/O thread answers at the deadline itself; the margin only guards against a dead loop.
        return reply.wait(timeout + 1.0)

    def _ask_later(self, kind: str, args: dict[str, Any], sink: Any) -> None:
        """QUERY(kind, args) whose REPLY goes to sink on the I/O thread: nobody waits."""
        self._mailbox.query(next(self._requests), kind, args, sink,
                            time.monotonic() + self.config.query_timeout)

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

    def schedule(self, name: str, task: TaskRef, *args: Any, cron: str | None = None,
                 every: float | None = None, timezone: str = "UTC",
                 kwargs: dict | None = None, queue: str | None = None,
                 priority: int | None = None) -> dict:
        """Run task periodically, owned by the master: on a 5-field `cron` expression (in
        `timezone`) or `every` N seconds. Kept in the master's store across restarts; a
        schedule with the same name is replaced. Returns it with its next run time.
        A queue or priority not given here is the one the task declares."""
        spec: dict[str, Any] = {
            "name": name, "task": registry.name_of(task), "cron": cron,
            "every": None if every is None else float(every), "timezone": timezone,
            "args": list(args), "kwargs": dict(kwargs or {})}
        if queue is not None:
            spec["queue"] = queue
        if priority is not None:
            spec["priority"] = priority
        return self.query("schedule_add", **spec)

    def schedules(self) -> list[dict]:
        return self.query("schedule_list")

    def pause_schedule(self, name: str) -> dict:
        """Stop the periodic task's ticks until resume_schedule(); the pause is stored
        and outlasts a restart of the master. Returns the schedule (paused, next_run
        None). Admin role (with keys); ZqError naming an unknown schedule."""
        return self.query("schedule_pause", name=name)

    def resume_schedule(self, name: str) -> dict:
        """Let a paused periodic task tick again: from its first tick after now (the
        ticks it missed while paused never run). Returns the schedule with next_run."""
        return self.query("schedule_resume", name=name)

    def run_schedule(self, name: str) -> Future:
        """Submit one run of the periodic task now, paused or not, as a tick would
        (same task, arguments, queue, priority); its ticks are unchanged. Returns the
        run's Future (its id: NAME@now-TIME)."""
        return self.future(self.query("schedule_run", name=name)["id"])

    def unschedule(self, name: str) -> None:
        """Remove a periodic task; zq.Rejected if there is none with that name."""
        self.query("schedule_remove", name=name)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the master has acknowledged every submission made so far (ACCEPTED:
        it is durable; or REJECTED: its future holds the reason). False if some still
        are not after timeout seconds, or the client is closed."""
        if self._mailbox.on_io_thread():
            raise ZqError("flush() cannot wait on the client's own I/O thread (a done-callback)")
        return self._mailbox.wait_acked(None if timeout is None else time.monotonic() + timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the client. Submissions not yet acknowledged get up to timeout seconds to
        be (so a fire-and-forget submit is not lost); futures still waiting then fail
        with ConnectionLost: their tasks go on, only this client stops listening."""
        self._io.stop(("flush", time.monotonic() + timeout))
        with self._mailbox.guard:
            admin, self._admin = self._admin, None
        if admin is not None:
            admin.close(timeout)
        if not self._mailbox.on_io_thread():
            self._io.join(timeout + 5.0)
            if self._io.is_alive():
                log.warning("zq client I/O thread did not stop in time")

    def close_when_done(self, *, cancel: bool = False, wait: bool = True) -> None:
        """Stop taking submissions and close once every result still due is in (what
        Executor.shutdown does; close() instead waits only for ACCEPTED). cancel=True
        cancels those tasks first; wait=False returns at once."""
        if cancel:
            self._mailbox.cancel_all()
        self._io.stop(("idle", math.inf))
        if wait:
            self._io.join()

    def _admin_client(self) -> Client:
        """The connection with the keys folder's admin key (see __init__)."""
        with self._mailbox.guard:
            error = self._mailbox.closed_error()
            if error is not None:
                raise error
            if self._admin is None:
                self._admin = Client(config=replace(self.config, admin=True))
            return self._admin

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
