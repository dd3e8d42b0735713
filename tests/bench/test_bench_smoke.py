"""Every bench script runs end to end at --quick size and prints its table: this keeps
them from rotting. Nothing here looks at a number (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["throughput", "latency", "submit_rate", "scale", "payload", "memory", "security",
           "stall", "workflows", "round_trip_trace"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs(script: str, tmp_path: Path) -> None:
    env = dict(os.environ, ZQ_BENCH_RESULTS=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / f"{script}.py"), "--quick",
                           "--runs", "1"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=110)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) <= {"-", " "}]
    assert rules and rules[0] > 0 and len(lines) > rules[0] + 1, proc.stdout  # a table
    assert "\n| " in (tmp_path / f"{script}.md").read_text()  # the markdown table
    if _has_matplotlib():
        assert (tmp_path / f"{script}.png").stat().st_size > 0


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_share_of_a_zero_base_is_not_a_crash() -> None:
    # A --quick security run once measured 0 CPU ticks for the keyless case and died on
    # ZeroDivisionError after printing nothing: the note's ratios go through share().
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from common import share
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert share(0.2, 0.0) == "n/a"
    assert share(3.0, 2.0) == "150%"


def test_the_memory_profile_runs_and_attributes_the_bytes() -> None:
    """bench/memory_profile.py (a profile, not a table): bytes per task by allocation
    site, and the restart's two parts timed."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "memory_profile.py"),
                           "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "tasks.py:" in proc.stdout  # the task record's line, with its bytes
    assert "open + load():" in proc.stdout and "restore():" in proc.stdout
