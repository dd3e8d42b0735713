"""Tasks that declare options (--app tests.apps.catalogue_tasks): the task catalogue
tests submit them by name only, and the declared queue and retries must still hold."""

from __future__ import annotations

from pathlib import Path

import zq


@zq.task(queue="cat", retries=2, retry_backoff=0.05, retry_backoff_max=0.1)
def third_time(folder: str) -> int:
    """Fails on its first two attempts; on the third, leaves done-<task id> in folder."""
    task = zq.current_task()
    if task.attempt < 3:
        raise RuntimeError(f"attempt {task.attempt} fails on purpose")
    (Path(folder) / f"done-{task.id}").write_text(str(task.attempt))
    return task.attempt


def plain(x: int) -> int:
    return x
