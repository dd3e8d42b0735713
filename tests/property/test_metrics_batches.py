"""zq.metrics reads a turn's batches a whole batch at a time, with shortcuts for the
usual batch (one queue, one task name, every start known, all values in one bucket).
Whatever the batches hold, the numbers must be those of observing each task alone."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zq.core.messages import FINAL_STATES, State
from zq.core.metrics_tap import MetricsTap
from zq.core.tasks import TaskRecord
from zq.metrics import FINAL_LABELS, TASK_BUCKETS, Histogram, Metrics

# Values on the bucket bounds and just either side, any in between, negative (a wall
# clock stepped back) and unknown (None: a record from an older store).
_near_bounds = [v for b in TASK_BUCKETS for v in (b, b * (1 - 1e-12), b * (1 + 1e-12))]
_seconds = st.one_of(st.sampled_from(_near_bounds), st.floats(-5.0, 5000.0))
_task = st.tuples(st.sampled_from(("app:f", "app:g")), st.sampled_from(("default", "q2")),
                  st.one_of(st.none(), st.floats(1000.0, 2000.0)),  # started
                  _seconds,  # runtime, or when it never started its updated - 1000
                  st.one_of(st.none(), _seconds))  # waited


def _record(i: int, name: str, queue: str, started: float | None, took: float,
            waited: float | None) -> TaskRecord:
    updated = (started if started is not None else 1000.0) + took
    # each name and queue a string of its own, as each task's comes off the wire
    return TaskRecord(f"t{i}", "".join(name), b"", queue="".join(queue), started=started,
                      updated=updated, waited=waited)


@st.composite
def _batches(draw: Any) -> list[list[TaskRecord]]:
    """Batches of tasks; half of them of one name and queue with every start known (as
    the master's usually are), the others anything."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        rows = draw(st.lists(_task, max_size=12))
        if rows and draw(st.booleans()):
            name, queue = rows[0][0], rows[0][1]
            rows = [(name, queue, 1500.0 if s is None else s, took, w)
                    for _, _, s, took, w in rows]
        out.append([_record(i, *row) for i, row in enumerate(rows)])
    return out


def _one_by_one(tap: MetricsTap) -> dict[str, Any]:
    """The reference: every task observed alone, as a per-task loop would."""
    submitted: dict[tuple[str, str], int] = {}
    finished: dict[tuple[str, str, str], int] = {}
    runtime: dict[tuple[str, str], Histogram] = {}
    wait: dict[str, Histogram] = {}
    for batch in tap.submitted:
        for t in batch:
            submitted[(t.queue, t.name)] = submitted.get((t.queue, t.name), 0) + 1
    for batch in tap.started:
        for t in batch:
            h = wait.setdefault(t.queue, Histogram(TASK_BUCKETS))
            if t.waited is not None:
                h.observe(max(t.waited, 0.0))
    for state, batch in tap.finished:
        for t in batch:
            key = (t.queue, t.name, FINAL_LABELS[state])
            finished[key] = finished.get(key, 0) + 1
            if t.started is not None:
                h = runtime.setdefault((t.queue, t.name), Histogram(TASK_BUCKETS))
                h.observe(max(t.updated - t.started, 0.0))
    return {"submitted": submitted, "finished": finished,
            "runtime": {k: h.counts for k, h in runtime.items() if any(h.counts)},
            "wait": {k: h.counts for k, h in wait.items() if any(h.counts)},
            "runtime_sum": {k: h.sum for k, h in runtime.items() if any(h.counts)},
            "wait_sum": {k: h.sum for k, h in wait.items() if any(h.counts)}}


def _batched(m: Metrics) -> dict[str, Any]:
    return {"submitted": m.submitted, "finished": m.finished,
            "runtime": {k: h.counts for k, h in m.runtime.items() if any(h.counts)},
            "wait": {k: h.counts for k, h in m.wait.items() if any(h.counts)},
            "runtime_sum": {k: h.sum for k, h in m.runtime.items() if any(h.counts)},
            "wait_sum": {k: h.sum for k, h in m.wait.items() if any(h.counts)}}


def _close(a: dict[Any, float], b: dict[Any, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k]))
                                        for k in a)


@settings(max_examples=200, deadline=None)
@given(_batches(), _batches(), _batches(),
       st.lists(st.sampled_from(sorted(FINAL_STATES, key=lambda s: s.label)),
                min_size=5, max_size=5))
def test_a_turn_in_batches_counts_what_each_task_alone_would(
        submitted: list[list[TaskRecord]], started: list[list[TaskRecord]],
        finished: list[list[TaskRecord]], states: list[State]) -> None:
    tap = MetricsTap()
    tap.submitted.extend(submitted)
    tap.started.extend(started)
    tap.finished.extend(zip(states, finished))
    expected = _one_by_one(tap)
    m = Metrics()
    m.apply(tap)
    got = _batched(m)
    for part in ("submitted", "finished", "runtime", "wait"):
        assert got[part] == expected[part], part
    assert _close(got["runtime_sum"], expected["runtime_sum"])
    assert _close(got["wait_sum"], expected["wait_sum"])
