"""The invariants every fault test checks afterwards (shared/reference/protocol-research.md
§7): I1 every accepted task ends in a final state, I2 exactly one recorded result per
task, I3 no result for a task never accepted, I4 every task ran at least once, with the
extra runs counted. Runs are counted from what the workers really did (a log file the
task appends to), never from what the master believes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Iterable

import zq

FINAL = {"succeeded", "failed", "cancelled", "dead"}


def runs(path: Path) -> Counter:
    """How many times each tag ran, from the file tests.apps.e2e_tasks.log_run appends to."""
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line)


def _get(client: zq.Client, tid: str) -> dict:
    """One task's record; a refusal by the master's query budget (a get answers up to
    ~5 KiB since 1.5, and thousands are asked in a row) is waited out, up to 30 s."""
    deadline = time.monotonic() + 30.0
    while True:
        try:
            return client.get(tid)
        except zq.Rejected as e:
            if "too many queries" not in str(e) or time.monotonic() > deadline:
                raise AssertionError(f"I1: the master lost accepted task {tid}: {e}") from None
            time.sleep(0.05)  # the budget refills per second


def check_tasks(client: zq.Client, accepted: Iterable[str], ran: Counter | None = None,
                tags: dict[str, str] | None = None) -> int:
    """I1-I3 for the ids in `accepted` against what the master records, and I4 against
    `ran` for the tasks in `tags` (tags[id] is the log_run tag of each; without tags,
    every accepted task, tagged with its id). Returns the number of extra runs
    (at-least-once reruns), for the caller to bound."""
    accepted = set(accepted)
    held = sum(client.status()["counts"].values())
    assert held == len(accepted), \
        f"I2/I3: the master holds {held} tasks, {len(accepted)} were accepted"
    rows = [_get(client, tid) for tid in accepted]
    unfinished = [(r["id"], r["state"]) for r in rows if r["state"] not in FINAL]
    assert not unfinished, f"I1: tasks not in a final state: {unfinished[:5]}"
    if ran is None:
        return 0
    tag_of = tags if tags is not None else {tid: tid for tid in accepted}
    never = [tid for tid, tag in tag_of.items() if ran[tag] == 0]
    assert not never, f"I4: accepted tasks that never ran: {never[:5]}"
    return sum(ran[tag] - 1 for tag in tag_of.values())
