"""Fixtures for integration tests: a Cluster of real zq processes, always cleaned up."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.harness import Cluster
from tests.integration.storm import Storm


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(c.logs())
        c.close()


@pytest.fixture
def storm(cluster: Cluster, tmp_path: Path) -> Storm:
    """A durable storm on the cluster, its runs logged in tmp_path (tests/integration/storm.py)."""
    return Storm(cluster, tmp_path / "runs")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
