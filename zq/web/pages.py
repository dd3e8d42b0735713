"""The dashboard's HTML pages (Jinja2). Each page renders its live part from a fragment
template; `?partial=1` returns the fragment alone, which the page's script fetches again
when the event stream says something changed (never on a timer)."""

from __future__ import annotations

import time
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from zq.errors import ConnectionLost, Rejected, ZqError
from zq.web.data import Data
from zq.web.guard import set_csrf_cookie
from zq.web.live import DEPARTED_SECONDS, Live
from zq.web.params import task_filter

RECENT_SHOWN = 20  # latest events on the overview
STATES = ("pending", "queued", "running", "succeeded", "failed", "retrying", "dead",
          "cancelled")
SINCE_CHOICES = (("", "any time"), ("300", "last 5 minutes"), ("3600", "last hour"),
                 ("86400", "last day"))


def routes(data: Data, live: Live, templates: Jinja2Templates) -> list[Route]:
    templates.env.filters.update(when=when, ago=ago, seconds=seconds, took=took)
    templates.env.globals.update(STATES=STATES, SINCE_CHOICES=SINCE_CHOICES)

    async def render(request: Request, page: str, ask: Callable[[], dict[str, Any]]) -> Response:
        status_code = 200
        try:
            context = await run_in_threadpool(ask)
        except Rejected as e:
            status_code = 404 if str(e).startswith("unknown task id") else 409
            context = {"error": str(e)}
        except (ConnectionLost, ZqError) as e:
            status_code, context = 503, {"error": str(e)}
        partial = request.query_params.get("partial") == "1"
        name = f"_{page}.html" if partial else f"{page}.html"
        response = templates.TemplateResponse(
            request, name, {"page": page, "csrf": request.state.csrf, "live": live, **context},
            status_code=status_code)
        set_csrf_cookie(response, request)
        return response

    async def overview(request: Request) -> Response:
        def ask() -> dict[str, Any]:
            return {"status": data.status(), "queues": data.queues(),
                    "series": live.chart(time.time()),
                    "recent": list(live.recent)[-RECENT_SHOWN:][::-1]}
        return await render(request, "overview", ask)

    async def workers(request: Request) -> Response:
        departed = live.departed_workers(time.time())  # read on the loop that writes it
        return await render(request, "workers", lambda: {
            "workers": data.workers(departed), "now": time.time(),
            "departed_minutes": DEPARTED_SECONDS // 60})

    async def tasks(request: Request) -> Response:
        args = task_filter(request)
        if isinstance(args, Response):
            return args
        return await render(request, "tasks", lambda: {
            **data.tasks(**args), "filter": {k: request.query_params.get(k, "") for k in (
                "state", "queue", "name", "since")}})

    async def task(request: Request) -> Response:
        task_id = request.path_params["id"]
        return await render(request, "task", lambda: {
            "task": data.task(task_id, live.attempts.get(task_id, []))})

    async def schedules(request: Request) -> Response:
        return await render(request, "schedules", lambda: {"schedules": data.client.schedules()})

    return [Route("/", overview), Route("/workers", workers), Route("/tasks", tasks),
            Route("/tasks/{id}", task), Route("/schedules", schedules)]


def when(ts: Any) -> str:
    """A unix time as local date and time (to the millisecond: tasks are quick)."""
    if ts is None:
        return ""
    try:
        t = float(ts)
    except (TypeError, ValueError):
        return str(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"


def ago(seconds_ago: Any) -> str:
    try:
        return f"{float(seconds_ago):.1f}s ago"
    except (TypeError, ValueError):
        return ""


def took(finished: Any, started: Any) -> str:
    """finished - started in seconds, or '–' when either is unknown."""
    try:
        return f"{float(finished) - float(started):.3f}s"
    except (TypeError, ValueError):
        return "–"


def seconds(value: Any) -> str:
    if value is None:
        return ""
    try:
        return f"{float(value):.3f}s"
    except (TypeError, ValueError):
        return str(value)
