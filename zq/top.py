"""`zq top`: a live terminal view of the cluster (rich), refreshed from the master's
`status` and `tasks` queries: workers, queues, rates, the longest-running tasks. `render`
is a pure function of what the master answered; `run` is the loop (keys, refresh)."""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from typing import IO, Any, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

LONGEST_SHOWN = 10  # running tasks listed, longest first
RECENT_SHOWN = 8  # latest events listed
FINISHED_KINDS = frozenset({"succeeded", "failed", "dead", "cancelled"})
RUNNING_ASKED = 500  # running tasks asked for per refresh (the master caps a query's rows)


@dataclass(frozen=True)
class Snapshot:
    """What one refresh asked the master: its status and its running tasks, and when
    (wall clock: task times are the master's wall clock)."""

    status: dict[str, Any]
    running: list[dict[str, Any]]
    wall: float


def rate(before: Snapshot | None, after: Snapshot) -> float | None:
    """Tasks finished per second between two snapshots (the counts of final states),
    or None for the first one."""
    if before is None or after.wall <= before.wall:
        return None
    final = ("succeeded", "failed", "cancelled", "dead")

    def finished(s: Snapshot) -> int:
        return sum(int(s.status.get("counts", {}).get(k, 0)) for k in final)

    return max(0, finished(after) - finished(before)) / (after.wall - before.wall)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def render(snap: Snapshot, finished_rate: float | None, endpoint: str = "",
           recent: list[str] | None = None) -> Group:
    """The screen for one snapshot: a header line, then workers, queues, the
    longest-running tasks and the latest events (lines, when subscribed)."""
    st = snap.status
    counts = st.get("counts", {})
    workers = st.get("workers", [])
    shown_rate = "-" if finished_rate is None else f"{finished_rate:,.1f}"
    header = Text.assemble(
        ("zq top", "bold"), f"  master {st.get('master_id', '?')} {endpoint}  ",
        (f"{shown_rate} tasks/s now", "bold green"),
        f"  {float(st.get('throughput', 0.0)):,.1f}/s over 10 s  ",
        "  ".join(f"{k} {v}" for k, v in counts.items() if v), "   (q quits)")

    wt = Table(title="workers", expand=True)
    for col in ("worker", "host", "pid", "pool", "queues", "running", "last seen"):
        wt.add_column(col)
    for w in sorted(workers, key=lambda w: str(w.get("name"))):
        wt.add_row(str(w.get("name")), str(w.get("host")), str(w.get("pid")),
                   str(w.get("pool")), ",".join(map(str, w.get("queues", []))),
                   f"{w.get('running', 0)}/{w.get('concurrency', 0)}",
                   f"{float(w.get('last_seen', 0.0)):.1f}s ago")

    running_by_queue: dict[str, int] = {}
    for t in snap.running:
        running_by_queue[t["queue"]] = running_by_queue.get(t["queue"], 0) + 1
    names = set(st.get("queues", {})) | set(running_by_queue) | {
        q for w in workers for q in w.get("queues", [])}
    qt = Table(title="queues", expand=True)
    for col in ("queue", "waiting", "running", "workers"):
        qt.add_column(col)
    for q in sorted(names):
        serving = sum(1 for w in workers if q in w.get("queues", []))
        qt.add_row(q, str(st.get("queues", {}).get(q, 0)), str(running_by_queue.get(q, 0)),
                   str(serving))

    lt = Table(title=f"longest running (of {len(snap.running)})", expand=True)
    for col in ("task", "name", "queue", "worker", "attempt", "running for", "progress"):
        lt.add_column(col)
    oldest = sorted(snap.running, key=lambda t: float(t.get("updated") or snap.wall))
    for t in oldest[:LONGEST_SHOWN]:
        progress = t.get("progress")
        lt.add_row(str(t["id"]), str(t["name"]), str(t["queue"]), str(t.get("worker") or ""),
                   str(t.get("attempt")),
                   _duration(snap.wall - float(t.get("updated") or snap.wall)),
                   f"{progress[0]:g}/{progress[1]:g}" if progress else "")
    if recent is None:
        return Group(header, wt, qt, lt)
    return Group(header, wt, qt, lt, Text("latest events", style="bold"),
                 Text("\n".join(recent[-RECENT_SHOWN:]) or "-"))


def snapshot(client: Any) -> Snapshot:
    status = client.status()
    running = client.query("tasks", state="running", limit=RUNNING_ASKED)
    return Snapshot(status, running, time.time())


def run(client: Any, endpoint: str, interval: float = 1.0,
        stdin: IO[str] | None = None, console: Console | None = None,
        ask: Callable[[Any], Snapshot] = snapshot, stream: Any = None,
        describe: Callable[[dict[str, Any]], str] = str) -> None:
    """Refresh every `interval` seconds until `q` (or Ctrl-C, or end of input). With an
    event `stream` (zq.event_stream), the rate counts the finished tasks' events since
    the last refresh and the latest events are listed; without, the rate comes from the
    counts of two status answers. A query that fails raises (the CLI says why)."""
    stdin = sys.stdin if stdin is None else stdin
    keys = _Keys(stdin)
    before: Snapshot | None = None
    recent: list[str] = []
    with keys, Live(console=console or Console(), auto_refresh=False,
                    screen=False) as live:
        while True:
            snap = ask(client)
            shown = rate(before, snap)
            if stream is not None:
                events = stream.drain()
                recent = (recent + [describe(e) for e in events])[-RECENT_SHOWN:]
                if before is not None and snap.wall > before.wall:
                    done = sum(1 for e in events if e.get("kind") in FINISHED_KINDS)
                    shown = done / (snap.wall - before.wall)
            live.update(render(snap, shown, endpoint, recent if stream else None),
                        refresh=True)
            before = snap
            if keys.quit_within(interval):
                return


class _Keys:
    """Single keys from a terminal (cbreak mode, restored on exit); `q` quits."""

    def __init__(self, stdin: IO[str]) -> None:
        self.stdin = stdin
        self.fd: int | None = None
        self.saved: Any = None

    def __enter__(self) -> _Keys:
        try:
            fd = self.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            return self
        self.fd = fd
        if os.isatty(fd):
            import termios
            import tty
            self.saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None and self.fd is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def quit_within(self, seconds: float) -> bool:
        """Wait up to `seconds` for a key; True when it is q (or input ended)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.fd is None:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return False
            data = os.read(self.fd, 64)
            if not data or b"q" in data.lower():
                return True
        return False
