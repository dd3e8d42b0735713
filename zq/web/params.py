"""The query parameters pages and /api share, checked: a bad one is a 400 that says why."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def task_filter(request: Request) -> dict[str, Any] | Response:
    """The tasks query of a page or /api/tasks: state, queue, name, since (seconds),
    page, per_page."""
    q = request.query_params
    page, per_page = integer(q.get("page"), 1), integer(q.get("per_page"), 50)
    if page is None or per_page is None or page < 1 or per_page < 1:
        return error(400, "page and per_page must be integers >= 1")
    since: float | None = None
    if q.get("since"):
        try:
            since = float(q["since"])
        except ValueError:
            return error(400, "since must be a number of seconds")
    return {"state": q.get("state") or None, "queue": q.get("queue") or None,
            "name": q.get("name") or None, "since": since, "page": page, "per_page": per_page}


def integer(text: Any, default: int) -> int | None:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
