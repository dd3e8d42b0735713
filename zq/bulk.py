"""Actions on many tasks at once, as an ordinary client: `zq retry --state` and the
dashboard's bulk retry share this one."""

from __future__ import annotations

from typing import Any

from zq.errors import Rejected

RETRY_PAGE = 1000  # tasks listed per `tasks` query (the master's most)


def retry_many(client: Any, state: str, name: str | None, queue: str | None,
               limit: int) -> dict[str, Any]:
    """Retry up to `limit` tasks in `state`, newest first, filtered by task name and
    queue: one `retry_many` query (protocol 1.4), which the master runs in one turn.
    Returns {count, retried: [id], skipped: [{id, reason}], more}: `more` says the
    master stopped before it had looked at every task. A master before 1.4 does not
    know the query: then the tasks are listed and retried one by one, as before, and a
    task that changed state meanwhile is skipped with the master's reason."""
    args: dict[str, Any] = {"state": state, "limit": limit}
    if name is not None:
        args["name"] = name
    if queue is not None:
        args["queue"] = queue
    try:
        body = client.query("retry_many", **args)
    except Rejected as e:
        if not str(e).startswith("unknown query 'retry_many'"):
            raise
        return _retry_one_by_one(client, state, name, queue, limit)
    return {"count": body["count"], "retried": body["retried"], "skipped": [],
            "more": body["more"]}


def _retry_one_by_one(client: Any, state: str, name: str | None, queue: str | None,
                      limit: int) -> dict[str, Any]:
    """For a master before 1.4: list the tasks a page at a time and retry each; one
    that fails again is not retried twice."""
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
    return {"count": len(retried), "retried": retried, "skipped": skipped,
            "more": len(retried) >= limit}
