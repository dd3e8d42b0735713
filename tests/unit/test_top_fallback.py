"""`zq top` against a master without the event stream (issue 14): the subscription is
refused, so the view runs on status counts alone instead of the command failing."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

import zq.event_stream
import zq.top
from zq import cli
from zq.cli import app
from zq.errors import Rejected


class _NoEventsStream:
    """What an older master gives a subscriber: a refusal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _NoEventsStream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def subscribe(self) -> dict[str, Any]:
        raise Rejected("unknown query kind 'events'")


def test_top_falls_back_to_status_counts_when_events_are_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def fake_client(*args: Any, **kwargs: Any) -> Iterator[object]:
        yield object()

    monkeypatch.setattr(cli, "_client", fake_client)
    monkeypatch.setattr(zq.event_stream, "EventStream", _NoEventsStream)
    monkeypatch.setattr(zq.top, "run", lambda client, where, every, **kw: runs.append(kw))
    result = CliRunner().invoke(app, ["top", "--connect", "tcp://127.0.0.1:1"])
    assert result.exit_code == 0, result.output
    assert runs == [{}]  # no stream: run() counts rates from status
    assert "no event stream" in result.output
