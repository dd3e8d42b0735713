"""zq/core is pure (STYLE.md §1): no I/O, no clock, no threads, and no imports from the
shells above it. Checked on the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "zq" / "core"

# I/O, clocks and concurrency: the loops own these, and pass `now` in.
FORBIDDEN = {"zmq", "sqlite3", "time", "threading", "asyncio", "socket", "select",
             "selectors", "subprocess", "multiprocessing", "signal", "concurrent"}
# Layers above the core: dependencies point one way (DESIGN.md §1).
SHELLS = {"zq.transport", "zq.master", "zq.worker", "zq.pools", "zq.client", "zq.cli",
          "zq.store"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from zq import worker` names a shell module too
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def core_files() -> list[Path]:
    files = sorted(CORE.glob("*.py"))
    assert files, f"no modules found in {CORE}"
    return files


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_core_module_imports_no_io(path: Path) -> None:
    bad = []
    for line, name in imported_modules(path):
        top = name.split(".")[0]
        if top in FORBIDDEN or any(name == s or name.startswith(s + ".") for s in SHELLS):
            bad.append(f"{path.name}:{line} imports {name}")
    assert not bad, "zq/core must stay pure:\n" + "\n".join(bad)


def test_the_check_catches_violations(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom time import monotonic\n"
                      "def f():\n    import zmq.asyncio\n    from zq import worker\n")
    names = {name for _, name in imported_modules(sample)}
    assert {"time", "zmq.asyncio", "zq.worker"} <= names
