"""What the dashboard learns from the master's event stream: tasks finished per second
(the overview's chart), the latest events, each task's attempts as this dashboard saw
them, the workers that left or were lost (shown for a while), and the browsers listening
(server-sent events). One subscription to the master feeds every browser; a browser that
does not keep up loses messages (counted and told as a gap), it never holds the others
or the reader back."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict, deque
from typing import Any, Callable

from zq.errors import Rejected, ZqError

log = logging.getLogger(__name__)

FINISHED_KINDS = frozenset({"succeeded", "failed", "dead", "cancelled"})
SERIES_SECONDS = 600  # the chart's memory: ten minutes of per-second counts
RECENT = 200  # latest events kept for the overview
TASKS_REMEMBERED = 5_000  # tasks whose attempts are kept (the oldest are forgotten)
ATTEMPTS_KEPT = 20  # events kept per task
BROWSER_BACKLOG = 256  # messages queued for one browser before it loses some
RETRY = 2.0  # seconds between subscription attempts while no master answers
DEPARTED_SECONDS = 600  # a worker that left or was lost stays listed this long
DEPARTED_KEPT = 100  # at most this many of them (the oldest are forgotten first)
DEPARTED_KINDS = frozenset({"left", "lost"})


class Browser:
    """One browser's event stream: a bounded queue; what does not fit is counted.
    Ticks go to every browser; events only to those that asked: all of them (`every`),
    or one task's (`task`, what a task's page listens to)."""

    def __init__(self, every: bool = False, task: str | None = None) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(BROWSER_BACKLOG)
        self.dropped = 0
        self.every, self.task = every, task

    def offer(self, message: str) -> None:
        """Queue a message without ever waiting; a gap is told before the next one."""
        if self.dropped and self.queue.qsize() < BROWSER_BACKLOG - 1:
            self.queue.put_nowait(sse("gap", {"dropped": self.dropped}))
            self.dropped = 0
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:  # the reader is gone or far behind: make room to end it
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


def sse(event: str, data: Any) -> str:
    """One server-sent event: its name and a JSON line."""
    return f"event: {event}\ndata: {json.dumps(data, default=repr)}\n\n"


class Live:
    """Runs on the web server's event loop: `publish` takes a batch of events from the
    reader thread (through the loop), `tick` is called once a second."""

    def __init__(self) -> None:
        self.series: OrderedDict[int, int] = OrderedDict()  # second -> tasks finished
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.attempts: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        # (name, host, pid) -> the left/lost event, oldest first
        self.departed: OrderedDict[tuple[Any, Any, Any], dict[str, Any]] = OrderedDict()
        self.browsers: set[Browser] = set()
        self.dropped = 0  # events the master left out for this dashboard (it fell behind)
        self.changed = False  # events came since the last tick
        self.subscribed: bool | None = None  # None: not yet known; False: no stream
        self.why_not = ""

    def publish(self, events: list[dict[str, Any]]) -> None:
        kept = []
        for e in events:
            if e.get("kind") == "gap":
                self.dropped += int(e.get("dropped", 0))
                continue
            kept.append(e)
            self._count(e)
        if not kept:
            return
        self.changed = True
        message = None  # made once, for every browser that takes all events
        for b in list(self.browsers):
            if b.every:
                message = message or sse("events", kept)
                b.offer(message)
            elif b.task is not None:
                mine = [e for e in kept if e.get("id") == b.task]
                if mine:
                    b.offer(sse("events", mine))

    def _count(self, e: dict[str, Any]) -> None:
        self.recent.append(e)
        if e.get("kind") in DEPARTED_KINDS or e.get("kind") == "joined":
            self._worker_moved(e)
        try:
            second = int(float(e.get("time", 0)))
        except (TypeError, ValueError):
            return
        if e.get("kind") in FINISHED_KINDS:
            self.series[second] = self.series.get(second, 0) + 1
            while len(self.series) > SERIES_SECONDS or (
                    self.series and next(iter(self.series)) < second - SERIES_SECONDS):
                self.series.popitem(last=False)
        task_id = e.get("id")
        if isinstance(task_id, str) and e.get("kind") != "progress":
            seen = self.attempts.pop(task_id, [])
            seen.append({k: e.get(k) for k in ("kind", "time", "attempt", "worker")})
            self.attempts[task_id] = seen[-ATTEMPTS_KEPT:]
            if len(self.attempts) > TASKS_REMEMBERED:
                self.attempts.popitem(last=False)

    def _worker_moved(self, e: dict[str, Any]) -> None:
        """A worker left or was lost: keep it (bounded); it joined again: forget it."""
        key = (e.get("worker"), e.get("host"), e.get("pid"))
        self.departed.pop(key, None)
        if not isinstance(e.get("time"), (int, float)):  # the master's events always have it
            return
        if e.get("kind") == "joined":
            return
        self.departed[key] = {"name": e.get("worker"), "host": e.get("host"),
                              "pid": e.get("pid"), "queues": e.get("queues") or [],
                              "status": e.get("kind"), "gone_at": e.get("time")}
        while len(self.departed) > DEPARTED_KEPT:
            self.departed.popitem(last=False)

    def departed_workers(self, now: float) -> list[dict[str, Any]]:
        """The workers that left or were lost in the last DEPARTED_SECONDS, newest
        first (older ones are forgotten here)."""
        while self.departed:
            first = next(iter(self.departed.values()))
            try:
                old = float(first["gone_at"]) < now - DEPARTED_SECONDS
            except (TypeError, ValueError):
                old = True
            if not old:
                break
            self.departed.popitem(last=False)
        return [dict(w) for w in reversed(self.departed.values())]

    def tick(self, now: float) -> None:
        """Tell every browser the time, the last seconds' counts and whether anything
        happened since the last tick (pages then reload what they show, once)."""
        second = int(now)
        tail = [[s, self.series.get(s, 0)] for s in range(second - 3, second + 1)]
        message = sse("tick", {"time": now, "series": tail, "changed": self.changed,
                               "dropped": self.dropped})
        self.changed = False
        for b in list(self.browsers):
            b.offer(message)

    def chart(self, now: float, seconds: int = 300) -> list[list[int]]:
        second = int(now)
        return [[s, self.series.get(s, 0)] for s in range(second - seconds, second + 1)]

    def join(self, every: bool = False, task: str | None = None) -> Browser:
        b = Browser(every, task)
        self.browsers.add(b)
        return b

    def leave(self, b: Browser) -> None:
        self.browsers.discard(b)

    def close(self) -> None:
        for b in list(self.browsers):
            b.close()
        self.browsers.clear()


class Reader(threading.Thread):
    """Reads the event stream on a thread of its own and hands each batch to the web
    server's loop. `stream` is a subscribed zq.event_stream.EventStream (or None: the
    master has no event stream, and the dashboard says so)."""

    def __init__(self, open_stream: Callable[[], Any], live: Live,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="zq-dashboard-events", daemon=True)
        self.open_stream, self.live, self.loop = open_stream, live, loop
        self.stopping = threading.Event()

    def run(self) -> None:
        stream = self._subscribe()
        if stream is None:
            return
        try:
            while not self.stopping.is_set():
                if not stream.sock.poll(200):
                    stream.drain()  # renews the subscription when due
                    continue
                batch = stream.drain()
                if batch:
                    self.loop.call_soon_threadsafe(self.live.publish, batch)
        except Exception:  # the loop closed under us at shutdown, or the socket did
            if not self.stopping.is_set():
                log.exception("zq dashboard: the event reader stopped")
        finally:
            stream.close()

    def _subscribe(self) -> Any:
        """A subscribed stream; while no master answers, try again every RETRY seconds;
        None when the master refuses (before 1.3: no event stream) or we are stopping."""
        while not self.stopping.is_set():
            stream = self.open_stream()
            try:
                stream.subscribe()
                self._say(True, "")
                return stream
            except Rejected as e:
                stream.close()
                self._say(False, f"the master has no event stream ({e})")
                log.warning("zq dashboard: no event stream (%s): live updates are off", e)
                return None
            except ZqError as e:
                stream.close()
                self._say(False, f"no answer from the master yet ({e})")
                self.stopping.wait(RETRY)
        return None

    def _say(self, subscribed: bool, why: str) -> None:
        def set_it() -> None:
            self.live.subscribed, self.live.why_not = subscribed, why
        try:
            self.loop.call_soon_threadsafe(set_it)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    def stop(self) -> None:
        self.stopping.set()
        self.join(3.0)
