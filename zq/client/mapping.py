"""map(): one run per call, a slot per task instead of a Future, results yielded in
order, at most a window of tasks in flight, submitted a chunk at a time."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from zq.client import cancels
from zq.client.future import STATE_CANCELLED, SUCCEEDED, decode_outcome
from zq.client.mailbox import Mailbox, Pack, Spec
from zq.client.progress import ProgressBar, known_length
from zq.core import messages as m

if TYPE_CHECKING:
    from zq.config import ClientConfig

Outcome = tuple[int, Any]  # (final state, or -1 for a client-side error; payload or error)


def start(mailbox: Mailbox, config: ClientConfig, spec: Spec,
          iterables: tuple[Iterable[Any], ...], timeout: float | None,
          chunksize: int | None, progress: bool = False, pack: Pack | None = None
          ) -> MapResults:
    """Submit the first window now (as Executor.map does) and return the results
    (with a bar on stderr while they come, if `progress` and stderr is a terminal)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunk = max(1, min(chunksize or config.batch_size, config.batch_size))
    window = max(chunk, config.max_unacked)
    run = MapRun(mailbox, spec, zip(*iterables), chunk, window, pack)
    run.top_up()
    if progress:
        return MapResults(run, run.results_with_bar(deadline, known_length(iterables)))
    return MapResults(run, run.results(deadline))


class MapResults(Iterator[Any]):
    """What map() returns: its results in order; cancel_rest() for Executor.shutdown."""

    __slots__ = ("_run", "_results", "__weakref__")

    def __init__(self, run: MapRun, results: Iterator[Any]) -> None:
        self._run, self._results = run, results

    def __next__(self) -> Any:
        return next(self._results)

    def close(self) -> None:
        """Stop early (as leaving a for loop does): the tasks not started yet are
        cancelled, the running ones finish unseen."""
        close = getattr(self._results, "close", None)
        if close is not None:
            close()

    def cancel_rest(self) -> None:
        """Submit nothing more and cancel what was submitted but has not started: the
        results of the rest still come, then CancelledError at the first position
        cancelled or never submitted."""
        self._run.cancel_rest()


class MapRun:
    """One map() call; the sink of every task it submits."""

    def __init__(self, mailbox: Mailbox, spec: Spec, args: Iterator[tuple[Any, ...]],
                 chunk: int, window: int, pack: Pack | None = None) -> None:
        self.mailbox, self.spec, self.args = mailbox, spec, args
        self.pack = pack  # None: arguments as values (a shipped callable's: zq.shipping)
        self.chunk, self.window = chunk, window
        self.index: dict[str, Any] = {}  # task id -> position (a list after a key dedup)
        self.done: dict[int, Outcome] = {}  # position -> outcome
        self.cond = threading.Condition()
        self.waiting_for = -1
        self.count = 0  # positions handed out
        self.head = 0  # next position to yield
        self.stop: tuple[int, BaseException] | None = None  # args that could not be sent
        self.exhausted = False
        self.failed = 0  # failures raised to the consumer (at most one: map stops there)
        self.topping = threading.Lock()  # top_up (consumer) against cancel_rest (shutdown)

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
        self._put(task_id, (STATE_CANCELLED, b""))

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

    def _put(self, task_id: str, item: Outcome) -> None:
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
        with self.topping:
            while not self.exhausted and self.count - self.head <= self.window - self.chunk:
                batch = list(itertools.islice(self.args, self.chunk))
                if len(batch) < self.chunk:
                    self.exhausted = True
                if batch:
                    self._submit(batch)

    def cancel_rest(self) -> None:
        """Submit nothing more, and cancel the tasks submitted that have not started
        (Executor.shutdown(cancel_futures=True)); the consumer meets CancelledError at
        the first position cancelled or never submitted. The running ones finish."""
        with self.topping:
            if not self.exhausted:  # else everything was submitted (or stop is set)
                self.exhausted = True
                self.stop = (self.count, cf.CancelledError())
            in_flight = list(self.index)
        self._cancel_unstarted(in_flight, abandoned=False)

    def _cancel_unstarted(self, ids: list[str], abandoned: bool) -> None:
        """Ask the master to cancel those of ids that have not started (protocol 1.5),
        without waiting: the cancelled ones come back as cancelled results."""
        if ids:
            cancels.ask_later(self.mailbox, ids,
                              lambda answer: self._on_cancel_answer(answer, abandoned))

    def _on_cancel_answer(self, answer: cancels.Answer, abandoned: bool) -> None:
        """(I/O thread) Ids the master does not hold yet are not accepted, so not
        started: they are dropped here (CANCEL). Those of a master before 1.5 (no
        answer) are left to run, or, if the map was abandoned, cancelled as before 1.5."""
        drop = answer.unknown + answer.unanswered if abandoned else answer.unknown
        for tid in drop:
            self.on_cancelled(tid)
        if drop:
            self.mailbox.cancel(drop, self)

    def _submit(self, batch: list[tuple[Any, ...]]) -> None:
        name, wire = self.spec
        payloads, error = self.mailbox.pack_calls(batch, self.pack)
        if error is not None:
            self.stop = (self.count + len(payloads), error)  # raised at that position
            self.exhausted = True
        if not payloads:
            return
        index, first = self.index, self.count
        ids = self.mailbox.new_ids(len(payloads))
        entries: list[m.SubmitEntry] = []
        for pos, tid, payload in zip(itertools.count(first), ids, payloads):
            index[tid] = pos
            entries.append((tid, name, payload, wire))
        self.count = first + len(entries)
        self.mailbox.post_entries(entries, [self] * len(entries))

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
                yield decode_outcome(*item)
        finally:
            if self.index:  # stopped early: those that have not started are not wanted
                self._cancel_unstarted(list(self.index), abandoned=True)

    def results_with_bar(self, deadline: float | None, total: int | None) -> Iterator[Any]:
        with ProgressBar(self.spec[0], lambda: self._progress(total)):
            try:
                yield from self.results(deadline)
            except Exception:  # a failed task (or a timeout): the bar shows it, then ends
                self.failed += 1
                raise

    def _progress(self, total: int | None) -> tuple[float, float | None, int]:
        """(results in, total, failures) for the bar, read from the bar's thread: only
        sizes and a copy of the waiting outcomes, never the consumer's position logic."""
        waiting = list(self.done.values())
        pending_failures = sum(1 for state, _ in waiting if state != SUCCEEDED)
        known = total if total is not None else (self.count if self.exhausted else None)
        return self.head + len(waiting), known, self.failed + pending_failures

    def _wait(self, pos: int, deadline: float | None) -> Outcome:
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
