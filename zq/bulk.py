"""Actions on many tasks at once, as an ordinary client: `zq retry --state` and the
dashboard's bulk retry share this one."""

from __future__ import annotations

from typing import Any

from zq.errors import Rejected

RETRY_PAGE = 1000  # tasks listed per `tasks` query (the master's most)


def retry_many(client: Any, state: str, name: str | None, queue: str | None,
               limit: int) -> dict[str, list]:
    """Retry up to `limit` tasks in `state`, newest first: list them a page at a time and
    retry each. A task that changed state meanwhile (another retry, a purge) is skipped
    with the master's reason; one that fails again is not retried twice."""
    retried: list[str] = []
    skipped: list[dict] = []
    seen: set[str] = set()
    while len(retried) < limit:
        rows = client.tasks(state=state, queue=queue, name=name,
                            limit=min(RETRY_PAGE, limit - len(retried)))
        fresh = [r["id"] for r in rows if r["id"] not in seen]
        if not fresh:
            break
        for task_id in fresh:
            seen.add(task_id)
            try:
                client.retry(task_id)
            except Rejected as e:
                skipped.append({"id": task_id, "reason": str(e)})
            else:
                retried.append(task_id)
    return {"retried": retried, "skipped": skipped}
