"""`zq dashboard`: a web dashboard that is an ordinary client of the master (Starlette,
uvicorn and Jinja2: `pip install 'zq[web]'`). `create_app` builds the application over a
connected client; `serve` runs it."""

from __future__ import annotations

from typing import Any, Callable

from zq.web.app import Settings, create_app

__all__ = ["Settings", "create_app", "serve"]


def serve(client: Any, host: str, port: int, settings: Settings,
          open_stream: Callable[[], Any] | None = None) -> None:
    """Serve the dashboard until SIGINT or SIGTERM (uvicorn's handlers). Open event
    streams are ended at shutdown, so it never waits on a browser."""
    import uvicorn
    app = create_app(client, settings, open_stream)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # End every browser's event stream first: uvicorn waits for open responses.
            loop = getattr(app.state, "loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(app.state.live.close)
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=2, access_log=False)
    Server(config).run()
