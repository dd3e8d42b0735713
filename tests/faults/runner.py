"""Run a bench script from a test: bounded in time, and on a timeout stopped with SIGTERM
first, so it stops every process it started (SIGKILL would orphan them)."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.integration.harness import ROOT


def run_script(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / name), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        err += f"\n(timed out after {timeout} s; stopped)"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
