"""The process pool's child side: `_child_main` is what each pool child runs. A reader
thread queues tasks, the main thread runs them, a flusher thread batches outcomes back."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

from zq import lifetime, logs
from zq.context import TaskContext
from zq.core.messages import PartialEntry, Payload, ProgressEntry
from zq.pools.pipe import (
    DROPPED,
    FAILED,
    FINISHED,
    OUT,
    READY,
    STARTED,
    STARTED_AT,
    TAKE_BACK,
    TASKS,
    Reader,
    packb,
    write_all,
)
from zq.pools.runner import Runner
from zq.registry import Registry

FLUSH_DELAY = 0.001  # a child batches outcomes for this long (its flusher thread)...
FLUSH_COUNT = 256  # ...or until it has this many, or until it runs out of work


class _ChildOut:
    """A child's outcomes, buffered and written to the parent in batches, in order."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()  # the buffers
        self._write_lock = threading.Lock()  # one message at a time, in buffer order
        self._dirty = threading.Event()  # something is buffered: wakes the flusher
        self._results: list[list[Any]] = []
        self._partials: list[PartialEntry] = []
        self._progress: dict[str, ProgressEntry] = {}
        # written by the main thread only; sent as running totals, the parent takes deltas
        self.busy = 0.0
        self.count = 0

    def result(self, entry: list[Any]) -> None:
        with self._lock:
            self._results.append(entry)
            n = len(self._results)
        if n == 1:
            self._dirty.set()
        elif n >= FLUSH_COUNT:
            self.flush()

    def partial(self, task_id: str, attempt: int, seq: int, payload: Payload) -> None:
        with self._lock:
            self._partials.append((task_id, attempt, seq, payload))
        self._dirty.set()

    def progress(self, task_id: str, attempt: int, done: float, total: float) -> None:
        with self._lock:
            self._progress[task_id] = (task_id, attempt, done, total)
        self._dirty.set()

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                self._dirty.clear()
                if not (self._results or self._partials or self._progress):
                    return
                msg = (OUT, self._results, self._partials, list(self._progress.values()),
                       self.busy, self.count)
                self._results, self._partials, self._progress = [], [], {}
            self.send(msg, locked=True)

    def send(self, msg: Any, locked: bool = False) -> None:
        data = packb(msg)
        try:
            if locked:
                write_all(self._fd, data)
            else:
                with self._write_lock:
                    write_all(self._fd, data)
        except OSError:
            os._exit(0)  # the parent is gone; nothing we do can be reported

    def flusher(self) -> None:
        """Thread: sends what a long task left buffered (chunks, progress, results)."""
        while True:
            self._dirty.wait()
            time.sleep(FLUSH_DELAY)
            self.flush()


class _ChildRuntime:
    """One child process: a reader thread fills the queue, the main thread runs tasks."""

    def __init__(self, registry: Registry, task_fd: int, out: _ChildOut, shm: Any,
                 allow_code: bool = False) -> None:
        self._task_fd = task_fd
        self._out = out
        self._shm = shm
        self._lock = threading.Lock()  # a queued task is either popped (runs) or taken back
        self._work = threading.Event()
        self._queue: deque[tuple[int, list[Any]]] = deque()  # (seq, task entry)
        self._runner = Runner(registry, out.partial, allow_code=allow_code)

    def reader(self) -> None:
        reader = Reader(self._task_fd)
        while True:
            try:
                n, msgs = reader.read()
            except OSError:
                n, msgs = 0, []
            if not n:
                os._exit(0)  # the parent closed the pipe: it stopped or died
            for msg in msgs:
                if msg[0] == TASKS:  # (TASKS, first seq, entries)
                    with self._lock:
                        self._queue.extend(enumerate(msg[2], msg[1]))
                    self._work.set()
                elif msg[0] == TAKE_BACK:
                    self._take_back(set(msg[1]))

    def _take_back(self, seqs: set[int]) -> None:
        """Drop these queued tasks and say which: popped ones have started and will run."""
        with self._lock:
            dropped = [job[1][0] for job in self._queue if job[0] in seqs]
            if dropped:
                kept = [job for job in self._queue if job[0] not in seqs]
                self._queue.clear()
                self._queue.extend(kept)
        self._out.send((DROPPED, dropped))

    def serve(self) -> None:
        lock, work, queue, out, shm = self._lock, self._work, self._queue, self._out, self._shm
        run, monotonic = self._runner.run, time.monotonic
        while True:
            with lock:
                job = queue.popleft() if queue else None
            if job is None:
                out.flush()  # out of work: report now rather than after FLUSH_DELAY
                work.clear()
                if not queue:  # the reader sets work after it queues: no lost wake-up
                    work.wait()
                continue
            seq, (task_id, attempt, name, payload, _, retry_on) = job
            t0 = monotonic()
            # started_at before started: the parent reads started, started_at, finished
            shm[STARTED_AT] = t0
            shm[STARTED] = seq
            outcome, data = run(TaskContext(task_id, attempt, name, out.progress),
                                payload, retry_on)
            shm[FINISHED] = seq
            out.busy += monotonic() - t0
            out.count += 1
            out.result([task_id, attempt, outcome, data])


# --- process pool: a child lives no longer than its worker ------------------------------
#
# A child learns of its worker's death when its task pipe reads EOF, but only if Python
# code can run in it: a child stuck in C code that holds the GIL, or a stopped one, would
# live on, and with it the fork server (which exits only when no process holds a copy of
# its "alive" pipe). So on Linux each child also (1) asks the kernel for SIGKILL when
# its parent, the fork server, exits and (2) drops its copy of the fork server's alive
# pipe. The worker then holds the only copy: when the worker dies, however it dies, the
# fork server sees EOF and exits, and its exit kills every child.

def _release_fork_server() -> None:
    """Close this child's copy of the fork server's alive pipe (see above). A task that
    starts processes with ``forkserver`` is not affected: multiprocessing starts a fork
    server of its own for each process that asks, children included."""
    fs_module = sys.modules.get("multiprocessing.forkserver")
    server = getattr(fs_module, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None:
        return  # not started by a fork server (spawn), or a Python that keeps it elsewhere
    server._forkserver_alive_fd = None  # type: ignore[union-attr]
    try:
        os.close(fd)
    except OSError:
        pass


def _child_main(task_conn: Any, out_conn: Any, shm: Any, apps: tuple[str, ...],
                log_setup: tuple[str, str] | None = None, allow_code: bool = False) -> None:
    """Entry point of a pool child (started by multiprocessing); it logs as its worker
    does (log_setup: zq.logs.setup() there); allow_code: it runs shipped code."""
    if log_setup is not None:
        logs.configure(*log_setup)
    # SIGKILL when the parent (the fork server, or with ``spawn`` the worker thread that
    # started this child) exits; before the alive pipe goes: until then it cannot exit.
    lifetime.die_with_parent(signal.SIGKILL, os.getppid(), lifetime.find_prctl())
    _release_fork_server()
    # The worker handles SIGINT/SIGTERM (a terminal's ^C reaches the whole group) and
    # stops children itself: by closing their pipe, or with SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = _ChildOut(out_conn.fileno())
    try:
        registry = Registry(apps)
    except BaseException as e:
        out.send((FAILED, str(e)))
        return
    runtime = _ChildRuntime(registry, task_conn.fileno(), out, shm, allow_code)
    out.send((READY, os.getpid(), registry.catalogue()))
    threading.Thread(target=runtime.reader, name="zq-reader", daemon=True).start()
    threading.Thread(target=out.flusher, name="zq-flusher", daemon=True).start()
    runtime.serve()

