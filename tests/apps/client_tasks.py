"""Task functions the client tests submit; the fake master runs them in-process."""

from __future__ import annotations

from typing import Any, Iterator

import zq


class CustomError(Exception):
    """Not a built-in: the client must raise zq.TaskError for it."""


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> list:
    return [list(args), kwargs]


def fail_value(message: str) -> None:
    raise ValueError(message)


def fail_custom(message: str) -> None:
    raise CustomError(message)


def count(n: int) -> Iterator[int]:
    """A generator task: streams 0..n-1 and returns n."""
    yield from range(n)
    return n


@zq.task(queue="special", priority=3, retries=2, timeout=7, retry_on=(ValueError,))
def decorated(x: Any) -> Any:
    return x


def slow(x: Any) -> Any:
    """Never run by the fake master on its own: tests settle it by hand."""
    return x
