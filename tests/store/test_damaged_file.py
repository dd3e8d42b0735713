"""A store file that is truncated, corrupt or not SQLite at all (issue 10, the fault
list): opening it fails with an error that names the file and the way out, and the file
is left byte for byte as it was (no checkpoint, no schema, no journal mode written), with
no -wal or -shm left behind by the attempt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from zq.core.tasks import TaskRecord
from zq.errors import ConfigError, StoreDamaged
from zq.store.sqlite import SqliteStore

PAGE = 4096


def good_store_bytes(folder: Path) -> bytes:
    """The bytes of a real, cleanly closed store of 3,000 tasks (~1 MB)."""
    path = folder / "zq.db"
    store = SqliteStore(path)
    for b in range(3):
        store.save(TaskRecord(f"t{b}-{i}", "app:f", os.urandom(64), seq=b * 1000 + i)
                   for i in range(1000))
        store.commit()
    store.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return good_store_bytes(tmp_path_factory.mktemp("good"))


def truncated(data: bytes) -> bytes:
    return data[:len(data) // 2]


def flipped(data: bytes) -> bytes:
    """512 bytes inverted at the start of a page in the middle (its b-tree header:
    damage SQLite can see; bytes flipped inside a payload it cannot, nor can zq)."""
    at = len(data) // 2 // PAGE * PAGE
    return data[:at] + bytes(b ^ 0xFF for b in data[at:at + 512]) + data[at + 512:]


def first_page_only(data: bytes) -> bytes:
    return data[:PAGE]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": truncated, "flipped": flipped, "first page only": first_page_only}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_store_is_refused_with_the_way_out_and_left_as_it_was(
        tmp_path: Path, good_store: bytes, how: str) -> None:
    path = tmp_path / "zq.db"
    damaged = DAMAGE[how](good_store)
    path.write_bytes(damaged)
    with pytest.raises(StoreDamaged) as caught:
        store = SqliteStore(path)
        store.load()  # (if the open missed it, the load must not)
    message = str(caught.value)
    assert str(path) in message and "damaged" in message
    assert "Restore it from a backup" in message and f"mv {path} {path}.damaged" in message
    assert path.read_bytes() == damaged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zq.db"]


def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "zq.db"
    junk = os.urandom(20_000)
    path.write_bytes(junk)
    with pytest.raises(ConfigError) as caught:
        SqliteStore(path)
    message = str(caught.value)
    assert str(path) in message and "not a SQLite database" in message
    assert "restore it from a backup" in message and "move the file away" in message
    assert path.read_bytes() == junk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zq.db"]


def test_the_good_store_opens(tmp_path: Path, good_store: bytes) -> None:
    """The control: the same bytes undamaged open, and all 3,000 tasks load."""
    path = tmp_path / "zq.db"
    path.write_bytes(good_store)
    store = SqliteStore(path)
    assert len(list(store.load())) == 3000
    store.close()


def test_a_foreign_sqlite_database_is_refused_without_a_byte_changed(tmp_path: Path) -> None:
    """Someone else's database given by mistake: not even switched to WAL mode."""
    import sqlite3
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="not a zq store"):
        SqliteStore(path)
    assert path.read_bytes() == before
