"""An --app module for the allow-list tests: what it defines may run, what it imports
may not. Every import here is a way out that a task name must not reach."""

from __future__ import annotations

import dataclasses
import os  # noqa: F401  (the point: app:os.system must not resolve)
import time  # noqa: F401
from os import system  # noqa: F401
from os.path import join as joined  # noqa: F401

import zq
from tests.apps.worker_tasks import add as imported_add  # noqa: F401


def double(x):
    return 2 * x


def _private(x):
    return x


@zq.task(name="custom-name")
def custom(x):
    return x + 1


@zq.task(retries=1)
def decorated(x):
    return x


async def coro(x):
    return x


def gen(n):
    yield from range(n)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def method(self):
        return self.x

    @staticmethod
    def origin():
        return [0, 0]

    @classmethod
    def make(cls):
        return cls(0, 0)

    class Inner:
        pass


@dataclasses.dataclass
class Pair:
    a: int
    b: int


answer = 42
callable_instance = Point  # an alias: its __qualname__ is "Point", not "callable_instance"
lam = lambda x: x  # noqa: E731
