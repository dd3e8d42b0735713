"""The process pool's parent side: children started with a fork server, tasks sent to
them in batches, time limits, cancels, work stealing and crashes settled here (the
child's side is zq.pools.child). About 600 lines, one class: dispatch, take-back, time
limits and crash handling all keep the same in-flight bookkeeping per child, so split
apart each would reach into the others' state."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import selectors
import time
import weakref
from collections import deque
from itertools import repeat
from typing import Any, Iterable

from zq import logs
from zq.core.messages import ProgressEntry, TaskEntry
from zq.errors import ConfigError
from zq.pools.child import _child_main
from zq.pools.pipe import (
    DROPPED,
    FAILED,
    FINISHED,
    OUT,
    READ_SIZE,
    READY,
    STARTED,
    STARTED_AT,
    TAKE_BACK,
    TASKS,
    Reader,
    packb,
    write_all,
)
from zq.pools.runner import CANCELLED, EMPTY, ERROR, START_POLL, Report, timeout_error

log = logging.getLogger(__name__)

TARGET_QUEUE_SECONDS = 0.005  # work a child holds beyond the task it runs
MAX_WINDOW = 1024  # tasks in flight per child at most
STEAL_AFTER = 0.02  # a task running this long gives its queued followers to idle children
CRASH_STATUS_WAIT = 0.5  # seconds to wait for a killed or crashed child to be gone
MAX_START_FAILURES = 3  # children dying before they are ready, in a row: the pool is broken
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux fcntl; bigger pipes mean fewer blocking writes

_CANCEL, _WITHDRAW, _STEAL = 1, 2, 3  # why a queued task is being taken back


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default works too


def _kill_all(procs: list[Any]) -> None:
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass


class _Child:
    __slots__ = ("slot", "proc", "task_conn", "out_conn", "task_fd", "out_fd", "sentinel",
                 "shm", "reader", "ready", "dead", "inflight", "timed", "min_timeout",
                 "taking_back", "busy", "count", "seen")

    def __init__(self, slot: int, proc: Any, task_conn: Any, out_conn: Any, shm: Any) -> None:
        self.slot, self.proc, self.shm = slot, proc, shm
        self.task_conn, self.out_conn = task_conn, out_conn
        self.task_fd, self.out_fd = task_conn.fileno(), out_conn.fileno()
        self.sentinel: int = proc.sentinel
        self.reader = Reader(self.out_fd)
        self.busy = 0.0  # the child's running totals at its last report
        self.count = 0
        self.ready = False
        self.dead = False
        self.inflight: dict[str, tuple[int, TaskEntry]] = {}  # task id -> (seq, entry), seq order
        self.timed = 0  # in-flight tasks with a time limit
        self.min_timeout = math.inf
        self.taking_back = 0  # TAKE_BACK requests not answered yet
        self.seen = -1.0  # seq of the last task reported started (Report.started)

    def state(self) -> tuple[float, float, float]:
        """(started seq, started at, finished seq), read consistently."""
        shm = self.shm
        while True:
            s = shm[STARTED]
            t = shm[STARTED_AT]
            f = shm[FINISHED]
            if shm[STARTED] == s:
                return s, t, f

    def running(self) -> tuple[str, TaskEntry, float] | None:
        """(task id, entry, started at) of the task the child runs now, if any."""
        s, t, f = self.state()
        if s <= f:
            return None
        for task_id, (seq, entry) in self.inflight.items():
            if seq == s:
                return task_id, entry, t
            if seq > s:
                break
        return None


def _how_it_died(c: _Child) -> str:
    code = c.proc.exitcode
    return (f"was killed by signal {-code}" if code is not None and code < 0 else
            f"exited with code {code}" if code is not None else "died")


def _runs_seen(c: _Child) -> bool:
    """The child runs the task last reported started: its next start comes after that
    task's outcome, which wakes the loop."""
    s, _, f = c.state()
    return s > f and s == c.seen


def _runs_long(c: _Child, now: float) -> bool:
    s, t, f = c.state()
    return s > f and now - t >= STEAL_AFTER


class ProcessPool:
    """N child processes; a crash, a time limit or a cancel kills only one child, which
    is replaced. Tasks travel to children in batches and outcomes come back in batches.

    A child that dies by itself (the OOM killer, a segfault, ``os._exit``) loses the task
    it was running: that task is reported CANCELLED, which the master counts as a lost
    attempt, as if the worker had died (docs/TASKS.md); the tasks queued behind it go
    to another child. A child killed for a time limit reports ``TaskTimeout``.

    Children start with ``forkserver`` (``spawn`` where there is none): they never
    inherit the worker's ZeroMQ context, its I/O threads or its sockets (a forked copy
    of a libzmq context is unusable and can break the parent's sockets on exit), nor
    each other's pipes (so a dead child's pipe reads EOF), while a replacement still
    starts in milliseconds because the fork server has zq and msgpack imported already
    (about 30 ms from a crash to the next task on a fresh child, against about 200 ms
    with ``spawn``). Nothing outlives the worker: the fork server exits when the worker
    process does, however it ends, and on Linux its exit kills the children (see
    ``lifetime.die_with_parent``); the fork server is shared by every pool of the process.

    How many tasks a child holds adapts to their duration: about TARGET_QUEUE_SECONDS of
    work beyond the running task, so no-op tasks go a thousand at a time and long tasks
    one at a time. Queued tasks behind a task that runs long are taken back and given to
    idle children; each child writes which task it runs, and since when, to a small
    shared array, which time limits, cancels and crash reports read.

    As with any multiprocessing code, a script that starts this pool must guard its top
    level with ``if __name__ == "__main__":`` (each child imports the main module);
    ``zq worker`` and ``python -m zq`` need nothing.
    """

    kind = "process"

    def __init__(self, apps: tuple[str, ...], concurrency: int, *,
                 start_method: str | None = None, start_timeout: float = 60.0,
                 allow_code: bool = False) -> None:
        self._apps, self._n, self._allow_code = apps, concurrency, allow_code
        methods = multiprocessing.get_all_start_methods()
        method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self._mp: Any = multiprocessing.get_context(method)
        if method == "forkserver":  # takes effect when the fork server first starts
            self._mp.set_forkserver_preload(["zq.pools.child"])
        self._start_timeout = start_timeout
        self.broken: str | None = None
        self.catalogue: dict[str, dict[str, Any]] = {}
        self._children: list[_Child] = []
        self._by_fd: dict[int, _Child] = {}
        self._fds: list[int] | None = None
        self._procs: list[Any] = []  # every process not reaped yet, for the exit finalizer
        self._reaping: list[Any] = []
        self._pending: deque[TaskEntry] = deque()
        self._fates: dict[str, int] = {}
        self._seq = 0
        self._avg: float | None = None  # seconds per task, as the children measure it
        self._window = 1
        self._start_failures = 0
        self._start_error: str | None = None
        self._starting = False  # a child dying now fails start() instead of being replaced
        self._closing = False
        self._report = Report()
        self._progress: dict[str, ProgressEntry] = {}
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    # --- life -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the children and wait until each has imported the apps; ConfigError if
        one cannot (the message says why)."""
        self._starting = True
        try:
            for slot in range(self._n):
                self._children.append(self._spawn(slot))
            self._wait_ready(time.monotonic() + self._start_timeout)
        finally:
            self._starting = False
        if self._start_error is not None or not all(c.ready for c in self._children):
            reason = self._start_error or (
                "a pool child died at start" if any(c.dead for c in self._children) else
                f"pool children not ready within {self._start_timeout} s")
            self.close(kill=True)
            raise ConfigError(f"cannot start the process pool: {reason}")

    def _wait_ready(self, deadline: float) -> None:
        with selectors.DefaultSelector() as sel:
            for c in self._children:
                sel.register(c.out_fd, selectors.EVENT_READ, c)
                sel.register(c.sentinel, selectors.EVENT_READ, c)
            while True:
                children = self._children
                if self._start_error is not None or any(c.dead for c in children):
                    return
                left = deadline - time.monotonic()
                if all(c.ready for c in children) or left <= 0:
                    return
                for key, _ in sel.select(left):
                    c = key.data
                    if not c.dead:
                        self._read(c)  # READY, FAILED, or EOF
                    if key.fd == c.sentinel and not c.dead:
                        self._retire(c, None)

    def _spawn(self, slot: int) -> _Child:
        task_r, task_w = self._mp.Pipe(duplex=False)
        out_r, out_w = self._mp.Pipe(duplex=False)
        shm = self._mp.RawArray("d", [-1.0, 0.0, -1.0])
        proc = self._mp.Process(target=_child_main, name=f"zq-pool-{slot}",
                                args=(task_r, out_w, shm, self._apps, logs.setup(),
                                      self._allow_code))
        proc.start()
        task_r.close()  # the child's ends: only the child may hold them, so EOF means death
        out_w.close()
        _grow_pipe(task_w.fileno())
        _grow_pipe(out_r.fileno())
        os.set_blocking(out_r.fileno(), False)
        c = _Child(slot, proc, task_w, out_r, shm)
        self._procs.append(proc)
        self._by_fd[c.out_fd] = c
        self._by_fd[c.sentinel] = c
        self._fds = None
        return c

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop every child: closing its pipe makes an idle child exit; any child still
        there after ``timeout`` (at once when ``kill``) is killed."""
        if self._closing and not self._children:
            return
        self._closing = True
        children = [c for c in self._children if not c.dead]
        self._children = []
        for c in children:
            if kill:
                self._kill(c)
            c.task_conn.close()
        deadline = time.monotonic() + (0 if kill else timeout)
        for c in children:
            c.proc.join(max(0.0, deadline - time.monotonic()))
            if c.proc.exitcode is None:
                self._kill(c)
                c.proc.join(2.0)
            c.out_conn.close()
            self._reaping.append(c.proc)
        self._by_fd.clear()
        self._fds = None
        self._reap()
        if not self._procs:
            self._finalizer.detach()

    @staticmethod
    def _kill(c: _Child) -> None:
        try:
            c.proc.kill()
        except Exception:
            pass  # already gone

    def _reap(self) -> None:
        still = []
        for p in self._reaping:
            if p.exitcode is None:
                still.append(p)
                continue
            p.close()
            self._procs.remove(p)
        self._reaping = still

    # --- the loop's API -------------------------------------------------------------

    def fds(self) -> list[int]:
        if self._fds is None:
            self._fds = [fd for c in self._children if not c.dead
                         for fd in (c.out_fd, c.sentinel)]
        return self._fds

    def submit(self, entries: list[TaskEntry]) -> None:
        self._pending.extend(entries)
        self._dispatch()

    def collect(self, now: float, ready: set[int] | frozenset[int] = frozenset()) -> Report | None:
        for fd in ready:
            c = self._by_fd.get(fd)
            if c is None or c.dead:
                continue
            if fd == c.out_fd:
                self._read(c)
            elif c.proc.exitcode is not None:  # not a reused fd number: it did exit
                self._read(c)
                if not c.dead:
                    self._retire(c, None)
        self._check_children(now)
        if self._reaping:
            self._reap()
        self._dispatch()
        self._note_starts()
        return self._take_report()

    def next_deadline(self, now: float) -> float | None:
        t = math.inf
        idle = not self._pending and any(c.ready and not c.inflight for c in self._children)
        if any(c.inflight and not _runs_seen(c) for c in self._children):
            t = now + START_POLL  # a child starts (or started) a task we did not report
        for c in self._children:
            stealable = idle and len(c.inflight) > 1 and not c.taking_back
            if not c.timed and not stealable:
                continue
            running = c.running()
            timed_running = 0
            if running is not None:
                timeout = running[1][4]
                if timeout is not None:
                    timed_running = 1
                    t = min(t, running[2] + timeout)
                if stealable:
                    t = min(t, running[2] + STEAL_AFTER)
            if c.timed > timed_running:  # queued timed tasks: look again before they could expire
                t = min(t, now + c.min_timeout)
        return None if t == math.inf else t

    def cancel(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        if self._pending and any(e[0] in wanted for e in self._pending):
            kept: deque[TaskEntry] = deque()
            for e in self._pending:
                if e[0] in wanted:
                    self._report.results.append((e[0], e[1], CANCELLED, EMPTY))
                else:
                    kept.append(e)
            self._pending = kept
        for c in list(self._children):
            mine = wanted.intersection(c.inflight)
            if not mine or c.dead:
                continue
            started, _, finished = c.state()
            victims, take = {}, []
            for task_id in mine:
                seq = c.inflight[task_id][0]
                if seq <= finished:
                    continue  # done: its outcome is on the way and stands
                if seq == started:
                    victims[task_id] = (CANCELLED, EMPTY)
                else:
                    self._fates[task_id] = _CANCEL
                    take.append(seq)
            if victims:  # the one it runs can only be stopped by killing the child
                self._retire(c, victims)
            elif take:
                self._take_back(c, take)
        self._dispatch()

    def withdraw_unstarted(self) -> list[str]:
        ids = [e[0] for e in self._pending]
        self._pending.clear()
        for c in self._children:
            if c.dead:
                continue
            started = c.state()[0]
            take = []
            for task_id, (seq, _) in c.inflight.items():
                if seq > started:
                    self._fates[task_id] = _WITHDRAW
                    take.append(seq)
            if take:  # what the child drops comes back in a later Report.returned
                self._take_back(c, take)
        return ids

    # --- talking to children ----------------------------------------------------------

    def _send(self, c: _Child, msg: Any) -> None:
        try:
            write_all(c.task_fd, packb(msg))
        except OSError:
            c.ready = False  # dead or dying: its sentinel will tell, and _retire settles
            self._kill(c)

    def _take_back(self, c: _Child, seqs: list[int]) -> None:
        c.taking_back += 1
        self._send(c, (TAKE_BACK, seqs))

    def _dispatch(self) -> None:
        pending = self._pending
        if not pending:
            return
        ready = [c for c in self._children if c.ready and not c.dead]
        if len(ready) > 1:  # not behind a task that runs long, if another child is free
            now = time.monotonic()
            free = [c for c in ready if not c.inflight or not _runs_long(c, now)]
            ready = free or ready
        if not ready:
            return
        ready.sort(key=lambda c: len(c.inflight))
        share = -(-len(pending) // len(ready))  # spread a burst over the children
        window = self._window
        popleft = pending.popleft
        for c in ready:
            room = min(window - len(c.inflight), share, len(pending))
            if room <= 0:
                continue
            batch = [popleft() for _ in range(room)]
            seq = self._seq
            self._seq = seq + room
            c.inflight.update(zip([e[0] for e in batch], zip(range(seq, seq + room), batch)))
            timeouts = [e[4] for e in batch if e[4] is not None]
            if timeouts:
                c.timed += len(timeouts)
                c.min_timeout = min(c.min_timeout, *timeouts)
            self._send(c, (TASKS, seq, batch))  # the child numbers them from seq
            if not pending:
                return

    def _read(self, c: _Child) -> None:
        while not c.dead:
            try:
                n, msgs = c.reader.read()
            except BlockingIOError:
                return
            except OSError:
                n, msgs = 0, []
            if not n:
                self._retire(c, None)
                return
            for msg in msgs:
                self._on_message(c, msg)
            if n < READ_SIZE:
                return

    def _on_message(self, c: _Child, msg: list[Any]) -> None:
        if c.dead:
            return
        kind = msg[0]
        if kind == OUT:
            self._on_outcomes(c, msg)
        elif kind == DROPPED:
            self._on_dropped(c, msg[1])
        elif kind == READY:
            c.ready = True
            self.catalogue = msg[2]  # every child imports the same apps
            self._start_failures = 0
        elif kind == FAILED:
            self._start_error = msg[1]

    def _on_outcomes(self, c: _Child, msg: list[Any]) -> None:
        _, results, partials, progress, busy, count = msg
        if results:
            ids = [r[0] for r in results]
            jobs: list[Any] = list(map(c.inflight.pop, ids, repeat(None)))
            if None in jobs:  # cannot happen; but never report a task we do not hold
                results = [r for r, job in zip(results, jobs) if job is not None]
                jobs = [job for job in jobs if job is not None]
            if c.timed:
                c.timed -= sum(1 for job in jobs if job[1][4] is not None)
                if not c.timed:
                    c.min_timeout = math.inf
            if self._fates:  # they finished before a take-back reached them
                list(map(self._fates.pop, ids, repeat(None)))
            self._report.results.extend(results)
        if partials:
            self._report.partials.extend(partials)
        for p in progress:
            self._progress[p[0]] = p
        if count > c.count:
            sample = (busy - c.busy) / (count - c.count)
            c.busy, c.count = busy, count
            avg = self._avg = sample if self._avg is None else 0.7 * self._avg + 0.3 * sample
            self._window = max(1, min(MAX_WINDOW, int(TARGET_QUEUE_SECONDS / max(avg, 1e-9))))

    def _on_dropped(self, c: _Child, ids: list[str]) -> None:
        c.taking_back -= 1
        requeue: list[TaskEntry] = []
        for task_id in ids:
            job = c.inflight.pop(task_id, None)
            if job is None:
                continue
            entry = job[1]
            if entry[4] is not None:
                c.timed -= 1
            self._settle_unstarted(task_id, entry, requeue)
        self._pending.extendleft(reversed(requeue))
        # a cancelled task the child did not drop had started: kill to stop it
        finished = c.state()[2]
        victims = {task_id: (CANCELLED, EMPTY) for task_id, fate in self._fates.items()
                   if fate == _CANCEL and task_id in c.inflight
                   and c.inflight[task_id][0] > finished}
        if victims:
            self._retire(c, victims)
        self._dispatch()

    def _settle_unstarted(self, task_id: str, entry: TaskEntry,
                          requeue: list[TaskEntry]) -> None:
        fate = self._fates.pop(task_id, None)
        if fate == _CANCEL:
            self._report.results.append((task_id, entry[1], CANCELLED, EMPTY))
        elif fate == _WITHDRAW:
            self._report.returned.append(task_id)
        else:
            requeue.append(entry)

    def _check_children(self, now: float) -> None:
        """Time limits of running tasks, and idle children taking work from busy ones."""
        idle = not self._pending and any(c.ready and not c.inflight for c in self._children)
        for c in list(self._children):
            if c.dead or not (c.timed or (idle and len(c.inflight) > 1)):
                continue
            running = c.running()
            if running is None:
                continue
            task_id, entry, started_at = running
            timeout = entry[4]
            if timeout is not None and now >= started_at + timeout:
                logs.task_ended(task_id, entry[2], entry[1], f"ran past its {timeout:g} s "
                                f"limit; killing pool child {c.proc.pid}")
                self._retire(c, {task_id: (ERROR, timeout_error(
                    timeout, "its process was killed and replaced"))})
            elif idle and not c.taking_back and now >= started_at + STEAL_AFTER:
                self._steal(c)

    def _steal(self, c: _Child) -> None:
        started = c.state()[0]
        take = []
        for task_id, (seq, _) in c.inflight.items():
            if seq > started and task_id not in self._fates:
                self._fates[task_id] = _STEAL
                take.append(seq)
        if take:
            self._take_back(c, take)

    def _retire(self, c: _Child, victims: dict[str, tuple[int, bytes]] | None,
                replace: bool = True) -> None:
        """c died (victims None: a crash) or is killed for victims (time limit, cancel):
        settle every task it held and start a replacement."""
        if c.dead:
            return
        c.dead = True
        was_ready, c.ready = c.ready, False
        self._kill(c)
        c.proc.join(CRASH_STATUS_WAIT)  # gone: nothing more can reach its pipe
        self._read_rest(c)  # what it flushed before it died stands
        started, _, finished = c.state()
        requeue: list[TaskEntry] = []
        lost: str | None = None
        for task_id, (seq, entry) in c.inflight.items():
            if victims is not None and task_id in victims:
                self._fates.pop(task_id, None)
                outcome, data = victims[task_id]
                self._report.results.append((task_id, entry[1], outcome, data))
            elif victims is None and seq == started > finished:
                # It died under this task: an attempt lost, as when a worker dies, not a
                # failure (the OOM killer, a segfault, os._exit). Outcome 3 unasked-for
                # tells the master so (PROTOCOL §4); a cancel asked for ends as one too.
                self._fates.pop(task_id, None)
                self._report.results.append((task_id, entry[1], CANCELLED, EMPTY))
                lost = task_id
                logs.task_ended(task_id, entry[2], entry[1], f"was lost: pool child "
                                f"{c.proc.pid} {_how_it_died(c)} while running it")
            else:  # never started, or finished with its outcome lost: run it again
                self._settle_unstarted(task_id, entry, requeue)
        c.inflight.clear()
        self._pending.extendleft(reversed(requeue))
        if victims is None:
            log.warning("pool child %d %s%s; replacing it", c.proc.pid, _how_it_died(c),
                        f" while running task {lost} (a lost attempt)" if lost else "")
        if not was_ready:
            self._start_failures += 1
        self._forget(c)
        if replace and not self._closing and not self._starting:
            self._replace(c.slot)

    def _read_rest(self, c: _Child) -> None:
        try:
            while True:
                n, msgs = c.reader.read()
                if not n:
                    return
                for msg in msgs:
                    if msg[0] == OUT:
                        self._on_outcomes(c, msg)
        except OSError:
            return

    def _forget(self, c: _Child) -> None:
        self._by_fd.pop(c.out_fd, None)
        self._by_fd.pop(c.sentinel, None)
        self._fds = None
        c.task_conn.close()
        c.out_conn.close()
        self._reaping.append(c.proc)

    def _replace(self, slot: int) -> None:
        if self._start_failures >= MAX_START_FAILURES:
            self._break(f"{self._start_failures} pool children in a row died before they "
                        f"were ready ({self._start_error or 'no reason given'})")
            return
        try:
            new = self._spawn(slot)
        except Exception as e:
            self._break(f"cannot start a pool child: {type(e).__name__}: {e}")
            return
        self._children = [new if c.slot == slot else c for c in self._children]

    def _break(self, reason: str) -> None:
        log.error("process pool broken: %s", reason)
        self.broken = reason
        for e in self._pending:  # lost, not failed: the worker stops, they run elsewhere
            self._report.results.append((e[0], e[1], CANCELLED, EMPTY))
        self._pending.clear()

    def _note_starts(self) -> None:
        """The task each child runs now, if not reported yet, goes in Report.started."""
        for c in self._children:
            if not c.inflight or c.dead:
                continue
            running = c.running()
            if running is not None and c.inflight[running[0]][0] != c.seen:
                c.seen = c.inflight[running[0]][0]
                self._report.started.append(running[0])

    def _take_report(self) -> Report | None:
        r = self._report
        if not (r.results or r.partials or r.returned or r.started or self._progress):
            return None
        r.progress = list(self._progress.values())
        self._report, self._progress = Report(), {}
        return r
