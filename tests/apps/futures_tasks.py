"""Tasks for the exception and concurrent.futures tests (issue 13): exceptions with args
of every kind, an app-defined exception class, and tasks held on gate files so a test
knows when one is running without sleeping."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


class AppError(Exception):
    """An exception class of an app module: the client has it imported (tests import this
    module), so it comes back as itself."""


class CodedError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class _Meta(type):
    pass


class MetaError(Exception, metaclass=_Meta):
    """A custom metaclass: its call could run any code, so the client does not rebuild it."""


def raise_value_error(*args: Any) -> None:
    raise ValueError(*args)


def raise_app_error(*args: Any) -> None:
    raise AppError(*args)


def raise_coded(code: int, detail: str) -> None:
    raise CodedError(code, detail)


def raise_meta() -> None:
    raise MetaError("meta")


def raise_system_exit() -> None:
    raise SystemExit(3)


def raise_with_object() -> None:
    raise ValueError(object(), 7)  # object() is not a value: it travels as its repr


def open_missing(path: str) -> None:
    with open(path):
        pass


def rename_missing(src: str, dst: str) -> None:
    os.rename(src, dst)


def gated(started: str, gate: str, value: Any = None, limit: float = 30.0) -> Any:
    """Touch `started`, then wait (bounded) until `gate` exists; return value."""
    Path(started).touch()
    deadline = time.monotonic() + limit
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.01)
    return value


def echo(value: Any) -> Any:
    return value


def fail_with(value: Any) -> Any:
    raise ValueError(value)


def gated_fail(gate: str, message: str, limit: float = 30.0) -> None:
    """Wait (bounded) until `gate` exists, then raise ValueError(message)."""
    deadline = time.monotonic() + limit
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    raise ValueError(message)
