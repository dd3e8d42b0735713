"""Tie a child process's life to its parent's: the Linux parent-death signal.

`zq local` starts its master and workers with ``child_setup(signal.SIGTERM)`` as the
Popen ``preexec_fn``, so a ``kill -9`` of `zq local` still stops them. Elsewhere there is
no parent-death signal: a child outlives a parent killed with SIGKILL (any other way the
parent stops, it stops its children itself).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def find_prctl() -> Callable[..., int] | None:
    """libc's prctl, or None where there is none (not Linux, or no C library ctypes can
    open). Look it up before forking when the child will run no more Python than a
    preexec_fn: loading a library there is not safe."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(sig: int, parent: int, prctl: Callable[..., int] | None) -> bool:
    """In the child: have the kernel send `sig` when the parent exits. `parent` is the
    parent's pid as the parent knew it: if the child's parent is no longer that process,
    it died before the request took effect and the child exits now (a signal would still
    meet the parent's handlers in a preexec_fn). False where it cannot be armed."""
    if prctl is None or prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:
        os._exit(1)
    return True


def child_setup(sig: int) -> Callable[[], None]:
    """A Popen ``preexec_fn``: the child gets a process group of its own (a Ctrl-C at the
    terminal reaches only the parent, which stops its children in order) and, on Linux,
    receives `sig` when the parent exits, however it exits."""
    prctl = find_prctl()
    parent = os.getpid()

    def setup() -> None:  # runs in the child, between fork and exec
        os.setpgid(0, 0)
        die_with_parent(sig, parent, prctl)
    return setup
