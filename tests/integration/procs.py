"""What processes are running, from /proc (Linux): who is in a session, who descends from
whom. For tests that check a process leaves nothing behind when it dies."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    session: int
    state: str  # R, S, D, T, Z, ...
    cmdline: str

    def __str__(self) -> str:
        return f"{self.pid} (parent {self.ppid}, {self.state}) {self.cmdline[:160]}"


def _read(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None  # gone meanwhile
    # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
    fields = stat[stat.rindex(")") + 2:].split()
    return ProcInfo(pid, int(fields[1]), int(fields[3]), fields[0], cmdline)


def processes() -> list[ProcInfo]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _read(int(name))
            if info is not None:
                found.append(info)
    return found


def alive_in_session(session: int) -> list[ProcInfo]:
    """Processes of this session that are not zombies (a zombie runs nothing; its
    parent, if that is in the session too, is listed)."""
    return [p for p in processes() if p.session == session and p.state != "Z"]


def session_of(pid: int) -> int | None:
    info = _read(pid)
    return None if info is None else info.session


def descendants(root: int) -> list[ProcInfo]:
    """Processes below root in the parent tree, zombies excluded."""
    procs = processes()
    children: dict[int, list[ProcInfo]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    found, todo = [], [root]
    while todo:
        for p in children.get(todo.pop(), []):
            if p.pid != root:
                found.append(p)
                todo.append(p.pid)
    return [p for p in found if p.state != "Z"]
