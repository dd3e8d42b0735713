"""`make demo` leaves nothing running (issue 10 #8): examples/demo.py (--quick: the same
steps on less work, kill -9 of a worker included) runs under tests/integration/reaper.py,
which keeps every process the demo starts below it, orphaned or not, and lists those
still running once the demo has exited."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.integration.harness import ROOT


def test_the_demo_leaves_no_process_running(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))  # its scratch dir
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.reaper", "15",
         sys.executable, str(ROOT / "examples" / "demo.py"), "--quick"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, done.stderr[-3000:]
    assert "all 12 results arrived: True" in done.stderr
    assert report["left"] == [], "\n".join(report["left"])
