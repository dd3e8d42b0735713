"""Progress bars as a person sees them (issue 14): map(..., progress=True),
zq.progress(futures) and `zq submit --wait` draw a bar on a terminal (a pseudo-terminal
here, read back), against real master and worker processes, and write nothing on stderr
when it is a pipe."""

from __future__ import annotations

import subprocess

from tests.integration.harness import ROOT, Cluster
from tests.integration.ptys import PtyProc, plain, python, zq_cli

APP = "tests.apps.progress_tasks"

MAP = """
import sys, zq
with zq.Client(sys.argv[1]) as client:
    out = list(client.map("tests.apps.progress_tasks:square", range(40), progress=True))
print("sum", sum(out))
"""

FUTURES = """
import sys, zq
with zq.Client(sys.argv[1]) as client:
    futures = [client.submit("tests.apps.progress_tasks:fail_on", x, 3) for x in range(6)]
    done = zq.progress(futures)
print("done", sum(f.done() for f in done), "failed", sum(f.exception() is not None for f in done))
"""


def start(cluster: Cluster) -> None:
    cluster.start_master("memory")
    cluster.start_worker(APP, name="pw1", pool="thread", concurrency=4)


def run_on_pty(argv: list[str]) -> tuple[str, str]:
    """Run to the end with stderr on a terminal; (screen, stdout)."""
    proc = PtyProc(argv, stdout_pipe=True)
    try:
        code = proc.wait(60)
        out = proc.popen.stdout.read().decode() if proc.popen.stdout else ""
        assert code == 0, plain(proc.raw)
        return plain(proc.raw), out
    finally:
        proc.close()


def run_piped(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_map_with_progress_draws_done_total_and_failures_on_a_terminal(cluster: Cluster):
    start(cluster)
    screen, out = run_on_pty(python(MAP) + [cluster.endpoint])
    assert out.strip() == f"sum {sum(x * x for x in range(40))}"
    assert f"{APP}:square" in screen
    assert "40/40" in screen
    assert "0 failed" in screen
    assert "/s" in screen  # the rate column


def test_map_with_progress_writes_nothing_when_stderr_is_a_pipe(cluster: Cluster):
    start(cluster)
    done = run_piped(python(MAP) + [cluster.endpoint])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sum {sum(x * x for x in range(40))}"
    assert done.stderr == ""


def test_zq_progress_counts_failed_futures(cluster: Cluster):
    start(cluster)
    screen, out = run_on_pty(python(FUTURES) + [cluster.endpoint])
    assert out.strip() == "done 6 failed 1"
    assert "6/6" in screen
    assert "1 failed" in screen


def test_zq_progress_is_quiet_on_a_pipe(cluster: Cluster):
    start(cluster)
    done = run_piped(python(FUTURES) + [cluster.endpoint])
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "done 6 failed 1", "")


def test_submit_wait_shows_the_tasks_own_progress_while_it_runs(cluster: Cluster, tmp_path):
    start(cluster)
    gate = tmp_path / "gate"
    proc = PtyProc(zq_cli("submit", "--connect", cluster.endpoint, "--wait",
                          f"{APP}:halfway", str(gate)), stdout_pipe=True)
    try:
        # The task said progress(1, 2) and waits for the gate: the bar shows it now.
        proc.read_until(lambda s: "1/2" in s, 30, "the task's progress 1/2")
        gate.write_text("")
        code = proc.wait(30)
        assert proc.popen.stdout is not None
        assert (code, proc.popen.stdout.read().decode().strip()) == (0, '"through"')
    finally:
        proc.close()


def test_submit_wait_is_quiet_on_a_pipe(cluster: Cluster, tmp_path):
    start(cluster)
    gate = tmp_path / "gate"
    gate.write_text("")
    done = run_piped(zq_cli("submit", "--connect", cluster.endpoint, "--wait",
                            f"{APP}:halfway", str(gate)))
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, '"through"', "")
