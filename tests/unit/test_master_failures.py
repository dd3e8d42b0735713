"""A message whose handling raises (a bug, or input no check caught) is logged with the
peer and its traceback, at most five times a minute, the next line saying how many were
left out; every such peer is still answered, and the master goes on."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from zq.config import MasterConfig
from zq.core import messages as m
from zq.core.messages import Role
from zq.master import Master
from zq.transport import Received


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_are_logged_a_few_times_a_minute(monkeypatch: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    master = Master(MasterConfig(store="memory"))
    clock = master._failure_notes._clock = Clock()  # type: ignore[method-assign]
    answered: list[str] = []
    real_handle = master.core.handle

    def handle(event: Any) -> Any:
        if type(event).__name__ == "MessageReceived":
            raise ValueError("a check missed this")
        if type(event).__name__ == "HandlingFailed":
            answered.append(event.reason)
        return real_handle(event)

    monkeypatch.setattr(master.core, "handle", handle)
    try:
        def receive(n: int) -> None:
            for i in range(n):
                master._handle(Received(Role.WORKER, m.Heartbeat(), peer=b"peer%d" % i))

        with caplog.at_level(logging.ERROR, logger="zq.master"):
            receive(8)
            clock.now += 60.0
            receive(1)
        lines = [r for r in caplog.records if r.name == "zq.master"]
        assert len(lines) == 6 and all(r.exc_info for r in lines)
        assert "handling a HEARTBEAT from peer 7065657230 failed: ValueError: a check " \
               "missed this" in lines[0].getMessage()
        assert lines[-1].getMessage().endswith("(3 more failures since were not logged)")
        assert len(answered) == 9  # every peer is told, logged or not
        assert "could not handle this HEARTBEAT (ValueError" in answered[0]
    finally:
        master.store.close()
        master.ctx.term()
