"""zq.metrics without sockets: what a turn's tap adds, label folding past the cap,
histogram buckets, the text a scrape would show, and the Grafana dashboard's names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zq.config import metrics_address
from zq.core.messages import State
from zq.core.metrics_tap import MetricsTap
from zq.core.tasks import TaskRecord
from zq.errors import ConfigError
from zq.metrics import OTHER, TASK_BUCKETS, Gauges, Histogram, LabelFold, Metrics, exported_names

ROOT = Path(__file__).resolve().parents[2]


def rec(tid: str, name: str = "app:f", queue: str = "default", *, started: float | None = None,
        updated: float = 0.0, waited: float | None = None,
        state: State = State.QUEUED) -> TaskRecord:
    return TaskRecord(tid, name, b"", queue=queue, started=started, updated=updated,
                      waited=waited, state=state)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What a scrape shows: (sample name, sorted labels) -> value, parsed back from the
    text format by prometheus-client's own parser."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_turn_counts_submitted_started_finished_and_retried() -> None:
    m = Metrics()
    a, b, c = rec("a"), rec("b"), rec("c", "app:g", "q2")
    tap = MetricsTap()
    tap.submitted.extend([[a, b], [c]])
    for t, wait in ((a, 0.002), (b, 0.3), (c, 0.0)):
        t.started, t.waited = 10.0, wait
    tap.started.append([a, b, c])
    a.updated, b.updated, c.updated = 10.004, 12.0, 10.0
    tap.finished.extend([(State.SUCCEEDED, [a]), (State.DEAD, [b])])
    tap.retried.append(c)
    m.apply(tap, commit_seconds=0.003)
    s = samples(m)
    assert s[("zq_tasks_submitted_total", (("queue", "default"), ("task", "app:f")))] == 2
    assert s[("zq_tasks_submitted_total", (("queue", "q2"), ("task", "app:g")))] == 1
    fin = "zq_tasks_finished_total"
    assert s[(fin, (("queue", "default"), ("state", "succeeded"), ("task", "app:f")))] == 1
    assert s[(fin, (("queue", "default"), ("state", "dead"), ("task", "app:f")))] == 1
    assert s[("zq_task_retries_total", (("queue", "q2"), ("task", "app:g")))] == 1
    rt = (("queue", "default"), ("task", "app:f"))
    assert s[("zq_task_runtime_seconds_count", rt)] == 2
    assert s[("zq_task_runtime_seconds_sum", rt)] == pytest.approx(2.004)
    assert s[("zq_task_runtime_seconds_bucket", (("le", "0.005"), *rt))] == 1
    assert s[("zq_task_runtime_seconds_bucket", (("le", "2.5"), *rt))] == 2
    wait = "zq_task_queue_wait_seconds"
    assert s[(f"{wait}_count", (("queue", "default"),))] == 2
    assert s[(f"{wait}_count", (("queue", "q2"),))] == 1
    assert s[(f"{wait}_bucket", (("le", "0.001"), ("queue", "default")))] == 0
    assert s[(f"{wait}_bucket", (("le", "0.005"), ("queue", "default")))] == 1
    assert s[("zq_store_commit_seconds_count", ())] == 1
    assert s[("zq_master_up", ())] == 1


def test_a_second_turn_adds_to_the_first() -> None:
    m = Metrics()
    for tid in ("a", "b", "c"):
        tap = MetricsTap()
        tap.submitted.append([rec(tid)])
        m.apply(tap, None)
    assert samples(m)[("zq_tasks_submitted_total",
                       (("queue", "default"), ("task", "app:f")))] == 3
    assert samples(m)[("zq_store_commit_seconds_count", ())] == 0


def test_a_task_cancelled_before_it_ran_counts_but_has_no_runtime() -> None:
    m = Metrics()
    tap = MetricsTap()
    tap.finished.append((State.CANCELLED, [rec("a", updated=5.0)]))
    m.apply(tap)
    s = samples(m)
    assert s[("zq_tasks_finished_total", (("queue", "default"), ("state", "cancelled"),
                                          ("task", "app:f")))] == 1
    assert not any(name.startswith("zq_task_runtime") for name, _ in s)


def test_a_wall_clock_stepped_back_counts_as_zero_not_negative() -> None:
    m = Metrics()
    tap = MetricsTap()
    t = rec("a", started=10.0, updated=9.0, waited=-1.0)
    tap.started.append([t])
    tap.finished.append((State.SUCCEEDED, [t]))
    m.apply(tap)
    assert m.runtime[("default", "app:f")].counts[0] == 1
    assert m.runtime[("default", "app:f")].sum == 0.0
    assert m.wait["default"].counts[0] == 1


def test_task_names_past_the_cap_fold_into_other() -> None:
    m = Metrics(cap=3)
    tap = MetricsTap()
    tap.submitted.append([rec(f"t{i}", f"app:f{i}") for i in range(10)])
    tap.submitted.append([rec("again", "app:f1")])  # a kept name stays itself
    m.apply(tap)
    s = samples(m)
    sub = {dict(labels)["task"]: v for (name, labels), v in s.items()
           if name == "zq_tasks_submitted_total"}
    assert sub == {"app:f0": 1, "app:f1": 2, "app:f2": 1, OTHER: 7}


def test_queue_names_past_the_cap_fold_too_in_counters_and_gauges() -> None:
    m = Metrics(cap=2)
    tap = MetricsTap()
    tap.submitted.append([rec(f"t{i}", queue=f"q{i}") for i in range(5)])
    m.apply(tap)
    m.set_gauges(Gauges(depth={f"q{i}": 1 for i in range(5)}))
    s = samples(m)
    depth = {dict(labels)["queue"]: v for (name, labels), v in s.items()
             if name == "zq_queue_depth"}
    assert depth == {"q0": 1, "q1": 1, OTHER: 3}
    queues = {dict(labels)["queue"] for (name, labels), _ in s.items()
              if name == "zq_tasks_submitted_total"}
    assert queues == {"q0", "q1", OTHER}


def test_a_name_spelled_other_is_not_given_a_slot_of_its_own() -> None:
    fold = LabelFold(cap=1)
    assert fold(OTHER) == OTHER
    assert fold("a") == "a"
    assert fold("b") == OTHER


def test_histogram_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    h = Histogram((1.0, 2.0))
    for v in (0.5, 1.0, 1.5, 2.0, 3.0):
        h.observe(v)
    assert h.buckets() == [("1.0", 2), ("2.0", 4), ("+Inf", 5)]
    assert h.sum == 8.0
    many = Histogram((1.0, 2.0))  # a batch at once: the same buckets
    many.observe_many([3.0, 1.0, 0.5, 2.0, 1.5])
    assert (many.buckets(), many.sum) == (h.buckets(), h.sum)


def test_gauges_show_what_was_set_last() -> None:
    m = Metrics()
    m.set_gauges(Gauges({"default": 5}, {"default": 2}, {"default": 1}))
    m.set_gauges(Gauges({"default": 0}, {"default": 0}, {"default": 1}))
    s = samples(m)
    assert s[("zq_queue_depth", (("queue", "default"),))] == 0
    assert s[("zq_tasks_running", (("queue", "default"),))] == 0
    assert s[("zq_workers", (("queue", "default"),))] == 1


def test_every_name_a_scrape_shows_is_an_exported_name() -> None:
    m = Metrics()
    tap = MetricsTap()
    t = rec("a", started=1.0, updated=2.0, waited=0.5)
    tap.submitted.append([t])
    tap.started.append([t])
    tap.finished.append((State.SUCCEEDED, [t]))
    tap.retried.append(t)
    m.apply(tap, 0.01)
    m.set_gauges(Gauges({"default": 0}, {"default": 0}, {"default": 1}))
    assert {name for name, _ in samples(m)} == exported_names()


def test_buckets_cover_a_no_op_and_an_hour() -> None:
    assert TASK_BUCKETS[0] <= 0.001 and TASK_BUCKETS[-1] >= 3600


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), (":9464", ("0.0.0.0", 9464)),
    ("[::1]:9464", ("::1", 9464)), ("localhost:0", ("localhost", 0))])
def test_metrics_address(text: str, expected: tuple[str, int]) -> None:
    assert metrics_address(text) == expected


@pytest.mark.parametrize("text", ["9464", "host:", "host:port", "host:70000"])
def test_a_bad_metrics_address_says_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        metrics_address(text)


def _dashboard_metric_names() -> set[str]:
    board = json.loads((ROOT / "examples" / "grafana-zq.json").read_text())
    exprs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query") and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(board)
    assert exprs, "the dashboard has no queries"
    return {name for e in exprs for name in re.findall(r"\bzq_[a-z_]+", e)}


def test_the_grafana_dashboard_queries_only_names_zq_exports() -> None:
    names = _dashboard_metric_names()
    assert names <= exported_names(), names - exported_names()
    # and it shows every family (a histogram by any of its series)
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exported_names()}
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert shown == families, families - shown


def test_a_batch_of_several_names_and_queues_counts_each_apart() -> None:
    m = Metrics()
    a = rec("a", "app:f", "q1", started=1.0, updated=1.5, waited=0.1)
    b = rec("b", "app:g", "q1", started=1.0, updated=3.0, waited=0.2)
    c = rec("c", "app:f", "q2", started=1.0, updated=1.25, waited=0.3)
    tap = MetricsTap()
    tap.started.append([a, b, c])
    tap.finished.append((State.SUCCEEDED, [a, b, c]))
    m.apply(tap)
    assert {k: h.sum for k, h in m.runtime.items()} == {
        ("q1", "app:f"): 0.5, ("q1", "app:g"): 2.0, ("q2", "app:f"): 0.25}
    assert {k: sum(h.counts) for k, h in m.wait.items()} == {"q1": 2, "q2": 1}
    assert m.finished == {("q1", "app:f", "succeeded"): 1, ("q1", "app:g", "succeeded"): 1,
                          ("q2", "app:f", "succeeded"): 1}


def test_a_task_without_a_known_start_counts_but_has_no_runtime() -> None:
    """A task restored from an older store (no start kept) may finish in a batch with
    others: counted, with no runtime and no wait, and the others' are kept."""
    m = Metrics()
    old = rec("old", updated=5.0)
    new = rec("new", started=4.0, updated=5.0, waited=1.0)
    tap = MetricsTap()
    tap.started.append([old, new])
    tap.finished.append((State.SUCCEEDED, [old, new]))
    m.apply(tap)
    assert m.finished == {("default", "app:f", "succeeded"): 2}
    assert sum(m.runtime[("default", "app:f")].counts) == 1
    assert m.runtime[("default", "app:f")].sum == 1.0
    assert sum(m.wait["default"].counts) == 1
