"""What the dashboard shows, asked of the master through an ordinary zq client: status
(kept half a second, so any number of browsers cost the master two status queries a
second at most), workers with the tasks each runs, queues, task lists and one task in full.
Every function here is blocking: the web server runs them in its thread pool."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from zq.errors import Rejected, ZqError
from zq.web.detail import task_view

FRESH = 0.5  # seconds a status or running-task answer is reused (pages reload on the
# tick after the last change too, so the last state shown is never older than that)
RUNNING_ASKED = 1000  # running tasks asked for (the master's most per query)
MAX_PAGE = 200  # tasks on one page at most
MAX_LISTED = 1000  # the master lists the newest 1,000 matching tasks at most
PREVIEW = 2000  # characters of a result shown
RESULT_WAIT = 2.0  # seconds the task page waits for a finished task's result


class Cache:
    """Answers reused for FRESH seconds; one asker at a time per key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.kept: dict[str, tuple[float, Any]] = {}

    def get(self, key: str, ask: Callable[[], Any]) -> Any:
        with self.lock:
            hit = self.kept.get(key)
            if hit is not None and self.clock() - hit[0] < FRESH:
                return hit[1]
            value = ask()
            self.kept[key] = (self.clock(), value)
            return value


class Data:
    """The dashboard's questions to the master, over one client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cache = Cache()

    def status(self) -> dict[str, Any]:
        return self.cache.get("status", self.client.status)

    def running(self) -> list[dict[str, Any]]:
        return self.cache.get("running", lambda: self.client.tasks(
            state="running", limit=RUNNING_ASKED))

    def workers(self, departed: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Workers as status lists them ("status": "connected"), each with the ids of the
        tasks it runs, then `departed`: the workers the event stream said left or were
        lost ("status": "left" or "lost", "gone_at": when), newest first, except any
        that is connected again (the same name, host and pid)."""
        by_worker: dict[str, list[str]] = {}
        for t in self.running():
            by_worker.setdefault(str(t.get("worker")), []).append(t["id"])
        out = []
        for w in sorted(self.status().get("workers", []), key=lambda w: str(w.get("name"))):
            out.append({**w, "status": "connected",
                        "tasks": by_worker.get(str(w.get("name")), [])})
        here = {(w.get("name"), w.get("host"), w.get("pid")) for w in out}
        return out + [{**w, "tasks": []} for w in departed or ()
                      if (w.get("name"), w.get("host"), w.get("pid")) not in here]

    def queues(self) -> list[dict[str, Any]]:
        """Each queue: tasks waiting, running, and workers serving it."""
        st = self.status()
        workers = st.get("workers", [])
        running: dict[str, int] = {}
        for t in self.running():
            running[t["queue"]] = running.get(t["queue"], 0) + 1
        names = set(st.get("queues", {})) | set(running) | {
            q for w in workers for q in w.get("queues", [])}
        return [{"queue": q, "waiting": st.get("queues", {}).get(q, 0),
                 "running": running.get(q, 0),
                 "workers": sum(1 for w in workers if q in w.get("queues", []))}
                for q in sorted(names)]

    def tasks(self, state: str | None, queue: str | None, name: str | None,
              since: float | None, page: int, per_page: int) -> dict[str, Any]:
        """One page of tasks, newest first, among the newest MAX_LISTED that match.
        since: only tasks changed in the last `since` seconds."""
        per_page = max(1, min(per_page, MAX_PAGE))
        page = max(1, page)
        asked = min(MAX_LISTED, page * per_page + 1)
        rows = self.client.tasks(state=state, queue=queue, name=name, limit=asked)
        if since is not None:
            cutoff = time.time() - since
            rows = [t for t in rows if float(t.get("updated") or 0) >= cutoff]
        start = (page - 1) * per_page
        shown = rows[start:start + per_page]
        return {"tasks": shown, "page": page, "per_page": per_page,
                "more": len(rows) > start + per_page,
                "capped": asked >= MAX_LISTED and len(rows) >= MAX_LISTED}

    def task(self, task_id: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
        """One task: the master's record and detail (zq.web.detail), the events of it
        this dashboard saw, and a bounded preview of its result when it succeeded."""
        info = task_view(dict(self.client.get(task_id)))
        info["attempts_seen"] = attempts
        if info.get("state") == "succeeded":
            info["result_preview"] = self._result_preview(task_id)
        return info

    def _result_preview(self, task_id: str) -> str:
        try:
            value = self.client.future(task_id).result(timeout=RESULT_WAIT)
        except ZqError as e:
            return f"(the result is not available: {e})"
        except Exception as e:  # a value this process cannot rebuild, or a timeout
            return f"(the result is not available: {type(e).__name__}: {e})"
        return bounded(repr(value))

    def schedule(self, name: str) -> dict[str, Any] | None:
        for s in self.client.schedules():
            if s.get("name") == name:
                return dict(s)
        return None

    def run_now(self, name: str, role: str) -> dict[str, Any]:
        """Run a schedule's task once now, its ticks unchanged: the master's schedule_run
        (protocol 1.5, admin role), else (a client key, or an older master) an ordinary
        submission with the schedule's arguments, queue and priority."""
        if role == "admin":
            try:
                return {"id": str(self.client.run_schedule(name).id)}
            except Rejected as e:
                if not str(e).startswith("unknown query"):
                    raise
        return {"id": self._submit_like(name)}

    def _submit_like(self, name: str) -> str:
        s = self.schedule(name)
        if s is None:
            raise LookupError(f"no schedule named {name!r}")
        options = {k: s[k] for k in ("queue", "priority") if s.get(k) is not None}
        submitter = self.client.options(**options) if options else self.client
        future = submitter.submit(s["task"], *(s.get("args") or []), **(s.get("kwargs") or {}))
        if not self.client.flush(RESULT_WAIT):
            raise TimeoutError("the master did not accept the task in time")
        if future.done() and future.exception(0) is not None:  # refused at submission
            raise future.exception(0)
        return str(future.id)


def bounded(text: str, limit: int = PREVIEW) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"
