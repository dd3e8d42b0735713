"""open_store: `memory`, a file path, or a URL of a known scheme; anything that looks like
a URL of another scheme is a clear error, not a SQLite file under a folder named
`mysql:` (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zq.errors import ConfigError
from zq.store import open_store, redact
from zq.store.memory import MemoryStore
from zq.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec, scheme", [("mysql://x", "mysql"),
                                          ("redis://localhost:6379/0", "redis"),
                                          ("file:///tmp/zq.db", "file"),
                                          ("SQLite://zq.db", "SQLite")])
def test_an_unknown_url_scheme_is_a_clear_error_and_creates_nothing(
        spec: str, scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        open_store(spec)
    assert str(caught.value) == (f"unknown store URL scheme {scheme!r}; use memory, a file "
                                 "path, or postgresql://...")
    assert list(tmp_path.iterdir()) == []  # no folder named "mysql:" or the like


def test_memory_and_file_paths_still_open_their_stores(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    for spec in (tmp_path / "a.db", tmp_path / "dir:with:colons" / "b.db"):
        store = open_store(str(spec))
        try:
            assert isinstance(store, SqliteStore) and spec.exists()
        finally:
            store.close()


def test_the_master_refuses_an_unknown_scheme_at_the_command_line(tmp_path: Path) -> None:
    """The real command: a non-zero exit with the message, and nothing created."""
    done = subprocess.run(
        [sys.executable, "-m", "zq", "master", "--bind", "tcp://127.0.0.1:0",
         "--store", "mysql://x"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=60)
    assert done.returncode != 0
    assert "unknown store URL scheme 'mysql'; use memory, a file path, or postgresql://" in (
        done.stderr + done.stdout)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec, shown", [
    ("postgresql://zq:s3cret@db:5432/zq", "postgresql://zq:***@db:5432/zq"),
    ("postgres://u:p@h/d?sslmode=require", "postgres://u:***@h/d?sslmode=require"),
    ("postgresql://u@h/d", "postgresql://u@h/d"),
    ("postgresql://h/d?password=x&sslmode=require", "postgresql://h/d?password=***&sslmode=require"),
    ("/var/lib/zq.db", "/var/lib/zq.db"),
    ("memory", "memory")])
def test_a_store_url_is_logged_without_its_password(spec: str, shown: str) -> None:
    assert redact(spec) == shown
