"""EventHub.task_events (a batch's move, one filter per subscriber) must queue and drop
exactly what task_event, called for each task in turn, would: the same events in the
same order for every subscriber, whatever its filter and however full its window."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zq.core import events
from zq.core.events import TASK_KINDS, EventHub
from zq.core.tasks import TaskRecord

_sub = st.tuples(st.sampled_from((None, "default", "q2")),  # queue filter
                 st.sampled_from((None, "app:f", "app:g")),  # task name filter
                 st.one_of(st.none(), st.lists(st.sampled_from(TASK_KINDS), min_size=1)),
                 st.integers(-3, 40))  # room left in its window (below 0: over-full)
_tasks = st.lists(st.tuples(st.sampled_from(("app:f", "app:g")),
                            st.sampled_from(("default", "q2"))), max_size=40)


def _hub(subs: list[tuple[Any, ...]]) -> EventHub:
    hub = EventHub()
    for i, (queue, task, kinds, room) in enumerate(subs):
        hub.subscribe(bytes([i]), 0.0, queue, task, kinds, None)
        s = hub.subs[bytes([i])]
        s.sent = events.WINDOW - room  # that many sent and not yet acknowledged
    return hub


def _state(hub: EventHub) -> list[tuple[Any, ...]]:
    return [(s.rid, [(k, w, t.id, d) for k, w, t, d in s.pending], s.dropped,
             s.dropped_total) for s in hub.subs.values()]


@settings(max_examples=300, deadline=None)
@given(st.lists(_sub, max_size=4), st.lists(_tasks, max_size=3),
       st.sampled_from(TASK_KINDS))
def test_a_batch_queues_and_drops_what_one_task_at_a_time_would(
        subs: list[tuple[Any, ...]], batches: list[list[tuple[str, str]]], kind: str) -> None:
    one, many = _hub(subs), _hub(subs)
    n = 0
    for batch in batches:
        ts = []
        for name, queue in batch:
            ts.append(TaskRecord(f"t{n}", name, b"", queue=queue))
            n += 1
        for t in ts:
            one.task_event(kind, t, 5.0)
        many.task_events(kind, ts, 5.0)
    assert _state(many) == _state(one)
    assert [(rid, m.first, m.events, m.dropped) for rid, m in many.flush()] == \
        [(rid, m.first, m.events, m.dropped) for rid, m in one.flush()]
