"""Where the master keeps task state: the Store interface and a factory.

A store is bytes-in/bytes-out over TaskRecords. The master calls save()/delete() any
number of times in a loop turn, then commit() once: everything since the last commit
becomes durable together (group commit). load() at start-up gives every record kept.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol

from zq.core.tasks import TaskRecord


class Store(Protocol):
    durable: bool

    def load(self) -> Iterator[TaskRecord]:
        """Every task kept, in submission order (by seq)."""
        ...

    def save(self, records: Iterable[TaskRecord]) -> None:
        """Insert or replace these tasks (all fields) in the pending transaction."""
        ...

    def update(self, records: Iterable[TaskRecord]) -> None:
        """Tasks saved before: their payload, name, queue, key and seq never change, so
        only the rest is written (cheaper than save, which writes every field)."""
        ...

    def delete(self, ids: Iterable[str]) -> None:
        ...

    def get(self, task_id: str) -> TaskRecord | None:
        """One task by id, for results older than what the master keeps in memory."""
        ...

    def get_meta(self, key: str) -> Any:
        """A small value the master keeps across restarts (schedules, epochs), or None."""
        ...

    def set_meta(self, key: str, value: Any) -> None:
        ...

    def commit(self) -> None:
        """Make everything since the last commit durable, in one transaction."""
        ...

    def close(self) -> None:
        ...


def open_store(spec: str) -> Store:
    """'memory' for a volatile store, else the path of a SQLite file."""
    if spec == "memory":
        from zq.store.memory import MemoryStore
        return MemoryStore()
    from zq.store.sqlite import SqliteStore
    return SqliteStore(spec)
