"""Where the master keeps task state: the Store interface and a factory.

A store is bytes-in/bytes-out over TaskRecords. The master calls save()/update()/delete()
any number of times in a loop turn, then commit() once: everything since the last
commit becomes durable together (group commit). load() at start-up gives every record
kept; get() one of them later.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol

from zq.core.tasks import TaskRecord


class Store(Protocol):
    durable: bool

    def load(self) -> Iterator[TaskRecord]:
        """Every committed task, in submission order (by seq)."""
        ...

    def save(self, records: Iterable[TaskRecord]) -> None:
        """Insert or replace these tasks (all fields) in the pending transaction."""
        ...

    def update(self, records: Iterable[TaskRecord]) -> None:
        """Tasks saved before: every field but the payload and seq, which never change
        after the submit (cheaper than save for large payloads). Unknown ids are skipped."""
        ...

    def delete(self, ids: Iterable[str]) -> None:
        ...

    def get(self, task_id: str) -> TaskRecord | None:
        """One committed task by id, for results older than what the master keeps in
        memory."""
        ...

    def get_meta(self, key: str) -> Any:
        """A small value the master keeps across restarts (schedules, epochs), or None."""
        ...

    def set_meta(self, key: str, value: Any) -> None:
        ...

    def commit(self) -> None:
        """Make everything since the last commit durable, in one transaction."""
        ...

    def behind(self) -> bool:
        """The deferred upkeep is more than the store should carry (memory, the work of
        an open): the master then calls compact() every turn, busy or not."""
        ...

    def compact(self, limit: int) -> bool:
        """Do up to `limit` tasks' worth of deferred upkeep (the SQLite store folds its
        journal), a bounded slice; True while some is left. The master calls it when it
        is quiet, and every turn while the store is behind(). A commit never does it."""
        ...

    def close(self) -> None:
        ...


def open_store(spec: str, sync: str = "normal") -> Store:
    """'memory' for a volatile store, else the path of a SQLite file (sync: see
    zq.store.sqlite)."""
    if spec == "memory":
        from zq.store.memory import MemoryStore
        return MemoryStore()
    from zq.store.sqlite import SqliteStore
    return SqliteStore(spec, sync=sync)
