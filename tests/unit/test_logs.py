"""zq.logs without processes: the text and JSON lines, the task fields a record logged
inside a task gets, and the rate limit of failure lines in a storm (a fake clock)."""

from __future__ import annotations

import io
import json
import logging
from typing import Iterator

import pytest

from zq import logs
from zq.context import TaskContext, activate, deactivate


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """configure() on a buffer; the root logger as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buf = io.StringIO()
    yield buf
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def ctx(task_id: str = "t1", attempt: int = 2) -> TaskContext:
    return TaskContext(task_id, attempt, "myapp:job", lambda *a: None)


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_the_task_fields_inside_a_task_only(captured):
    logs.configure("info", "json", captured)
    log = logging.getLogger("myapp.work")
    log.info("outside")
    token = activate(ctx())
    try:
        log.warning("inside %d", 7, extra={"colour": "green"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("caught")
    finally:
        deactivate(token)
    log.debug("below the level")
    out, inside, caught = lines(captured)
    assert set(out) == {"time", "level", "logger", "message"}
    assert (out["level"], out["logger"], out["message"]) == ("INFO", "myapp.work", "outside")
    assert out["time"].endswith("+00:00")
    assert {k: inside[k] for k in ("message", "colour", "task_id", "task_name", "attempt")} == {
        "message": "inside 7", "colour": "green", "task_id": "t1", "task_name": "myapp:job",
        "attempt": 2}
    assert caught["task_id"] == "t1" and 'raise ValueError("boom")' in caught["traceback"]


def test_text_lines_end_with_the_fields(captured):
    logs.configure("info", "text", captured)
    token = activate(ctx("t9", 1))
    try:
        logging.getLogger("myapp").info("hi")
    finally:
        deactivate(token)
    line = captured.getvalue().strip()
    assert line.endswith(" INFO myapp: hi task_id=t9 task_name=myapp:job attempt=1")


def test_configure_again_replaces_and_setup_says_how(captured):
    logs.configure("warning", "json", captured)
    logs.configure("debug", "text", captured)
    assert logs.setup() == ("debug", "text")
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logs._ZqHandler)]
    assert len(ours) == 1
    with pytest.raises(ValueError, match="text, json"):
        logs.configure("info", "xml")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_storm_logs_a_few_tracebacks_then_how_many_it_left_out(captured):
    logs.configure("info", "json", captured)
    clock = Clock()
    task_log = logs.TaskLog(clock)
    try:
        raise RuntimeError("down")
    except RuntimeError as e:
        error = e
    for i in range(logs.STORM_TRACEBACKS + 5):
        task_log.failed(ctx(f"f{i}", 1), 0.5, error, retryable=True)
    task_log.succeeded(ctx("ok1"), 0.25)  # within the window: the count waits
    clock.now += logs.STORM_WINDOW
    task_log.succeeded(ctx("ok2"), 0.25)  # the window is over: the count is said
    records = lines(captured)
    failures = [r for r in records if r.get("error") == "RuntimeError"]
    assert [r["task_id"] for r in failures] == [f"f{i}" for i in range(logs.STORM_TRACEBACKS)]
    assert all(r["level"] == "ERROR" and r["retryable"] is True and r["runtime"] == 0.5
               and "RuntimeError: down" in r["traceback"] for r in failures)
    assert [(r.get("task_id"), r.get("suppressed")) for r in records[len(failures):]] == [
        ("ok1", None), (None, 5), ("ok2", None)]
    assert records[-1]["message"] == "task ok2 myapp:job succeeded (attempt 2) in 0.250 s"
    # a new window: failures are logged again
    task_log.failed(ctx("f-next", 3), 0.1, error, retryable=False)
    last = lines(captured)[-1]
    assert (last["task_id"], last["attempt"], last["retryable"]) == ("f-next", 3, False)
    assert "not retried" in last["message"]
