"""The dashboard's web application (Starlette): pages, the same data as JSON under /api,
actions as POSTs, and /api/events, the server-sent events every page listens to.

`create_app(client, ...)` takes a connected zq client: the dashboard is an ordinary
client of the master, and the master's loop knows nothing of it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from zq.bulk import retry_many
from zq.errors import ConnectionLost, Rejected, ZqError
from zq.web import pages
from zq.web.data import Data
from zq.web.detail import task_view
from zq.web.guard import Guard
from zq.web.live import Live, Reader
from zq.web.params import error as _error
from zq.web.params import integer as _int
from zq.web.params import task_filter

HERE = Path(__file__).parent
RETRY_STATES = ("failed", "dead", "cancelled")
PURGE_STATES = ("succeeded", "failed", "cancelled", "dead")
BULK_LIMIT = 10_000  # tasks one bulk retry may touch
OLDER = ("it speaks a protocol older than 1.5 (pause and resume need 1.5): remove the "
         "schedule and add it again instead")


@dataclass(frozen=True)
class Settings:
    """endpoint: the master's address, as shown; role: "admin" (every action offered)
    or "client" (reading and run-now only: the master refuses the rest to a client
    key anyway); token: required on every request when set."""

    endpoint: str = ""
    role: str = "admin"
    token: str | None = None
    keys: bool = False


def create_app(client: Any, settings: Settings | None = None,
               open_stream: Callable[[], Any] | None = None) -> Starlette:
    """The dashboard over `client`. open_stream() returns an unsubscribed
    zq.event_stream.EventStream: the one subscription that feeds every browser (None:
    no live updates)."""
    settings = settings or Settings()
    data = Data(client)
    live = Live()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        app.state.loop = loop  # serve() ends the event streams from its signal handler
        reader = Reader(open_stream, live, loop) if open_stream else None
        if reader is None:
            live.subscribed, live.why_not = False, "no event stream configured"
        else:
            reader.start()
        ticker = asyncio.create_task(_tick(live))
        try:
            yield
        finally:
            ticker.cancel()
            live.close()
            if reader is not None:
                await run_in_threadpool(reader.stop)

    app = Starlette(routes=pages.routes(data, live, templates) + _api(data, live, settings)
                    + [Mount("/static", StaticFiles(directory=str(HERE / "static")),
                             name="static")],
                    middleware=[Middleware(Guard, token=settings.token)], lifespan=lifespan)
    app.state.data, app.state.live, app.state.settings = data, live, settings
    return app


async def _tick(live: Live) -> None:
    while True:
        await asyncio.sleep(1.0 - time.time() % 1.0)  # on the second: the chart's buckets
        live.tick(time.time())


def _api(data: Data, live: Live, settings: Settings) -> list[Route]:
    async def status(request: Request) -> Response:
        st = await _ask(data.status)
        if isinstance(st, Response):
            return st
        return JSONResponse({**st, "endpoint": settings.endpoint, "role": settings.role,
                             "live": live.subscribed, "live_why_not": live.why_not})

    async def workers(request: Request) -> Response:
        departed = live.departed_workers(time.time())  # read on the loop that writes it
        return await _json(lambda: data.workers(departed))

    async def queues(request: Request) -> Response:
        return await _json(data.queues)

    async def tasks(request: Request) -> Response:
        args = task_filter(request)
        if isinstance(args, Response):
            return args
        return await _json(lambda: data.tasks(**args))

    async def task(request: Request) -> Response:
        task_id = request.path_params["id"]
        return await _json(lambda: data.task(task_id, live.attempts.get(task_id, [])))

    async def retry(request: Request) -> Response:
        return await _json(lambda: data.client.retry(request.path_params["id"]))

    async def cancel(request: Request) -> Response:
        task_id = request.path_params["id"]

        def cancel_then_get() -> Any:
            data.client.future(task_id).revoke()  # stops a running task too
            # answered after the CANCEL: the master saw it (its detail's bytes as text)
            return task_view(dict(data.client.get(task_id)))
        return await _json(cancel_then_get)

    async def schedules(request: Request) -> Response:
        rows = await _ask(data.client.schedules)
        if isinstance(rows, Response):
            return rows
        return JSONResponse({"schedules": rows, "pause_supported": pause_supported(rows)})

    async def run_now(request: Request) -> Response:
        return await _json(lambda: data.run_now(request.path_params["name"], settings.role))

    def schedule_action(change: Callable[[str], Any]) -> Callable[[Request], Any]:
        async def act(request: Request) -> Response:
            out = await _ask(lambda: change(request.path_params["name"]))
            if isinstance(out, Response) and out.status_code == 409 and older_master(out):
                return _error(501, f"not available from this master: {OLDER}")
            return out if isinstance(out, Response) else JSONResponse(out)
        return act

    async def bulk_retry(request: Request) -> Response:
        form = await _body(request)
        state = str(form.get("state") or "dead")
        if state not in RETRY_STATES:
            return _error(400, f"state must be one of {', '.join(RETRY_STATES)}")
        limit = _int(form.get("limit"), 1000)
        if limit is None or not 1 <= limit <= BULK_LIMIT:
            return _error(400, f"limit must be an integer from 1 to {BULK_LIMIT}")
        return await _json(lambda: retry_many(data.client, state, form.get("name") or None,
                                              form.get("queue") or None, limit))

    async def purge(request: Request) -> Response:
        form = await _body(request)
        state = str(form.get("state") or "succeeded")
        if state not in PURGE_STATES:
            return _error(400, f"state must be one of {', '.join(PURGE_STATES)}")
        try:
            older = float(form.get("older_than") or 0)
        except (TypeError, ValueError):
            older = -1.0
        if not 0 <= older < 1e10:
            return _error(400, "older_than must be a number of seconds >= 0")
        return await _json(lambda: data.client.purge(state, older))

    async def throughput(request: Request) -> Response:
        return JSONResponse({"series": live.chart(time.time()), "dropped": live.dropped})

    async def events(request: Request) -> Response:
        q = request.query_params  # ?task=ID: that task's events; ?all=1: every event
        browser = live.join(every=q.get("all") == "1", task=q.get("task") or None)

        async def stream() -> AsyncIterator[str]:
            try:
                yield f"retry: 2000\nevent: hello\ndata: {{\"live\": {_js(live.subscribed)}}}\n\n"
                while True:
                    message = await browser.queue.get()
                    if message is None:
                        return
                    yield message
            finally:
                live.leave(browser)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    return [
        Route("/api/status", status), Route("/api/workers", workers),
        Route("/api/queues", queues), Route("/api/tasks", tasks),
        Route("/api/tasks/{id}", task),
        Route("/api/tasks/{id}/retry", retry, methods=["POST"]),
        Route("/api/tasks/{id}/cancel", cancel, methods=["POST"]),
        Route("/api/schedules", schedules),
        Route("/api/schedules/{name}/run", run_now, methods=["POST"]),
        Route("/api/schedules/{name}/pause",
              schedule_action(lambda name: data.client.pause_schedule(name)), methods=["POST"]),
        Route("/api/schedules/{name}/resume",
              schedule_action(lambda name: data.client.resume_schedule(name)), methods=["POST"]),
        Route("/api/bulk/retry", bulk_retry, methods=["POST"]),
        Route("/api/bulk/purge", purge, methods=["POST"]),
        Route("/api/throughput", throughput), Route("/api/events", events),
    ]


def pause_supported(rows: list[dict[str, Any]]) -> bool | None:
    """Whether the master can pause schedules (protocol 1.5 lists `paused`); None when
    it lists none to tell by."""
    return ("paused" in rows[0]) if rows else None


def older_master(refused: Response) -> bool:
    """A 409 that is the master not knowing the query: older than protocol 1.5."""
    return b"unknown query" in bytes(refused.body)


async def _ask(call: Callable[[], Any]) -> Any:
    """call() in the thread pool; a zq error becomes the JSON error response."""
    try:
        return await run_in_threadpool(call)
    except Rejected as e:
        missing = str(e).startswith(("unknown task id", "no schedule named"))
        return _error(404 if missing else 409, str(e))
    except ConnectionLost as e:
        return _error(503, str(e))
    except (ZqError, LookupError, TimeoutError) as e:
        return _error(404 if isinstance(e, LookupError) else 502, str(e))


async def _json(call: Callable[[], Any]) -> Response:
    out = await _ask(call)
    return out if isinstance(out, Response) else JSONResponse(out)


async def _body(request: Request) -> dict[str, Any]:
    """A POST's fields: a JSON object or a form."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return dict(await request.form())


def _js(value: Any) -> str:
    return "null" if value is None else ("true" if value else "false")
