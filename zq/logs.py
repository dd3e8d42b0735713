"""Logging for zq's processes: one handler on stderr, as text or one JSON object per line;
every record logged inside a task carries task_id, task_name and attempt; and TaskLog, the
line each finished task leaves (INFO) or each failure (ERROR, with its traceback, fewer
in a storm). The CLI calls configure(); pool children call it again with setup()."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Callable, TextIO

from zq.context import TaskContext, current_task

FORMATS = ("text", "json")
TASK_FIELDS = ("task_id", "task_name", "attempt")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every LogRecord has: anything else on a record is an extra field, shown too.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
TASKS_LOGGER = "zq.tasks"  # finished and failed tasks, so they can be filtered apart
STORM_WINDOW = 10.0  # seconds: at most STORM_TRACEBACKS failures logged per window...
STORM_TRACEBACKS = 10  # ...the rest counted, and the count logged when the window ends


class TaskFields(logging.Filter):
    """Adds task_id, task_name and attempt to a record logged inside a task (the running
    task is a ContextVar: right in every thread, coroutine and pool child)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "task_id"):
            ctx = current_task()
            if ctx is not None:
                record.task_id, record.task_name, record.attempt = ctx.id, ctx.name, ctx.attempt
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """The usual line, then the record's extra fields as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the extra
    fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
                            .isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["traceback"] = record.exc_text
        return json.dumps(out, default=str)


class _ZqHandler(logging.StreamHandler):
    """The handler configure() installs; remembers its setup for pool children."""

    def __init__(self, stream: TextIO, level: str, fmt: str) -> None:
        super().__init__(stream)
        self.setup = (level, fmt)
        self.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        self.addFilter(TaskFields())


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log to stderr (or stream) at level, as fmt ("text" or "json"), replacing what an
    earlier configure() installed."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ZqHandler)]:
        root.removeHandler(old)
    root.addHandler(_ZqHandler(stream or sys.stderr, level, fmt))
    root.setLevel(level.upper())


def setup() -> tuple[str, str] | None:
    """(level, format) as configure() was last called in this process, or None: what a
    pool child passes to configure() to log the same way."""
    for h in logging.getLogger().handlers:
        if isinstance(h, _ZqHandler):
            return h.setup
    return None


class TaskLog:
    """The line each finished task leaves: INFO when it succeeded (or was cancelled),
    ERROR with the traceback when it failed. In a failure storm only STORM_TRACEBACKS
    failures per STORM_WINDOW seconds are logged; how many were not is logged after."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._log = logging.getLogger(TASKS_LOGGER)
        # Whether succeeded() has anything to do: checked by the pools before they read
        # the clock a second time (a task's hot path). The level is read once: zq sets
        # it at start.
        self.loud = self._log.isEnabledFor(logging.INFO)
        self._lock = threading.Lock()  # the thread pool's threads share one TaskLog
        self._window_end = 0.0
        self._logged = 0  # failures logged in this window
        self.quiet = 0  # failures not logged in this window

    def succeeded(self, ctx: TaskContext, runtime: float, how: str = "succeeded") -> None:
        if self.quiet:
            with self._lock:
                self._say_storm(self._clock())
        if self.loud:
            self._log.info("task %s %s %s (attempt %d) in %.3f s", ctx.id, ctx.name, how,
                           ctx.attempt, runtime, extra=_fields(ctx, runtime))

    def failed(self, ctx: TaskContext, runtime: float, exc: BaseException,
               retryable: bool) -> None:
        now = self._clock()
        with self._lock:
            if now >= self._window_end:
                self._say_storm(now)
                self._window_end, self._logged = now + STORM_WINDOW, 0
            if self._logged >= STORM_TRACEBACKS:
                self.quiet += 1
                return
            self._logged += 1
        why = ("the master retries it while it has attempts left" if retryable else
               "not retried: its retry_on does not name this error")
        self._log.error("task %s %s failed (attempt %d) after %.3f s: %s: %s; %s", ctx.id,
                        ctx.name, ctx.attempt, runtime, type(exc).__name__, exc, why,
                        exc_info=(type(exc), exc, _without_runner_frame(exc)),
                        extra={**_fields(ctx, runtime), "error": type(exc).__name__,
                               "retryable": retryable})

    def _say_storm(self, now: float) -> None:
        """Log how many failures were not logged, once their window has ended (with the
        lock held)."""
        if self.quiet and now >= self._window_end:
            quiet, self.quiet = self.quiet, 0
            self._log.error("%d more task failures in %g s were not logged one by one (a "
                            "failure storm); zq tasks lists them", quiet, STORM_WINDOW,
                            extra={"suppressed": quiet})


def task_ended(task_id: str, name: str, attempt: int, how: str) -> None:
    """A task its pool ended (a time limit) or lost (its child process died): ERROR on
    zq.tasks with the task's fields. There is no traceback; nor a storm limit: each such
    task held a slot for its time limit, or took a process with it."""
    logging.getLogger(TASKS_LOGGER).error(
        "task %s %s (attempt %d) %s", task_id, name, attempt, how,
        extra={"task_id": task_id, "task_name": name, "attempt": attempt})


def _without_runner_frame(exc: BaseException) -> TracebackType | None:
    """The traceback from the task's own code on: the pool's calling frame left out."""
    tb = exc.__traceback__
    return tb.tb_next if tb is not None and tb.tb_next is not None else tb


def _fields(ctx: TaskContext, runtime: float) -> dict[str, Any]:
    return {"task_id": ctx.id, "task_name": ctx.name, "attempt": ctx.attempt,
            "runtime": round(runtime, 6)}
