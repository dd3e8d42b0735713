"""Tasks and objects for the code-shipping tests (tests/integration/test_ship_code.py):
a module-level task to show plain tasks still run by name, and a class whose bound
method and instances travel by value (the class itself by reference: importable here)."""

from __future__ import annotations


def add(a: int, b: int) -> int:
    return a + b


class Scaler:
    """Not a value (no dataclass): as an argument of a shipped call it is pickled."""

    def __init__(self, k: int) -> None:
        self.k = k

    def scale(self, x: int) -> int:
        return self.k * x
