"""Tasks and value classes for the values tests (--app tests.apps.values_tasks): the
classes must be importable on both sides, so they live here, not in a test file."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import zq


class Color(enum.Enum):
    RED = "r"
    GREEN = (0, 1)  # a member's value may itself be a tuple; members travel by name


class Perm(enum.Flag):
    R = 1
    W = 2
    X = 4


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any = 0


@dataclasses.dataclass
class Box:
    items: list
    label: str = "box"
    hidden: int = dataclasses.field(default=7, init=False)


class Plain:
    """A class that is not a dataclass: calling it as a task builds an instance that
    cannot travel back (the task fails with SerializationError)."""

    def __init__(self, v: Any) -> None:
        self.v = v


@zq.task(name="values:Made")
@dataclasses.dataclass
class Made:
    """A dataclass registered under a custom name."""

    n: int


def echo(value: Any) -> Any:
    return value


def mul(a: Any, b: Any) -> Any:
    return a * b


def pair() -> tuple:
    return (0, 1)


def kinds(*args: Any, **kwargs: Any) -> list:
    """The type names of the arguments as the worker received them."""
    return [type(a).__name__ for a in args] + [f"{k}={type(v).__name__}" for k, v in kwargs.items()]


class Holder:
    def method(self) -> int:
        return 1

    @staticmethod
    def static(v: Any) -> Any:
        return v

    @classmethod
    def klass(cls) -> str:
        return cls.__name__


def power(a: int, b: int) -> int:
    return a ** b


def ext(code: int) -> Any:
    """A result with an extension type of the given code (for the hostile-input tests)."""
    import msgpack
    return [msgpack.ExtType(code, b"")]


async def aecho(value: Any) -> Any:
    """echo as a coroutine: the async pool decodes and encodes these itself."""
    return value
