"""Progress bars on the user's terminal (rich): done/total, rate, ETA and failures for
map(..., progress=True) and zq.progress(futures), a task's own progress for
`zq submit --wait`. Quiet when the stream (stderr) is not a terminal."""

from __future__ import annotations

import concurrent.futures as cf
import sys
from typing import IO, Any, Callable, Iterable, Sequence

# What a bar shows, read again at each refresh: (done, total or None, failed).
Poll = Callable[[], tuple[float, "float | None", int]]

REFRESHES_PER_SECOND = 4


def _polled_progress(description: str, poll: Poll, stream: IO[str]) -> Any:
    """A rich Progress with one task, brought up to date from `poll` at each refresh, so
    the numbers move while the user's thread is blocked waiting for results. rich is
    imported here, when a bar is drawn, not with zq (workers never need it)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Completed units per second, as rich measures them over its speed window."""

        def render(self, task: Task) -> Text:
            speed = task.speed
            return Text("-/s" if speed is None else f"{speed:,.1f}/s")

    class FailedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            failed = task.fields.get("failed", 0)
            return Text(f"{failed} failed", style="red" if failed else "dim")

    class PolledProgress(Progress):
        def sync(self) -> None:
            done, total, failed = poll()
            self.update(self.task_ids[0], completed=done, total=total, failed=failed)

        def get_renderables(self) -> Any:
            try:
                self.sync()
            except Exception:  # a bar must never break the program it watches
                pass
            return super().get_renderables()

    progress = PolledProgress(
        TextColumn(description, markup=False), BarColumn(), MofNCompleteColumn(),
        RateColumn(), TextColumn("eta"), TimeRemainingColumn(), FailedColumn(),
        console=Console(file=stream), refresh_per_second=REFRESHES_PER_SECOND,
        transient=False)
    progress.add_task("", total=None, failed=0)
    return progress


class ProgressBar:
    """A live bar fed by `poll`; a context manager. Draws nothing unless `stream`
    (default stderr) is a terminal."""

    def __init__(self, description: str, poll: Poll, stream: IO[str] | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.active = _is_terminal(stream)
        self._progress: Any = None
        if self.active:
            self._progress = _polled_progress(description, poll, stream)

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Draw the last numbers and stop; idempotent."""
        progress, self._progress = self._progress, None
        if progress is not None:
            try:
                progress.sync()
            except Exception:
                pass
            progress.stop()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def progress(futures: Iterable[cf.Future], *, description: str = "tasks",
             stream: IO[str] | None = None) -> list[cf.Future]:
    """Show a bar (done/total, rate, ETA, failures) until every future is done, and
    return them. Draws nothing when stderr (or `stream`) is not a terminal."""
    futures = list(futures)

    def poll() -> tuple[float, float | None, int]:
        done = failed = 0
        for f in futures:
            if f.done():
                done += 1
                if f.cancelled() or f.exception(0) is not None:
                    failed += 1
        return done, len(futures), failed

    with ProgressBar(description, poll, stream):
        cf.wait(futures)
    return futures


def known_length(iterables: Sequence[Iterable[Any]]) -> int | None:
    """How many calls zip(*iterables) makes, if every iterable knows its length."""
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
