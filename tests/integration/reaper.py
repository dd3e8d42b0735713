"""Run a command and report every process it leaves running (Linux).

    python -m tests.integration.reaper GRACE_SECONDS COMMAND [ARG...]

This process becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so whatever the
command starts, even in new sessions and even once orphaned, stays below it in the
process tree. After the command exits it waits up to GRACE_SECONDS for its descendants
to exit, kills (SIGKILL) and reaps the ones still there, and prints one JSON line on
stdout: {"rc": the command's exit code, "left": ["pid cmdline", ...]}. The command's own
output goes to stderr.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

from tests.integration.procs import descendants

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str]) -> int:
    grace, command = float(argv[0]), argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    rc = subprocess.call(command, stdout=sys.stderr)
    me = os.getpid()
    deadline = time.monotonic() + grace
    while True:
        _reap()
        left = descendants(me)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for p in left:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 10
    while descendants(me) and time.monotonic() < end:
        _reap()
        time.sleep(0.05)
    _reap()
    print(json.dumps({"rc": rc, "left": [str(p) for p in left]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
