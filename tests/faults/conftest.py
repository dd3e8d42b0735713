"""Fixtures for fault tests: the integration tests' Cluster (always cleaned up, its logs
printed when a test fails) and a fault proxy in front of its master."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.faults.proxy import Proxy
from tests.integration.conftest import cluster, pytest_runtest_makereport  # noqa: F401
from tests.integration.harness import Cluster


@pytest.fixture
def proxy_of(cluster: Cluster) -> Iterator:  # noqa: F811
    """proxy_of() -> a started Proxy to the cluster's master port (one per call), closed
    after the test. Start the master first only if the peers must register at once."""
    made: list[Proxy] = []

    def make(seed: int = 0) -> Proxy:
        p = Proxy(("127.0.0.1", cluster.port), seed=seed).start()
        made.append(p)
        return p
    try:
        yield make
    finally:
        for p in made:
            p.close()
