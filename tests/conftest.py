"""Make the repository root importable when zq is not installed in the environment; keep
each test's log handlers its own; no hypothesis deadlines."""

import logging
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.pg import database, pg_server  # noqa: E402,F401  (the session's PostgreSQL server, a database per test)
from zq.logs import _ZqHandler  # noqa: E402

# No per-example deadline: on a loaded machine one example can take a pause of hundreds
# of milliseconds that says nothing about the code (hypothesis then reports "Flaky").
settings.register_profile("zq", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("zq")


@pytest.fixture(autouse=True)
def _zq_log_handlers_removed():
    """A CLI command run in-process (typer's CliRunner) installs zq's log handler on
    the runner's stderr, which is closed once the command returns: later log lines in
    this worker process failed with "I/O operation on closed file". Remove the zq
    handlers a test installed, and give the root logger its level back."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    added = [h for h in root.handlers if isinstance(h, _ZqHandler) and h not in before]
    for handler in added:
        root.removeHandler(handler)
    if added:
        root.setLevel(level)
