"""Worker logs as an operator reads them (issue 14), from real master and worker
processes: every finished task leaves an INFO line with id, name, attempt and runtime,
every failure an ERROR line with its traceback, and every record logged inside a task
carries task_id, task_name and attempt, in every pool; JSON lines parse, text lines end
with the fields."""

from __future__ import annotations

import json

import pytest

import zq
from tests.integration.harness import Cluster, Proc, wait_until

APP = "tests.apps.log_tasks"


def records(proc: Proc) -> list[dict]:
    """The JSON log lines a process wrote (its stderr; nothing else goes there)."""
    out = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def wait_record(proc: Proc, what: str, **fields) -> dict:
    def found() -> dict | None:
        return next((r for r in records(proc)
                     if all(r.get(k) == v for k, v in fields.items())), None)
    return wait_until(found, 20, f"a log record {what} with {fields}")


@pytest.mark.parametrize("pool", ["process", "thread", "async"])
def test_each_task_leaves_a_line_and_lines_inside_a_task_carry_its_fields(cluster: Cluster,
                                                                           pool: str):
    cluster.start_master("memory", "--log-format", "json")
    worker = cluster.start_worker(APP, name="w1", pool=pool, concurrency=1,
                                  extra=("--log-format", "json"))
    name = f"{APP}:say_async" if pool == "async" else f"{APP}:say"
    with zq.Client(cluster.endpoint) as client:
        ok = client.submit(name, "hello")
        assert ok.result(timeout=20) == "hello"
        bad = client.options(retries=1, retry_backoff=0.01).submit(f"{APP}:fail", "broken")
        with pytest.raises(ValueError):
            bad.result(timeout=20)

    inside = wait_record(worker, "from the task", logger="myapp.work", task_id=ok.id)
    assert (inside["message"], inside["task_name"], inside["attempt"], inside["level"]) == (
        "inside: hello", name, 1, "WARNING")
    done = wait_record(worker, "of the finished task", logger="zq.tasks", task_id=ok.id)
    assert (done["level"], done["task_name"], done["attempt"]) == ("INFO", name, 1)
    assert isinstance(done["runtime"], float) and done["runtime"] >= 0
    assert done["message"].startswith(f"task {ok.id} {name} succeeded (attempt 1) in ")

    for attempt in (1, 2):  # the retry, then the last attempt
        failed = wait_record(worker, "of the failure", logger="zq.tasks", task_id=bad.id,
                             attempt=attempt)
        assert (failed["level"], failed["error"], failed["retryable"]) == (
            "ERROR", "ValueError", True)
        assert failed["traceback"].splitlines()[-1] == "ValueError: broken"
        assert 'raise ValueError(message)' in failed["traceback"]
        assert "runner.py" not in failed["traceback"]  # the task's own frames only
    master_lines = cluster.master.output().splitlines()
    assert master_lines and all(set(json.loads(ln)) >= {"time", "level", "logger", "message"}
                                for ln in master_lines)


def test_text_lines_end_with_the_task_fields(cluster: Cluster):
    cluster.start_master()
    worker = cluster.start_worker(APP, name="w1", pool="thread", concurrency=1,
                                  extra=("--log-format", "text"))
    with zq.Client(cluster.endpoint) as client:
        ok = client.submit(f"{APP}:say", "plain")
        assert ok.result(timeout=20) == "plain"

    def line() -> str | None:
        return next((ln for ln in worker.output().splitlines()
                     if " WARNING myapp.work: inside: plain " in ln), None)
    found = wait_until(line, 20, "the task's own line")
    assert found.endswith(f"colour=green task_id={ok.id} task_name={APP}:say attempt=1")


def test_a_failure_storm_logs_only_a_few_tracebacks(cluster: Cluster):
    from zq.logs import STORM_TRACEBACKS
    cluster.start_master()
    worker = cluster.start_worker(APP, name="w1", pool="thread", concurrency=4,
                                  extra=("--log-format", "json", "--log-level", "info"))
    n = 3 * STORM_TRACEBACKS
    with zq.Client(cluster.endpoint) as client:
        fatal = client.options(retries=3, retry_on=["ValueError"])  # a KeyError is not
        futures = [fatal.submit(f"{APP}:fail_fatal", str(i)) for i in range(n)]
        for f in futures:
            with pytest.raises(KeyError):
                f.result(timeout=30)
    # Every failure has been reported to the master, so each logged line is written.
    failures = [r for r in records(worker) if r.get("error") == "KeyError"]
    # All n failed within one window (seconds, here); at most a window's share logged.
    assert len(failures) == STORM_TRACEBACKS or (
        len(failures) < n and any(r.get("suppressed") for r in records(worker))), failures
    assert all(r["retryable"] is False for r in failures)


@pytest.mark.parametrize("pool, how", [
    ("thread", "timed out after 0.3 s; its thread is abandoned"),
    ("process", "ran past its 0.3 s limit; killing pool child"),
    ("async", "timed out after 0.3 s; the coroutine was cancelled"),
])
def test_a_task_past_its_time_limit_is_an_error_line_with_its_fields(cluster: Cluster,
                                                                      pool: str, how: str):
    cluster.start_master()
    worker = cluster.start_worker(APP, name="w1", pool=pool, concurrency=1,
                                  extra=("--log-format", "json"))
    name = f"{APP}:nap" if pool == "async" else f"{APP}:nap_sync"
    with zq.Client(cluster.endpoint) as client:
        late = client.options(timeout=0.3).submit(name, 30)
        with pytest.raises(zq.TaskError, match="TaskTimeout"):
            late.result(timeout=30)
    line = wait_record(worker, "of the time limit", logger="zq.tasks", task_id=late.id)
    assert (line["level"], line["task_name"], line["attempt"]) == ("ERROR", name, 1)
    assert how in line["message"], line


def test_a_task_whose_pool_child_dies_is_an_error_line_with_its_fields(cluster: Cluster):
    cluster.start_master()
    worker = cluster.start_worker(APP, name="w1", pool="process", concurrency=1,
                                  extra=("--log-format", "json"))
    with zq.Client(cluster.endpoint) as client:
        doomed = client.submit(f"{APP}:crash")
        line = wait_record(worker, "of the lost task", logger="zq.tasks", task_id=doomed.id,
                           attempt=1)
    assert (line["level"], line["task_name"]) == ("ERROR", f"{APP}:crash")
    assert "was lost: pool child" in line["message"]
    assert "exited with code 13 while running it" in line["message"]
