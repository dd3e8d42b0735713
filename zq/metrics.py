"""The master's Prometheus metrics (`zq master --metrics HOST:PORT`): counters and
histograms fed once per loop turn from the core's MetricsTap, gauges refreshed at most
once a second, served at /metrics by prometheus-client's HTTP server in its own threads.

A scrape copies the numbers under a lock held for microseconds and formats them outside
it: a slow or stalled scraper never holds the master's loop.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import Any

from zq.config import metrics_address
from zq.core.messages import FINAL_STATES, State
from zq.core.metrics_tap import MetricsTap
from zq.errors import ConfigError

# Distinct task names (and queue names) that get their own label value; past the cap
# they fold into OTHER, so a client inventing names cannot grow the scrape for ever.
MAX_LABELS = 100
OTHER = "other"
# Seconds. Tasks run from microseconds (a no-op) to hours; waits likewise.
TASK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0, 60.0, 300.0, 900.0, 3600.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                  2.5)
FINAL_LABELS = {s: s.label for s in FINAL_STATES}
GAUGE_PERIOD = 1.0  # seconds between two readings of the gauges by the master


# A turn's batches are read with comprehensions, one per batch and stage, which also
# check that the batch is of one queue (and task name): a batch nearly always is, and
# then nothing else walks it. In CPython 3.11 a slot read in a comprehension costs half
# a map(attrgetter) call; the earlier version (several map passes per batch) cost the
# master ~0.5 us per no-op task, this one ~0.1 (bench/README.md, "The cost of --metrics").


def _by_key(batch: list[Any]) -> list[tuple[tuple[str, str], list[Any]]]:
    """The batch's tasks by (queue, name), in the order each key first appears."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for t in batch:
        groups.setdefault((t.queue, t.name), []).append(t)
    return list(groups.items())


def _by_queue(batch: list[Any]) -> list[tuple[str, list[Any]]]:
    groups: dict[str, list[Any]] = {}
    for t in batch:
        groups.setdefault(t.queue, []).append(t)
    return list(groups.items())


def _runtimes(tasks: list[Any]) -> list[float]:
    """Seconds from each task's lease to its final state; none for a task that never
    ran (cancelled while queued, or restored from an older store: no start kept)."""
    try:
        return [t.updated - t.started for t in tasks]
    except TypeError:
        return [t.updated - t.started for t in tasks if t.started is not None]


class LabelFold:
    """A label's values: the first `cap` distinct ones are kept, later ones are OTHER."""

    def __init__(self, cap: int = MAX_LABELS) -> None:
        self.cap = cap
        self._kept: set[str] = set()

    def __call__(self, value: str) -> str:
        kept = self._kept
        if value in kept:
            return value
        if len(kept) < self.cap and value != OTHER:
            kept.add(value)
            return value
        return OTHER


class Histogram:
    """Counts per bucket (not cumulative: bucket i holds bounds[i-1] < v <= bounds[i],
    the last one above every bound), and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, values: list[float]) -> None:
        """observe() each value (below 0, a wall clock stepped back: 0). Sorts `values`
        in place (the caller's own list). A None among them: TypeError, nothing counted."""
        if not values:
            return
        values.sort()  # then one bisect per bound crossed, not one per value
        total = sum(values)  # before anything is counted (None: TypeError)
        if values[0] < 0.0:
            values[:] = [v if v > 0.0 else 0.0 for v in values]
            total = sum(values)
        bounds, counts = self.bounds, self.counts
        first = bisect_left(bounds, values[0])  # the buckets of the least and the
        last = bisect_left(bounds, values[-1])  # greatest value: usually the same one
        below = 0
        for i in range(first, last):
            upto = bisect_right(values, bounds[i])  # values <= bounds[i]
            counts[i] += upto - below
            below = upto
        counts[last] += len(values) - below
        self.sum += total

    def copy(self) -> Histogram:
        h = Histogram(self.bounds)
        h.counts, h.sum = list(self.counts), self.sum
        return h

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, as the text format wants them, ending at +Inf."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip((*map(_bound, self.bounds), "+Inf"), self.counts):
            total += n
            out.append((bound, total))
        return out


def _bound(b: float) -> str:
    return repr(float(b))


class Gauges:
    """Per queue: tasks QUEUED, tasks leased to workers, workers serving it."""

    __slots__ = ("depth", "running", "workers")

    def __init__(self, depth: dict[str, int] | None = None,
                 running: dict[str, int] | None = None,
                 workers: dict[str, int] | None = None) -> None:
        self.depth = depth or {}
        self.running = running or {}
        self.workers = workers or {}


class Metrics:
    """The numbers. apply() and set_gauges() run in the master's thread; collect() in a
    scrape's. Only apply and the copy in collect hold the lock."""

    def __init__(self, cap: int = MAX_LABELS) -> None:
        self.task_label = LabelFold(cap)
        self.queue_label = LabelFold(cap)
        self._lock = threading.Lock()
        self.submitted: dict[tuple[str, str], int] = {}
        self.finished: dict[tuple[str, str, str], int] = {}
        self.retries: dict[tuple[str, str], int] = {}
        self.runtime: dict[tuple[str, str], Histogram] = {}
        self.wait: dict[str, Histogram] = {}
        self.commit = Histogram(COMMIT_BUCKETS)
        self.gauges = Gauges()  # replaced whole, never changed in place

    # --- the master's side -------------------------------------------------------------

    def apply(self, tap: MetricsTap | None, commit_seconds: float | None = None) -> None:
        """One turn's changes: the tap's tasks and the time the commit took (None: no
        commit this turn)."""
        with self._lock:
            if tap:
                self._count_submitted(tap.submitted)
                self._observe_started(tap.started)
                self._count_finished(tap.finished)
                self._count_retried(tap.retried)
            if commit_seconds is not None:
                self.commit.observe(commit_seconds)

    def set_gauges(self, gauges: Gauges) -> None:
        """The latest gauges; folded here, so a scrape only reads them."""
        self.gauges = Gauges(*(self._fold_queues(d) for d in (
            gauges.depth, gauges.running, gauges.workers)))

    def _fold_queues(self, per_queue: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for queue, n in per_queue.items():
            q = self.queue_label(queue)
            out[q] = out.get(q, 0) + n
        return out

    def _labels(self, queue: str, name: str) -> tuple[str, str]:
        return self.queue_label(queue), self.task_label(name)

    def _count_submitted(self, batches: list[list[Any]]) -> None:
        submitted = self.submitted
        for batch in batches:
            if not batch:
                continue
            first = batch[0]
            queue, name = first.queue, first.name
            if len(batch) == 1 or len(
                    [t for t in batch if t.name == name and t.queue == queue]) == len(batch):
                groups = [((queue, name), batch)]
            else:
                groups = _by_key(batch)
            for (queue, name), tasks in groups:
                key = self._labels(queue, name)
                submitted[key] = submitted.get(key, 0) + len(tasks)

    def _observe_started(self, batches: list[list[Any]]) -> None:
        for batch in batches:
            if not batch:
                continue
            queue = batch[0].queue
            waited = [t.waited for t in batch if t.queue == queue]
            if len(waited) == len(batch):
                self._observe_wait(queue, waited)
            else:
                for queue, tasks in _by_queue(batch):
                    self._observe_wait(queue, [t.waited for t in tasks])

    def _observe_wait(self, queue: str, waited: list[float | None]) -> None:
        q = self.queue_label(queue)
        h = self.wait.get(q)
        if h is None:
            h = self.wait[q] = Histogram(TASK_BUCKETS)
        try:
            h.observe_many(waited)  # type: ignore[arg-type]
        except TypeError:  # a None: restored from an older store, the wait not known
            h.observe_many([w for w in waited if w is not None])

    def _count_finished(self, batches: list[tuple[State, list[Any]]]) -> None:
        for state, batch in batches:
            if not batch:
                continue
            label = FINAL_LABELS[state]
            first = batch[0]
            queue, name = first.queue, first.name
            try:  # the runtimes, and whether the batch is of one queue and name
                took = [t.updated - t.started for t in batch
                        if t.name == name and t.queue == queue]
            except TypeError:  # some never ran: _runtimes below leaves them out
                took = []
            if len(took) == len(batch):
                self._finished(queue, name, label, len(batch), took)
                continue
            for (queue, name), tasks in _by_key(batch):
                self._finished(queue, name, label, len(tasks), _runtimes(tasks))

    def _finished(self, queue: str, name: str, label: str, n: int,
                  took: list[float]) -> None:
        key = self._labels(queue, name)
        fkey = (*key, label)
        self.finished[fkey] = self.finished.get(fkey, 0) + n
        if not took:
            return
        h = self.runtime.get(key)
        if h is None:
            h = self.runtime[key] = Histogram(TASK_BUCKETS)
        h.observe_many(took)

    def _count_retried(self, tasks: Iterable[Any]) -> None:
        retries = self.retries
        for t in tasks:
            key = self._labels(t.queue, t.name)
            retries[key] = retries.get(key, 0) + 1

    # --- the scraper's side ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the numbers, taken under the lock (a few microseconds
        per label set); formatting happens outside it."""
        with self._lock:
            return {"submitted": dict(self.submitted), "finished": dict(self.finished),
                    "retries": dict(self.retries),
                    "runtime": {k: h.copy() for k, h in self.runtime.items()},
                    "wait": {k: h.copy() for k, h in self.wait.items()},
                    "commit": self.commit.copy(), "gauges": self.gauges}

    def collect(self) -> Iterator[Any]:
        """prometheus-client's Collector interface: the metric families of a scrape."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
        s = self.snapshot()
        c = CounterMetricFamily("zq_tasks_submitted", "Tasks submitted to the master",
                                labels=("queue", "task"))
        for key, n in sorted(s["submitted"].items()):
            c.add_metric(key, n)
        yield c
        c = CounterMetricFamily("zq_tasks_finished", "Tasks that reached a final state",
                                labels=("queue", "task", "state"))
        for key, n in sorted(s["finished"].items()):
            c.add_metric(key, n)
        yield c
        c = CounterMetricFamily("zq_task_retries", "Failed attempts to be retried",
                                labels=("queue", "task"))
        for key, n in sorted(s["retries"].items()):
            c.add_metric(key, n)
        yield c
        h = HistogramMetricFamily("zq_task_runtime_seconds", "Seconds from a task's lease "
                                  "to its final result (its last attempt)",
                                  labels=("queue", "task"))
        for key, hist in sorted(s["runtime"].items()):
            h.add_metric(key, hist.buckets(), hist.sum)
        yield h
        h = HistogramMetricFamily("zq_task_queue_wait_seconds", "Seconds an attempt waited "
                                  "queued before its lease", labels=("queue",))
        for queue, hist in sorted(s["wait"].items()):
            h.add_metric([queue], hist.buckets(), hist.sum)
        yield h
        commit = s["commit"]
        yield HistogramMetricFamily("zq_store_commit_seconds", "Seconds a store commit "
                                    "took (one per loop turn with changes)",
                                    buckets=commit.buckets(), sum_value=commit.sum)
        g: Gauges = s["gauges"]
        for name, doc, values in (
                ("zq_queue_depth", "Tasks queued, waiting for a worker", g.depth),
                ("zq_tasks_running", "Tasks leased to workers", g.running),
                ("zq_workers", "Workers serving the queue", g.workers)):
            family = GaugeMetricFamily(name, doc, labels=("queue",))
            for queue, n in sorted(values.items()):
                family.add_metric([queue], n)
            yield family
        yield GaugeMetricFamily("zq_master_up", "1 while the master serves", value=1)


def read_gauges(core: Any) -> Gauges:
    """The gauges from the master core's own books (in the master's thread): QUEUED
    tasks per queue, tasks leased per queue, workers per queue they serve. Costs one
    look per leased task: the master calls it at most every GAUGE_PERIOD seconds."""
    depth = dict(core.depth)
    running: dict[str, int] = {}
    workers: dict[str, int] = {}
    tasks = core.tasks
    for w in core.workers.values():
        for queue in w.queues:
            workers[queue] = workers.get(queue, 0) + 1
            depth.setdefault(queue, 0)
            running.setdefault(queue, 0)
    for queue in depth:
        running.setdefault(queue, 0)
    for tid in core.lease:
        t = tasks.get(tid)
        if t is not None:
            running[t.queue] = running.get(t.queue, 0) + 1
    return Gauges(depth, running, workers)


def exported_names() -> set[str]:
    """Every sample name a scrape may show (what a dashboard may query)."""
    names = {"zq_tasks_submitted_total", "zq_tasks_finished_total", "zq_task_retries_total",
             "zq_queue_depth", "zq_tasks_running", "zq_workers", "zq_master_up"}
    for h in ("zq_task_runtime_seconds", "zq_task_queue_wait_seconds",
              "zq_store_commit_seconds"):
        names.update({f"{h}_bucket", f"{h}_sum", f"{h}_count"})
    return names


class MetricsServer:
    """prometheus-client's HTTP server (a thread per request) serving one Metrics."""

    def __init__(self, metrics: Metrics, address: str) -> None:
        from prometheus_client import CollectorRegistry, start_http_server
        host, port = metrics_address(address)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics)  # type: ignore[arg-type]
        try:
            self._httpd, self._thread = start_http_server(port, host, registry=registry)
        except OSError as e:
            raise ConfigError(f"--metrics {address}: cannot listen there ({e}); pick "
                              "a free port or another address") from e
        bound = self._httpd.server_address
        self.address = f"{bound[0]!s}:{bound[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)
