"""The master-core state machine of test_master_core_machine, with every worker named the
same: each fake worker process sends its own session token (kept across its
reconnects), so the master must keep them apart by token alone (issue 9, finding 6).
Every guarantee the base machine checks after each step must still hold."""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, settings

from tests.property.test_master_core_machine import FakeWorker, MasterCoreMachine
from zq.core import messages as m

SHARED_NAME = "dup"


def token_of(w: FakeWorker) -> str:
    """One token per fake worker process: the same in every HELLO it sends."""
    return hashlib.sha256(w.name.encode()).hexdigest()[:32]


class SameNameMachine(MasterCoreMachine):
    def _hello(self, w: FakeWorker, running: list[str]) -> None:
        w.held = {tid: w.held[tid] for tid in running}
        w.via_task = set()
        w.alive = True
        self.adopted[w.rid] = set(running)
        self.s.on_hello(w.rid, m.Hello(SHARED_NAME, "host", 1, list(w.queues), w.credit,
                                       "thread", w.credit, list(running), token_of(w)))
        self._flush()


SameNameMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestSameNameMachine = SameNameMachine.TestCase
