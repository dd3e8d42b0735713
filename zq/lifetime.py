"""Tie a child process's life to its parent's: the Linux parent-death signal.

`zq local` starts its master and workers with ``child_setup(signal.SIGTERM)`` as the
Popen ``preexec_fn``, so a ``kill -9`` of `zq local` still stops them.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up now (in the parent: a preexec_fn should not load libraries);
    None where there is none (not Linux, or no C library ctypes can open)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def child_setup(sig: int) -> Callable[[], None]:
    """A Popen ``preexec_fn``: the child gets a process group of its own (a Ctrl-C at the
    terminal reaches only the parent, which stops its children in order) and, on Linux,
    receives `sig` when the parent exits, however it exits. Elsewhere there is no
    parent-death signal: a child outlives a parent killed with SIGKILL (any other way
    the parent stops, it stops its children itself)."""
    prctl = _prctl()
    parent = os.getpid()

    def setup() -> None:  # runs in the child, between fork and exec: nothing fancy here
        os.setpgid(0, 0)
        if prctl is not None and prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before the request took effect
                os._exit(1)  # (a signal now would meet the parent's handlers, not exec's)
    return setup
