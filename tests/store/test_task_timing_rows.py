"""Rows written by an older zq (before task owners, before task timing) still load:
what they lack loads as None. PostgreSQL reads rows with the same code (journal.read_all)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgpack
import pytest

from zq.core.messages import State
from zq.core.tasks import TaskRecord
from zq.store.journal import RECORD_FIELDS, read_all
from zq.store.sqlite import SqliteStore


def _stored(tmp_path: Path) -> Path:
    path = tmp_path / "zq.db"
    store = SqliteStore(path)
    store.save([TaskRecord("t", "app:f", b"p", state=State.SUCCEEDED, created=1.0,
                           updated=5.0, worker="w1", owner="k", started=2.0, waited=1.0)])
    store.commit()
    while store.compact(1000):  # folded into the task table, where old rows live
        pass
    store.close()
    return path


@pytest.mark.parametrize(("kept", "owner"), [(18, None), (19, "k")])
def test_a_row_from_an_older_zq_loads_without_timing(tmp_path: Path, kept: int,
                                                     owner: str | None) -> None:
    path = _stored(tmp_path)
    with sqlite3.connect(path) as db:
        (blob,) = db.execute("SELECT record FROM task WHERE id = 't'").fetchone()
        fields = msgpack.unpackb(blob, raw=False)
        assert len(fields) == len(RECORD_FIELDS)
        db.execute("UPDATE task SET record = ? WHERE id = 't'",
                   (msgpack.packb(fields[:kept], use_bin_type=True),))
    db.close()
    store = SqliteStore(path)
    (t,) = store.load()
    store.close()
    assert (t.owner, t.started, t.waited) == (owner, None, None)
    assert (t.worker, t.updated) == ("w1", 5.0)
    assert t.timing() == {"started": None, "finished": 5.0, "runtime": None,
                          "queue_wait": None}


def test_timing_round_trips_through_the_store(tmp_path: Path) -> None:
    store = SqliteStore(_stored(tmp_path))
    (t,) = store.load()
    store.close()
    assert (t.started, t.waited, t.worker) == (2.0, 1.0, "w1")
    assert t.timing() == {"started": 2.0, "finished": 5.0, "runtime": 3.0, "queue_wait": 1.0}


def test_a_row_of_unknown_length_is_refused_not_misread() -> None:
    """A row shorter than any zq wrote must not load with its fields shifted."""
    blob = msgpack.packb(["app:f", "default"], use_bin_type=True)
    with pytest.raises(ValueError):
        read_all([("t", 0, int(State.QUEUED), b"p", blob)])
