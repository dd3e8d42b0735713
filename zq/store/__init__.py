"""Where the master keeps task state: the Store interface and a factory.

A store is bytes-in/bytes-out over TaskRecords. The master calls save()/update()/delete()
any number of times in a loop turn, then commit() once: everything since the last
commit becomes durable together (group commit). load() at start-up gives every record
kept; get() one of them later.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Protocol

from zq.core.tasks import TaskRecord
from zq.errors import ConfigError


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


# URL schemes of the stores that live in a database server.
POSTGRES_SCHEMES = ("postgresql", "postgres")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_PASSWORD_IN_USER = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@")
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&]*")


def open_store(spec: str, sync: str = "normal") -> Store:
    """'memory' for a volatile store, a postgresql:// (or postgres://) URL for the
    PostgreSQL store, else the path of a SQLite file (sync: see zq.store.sqlite).
    Anything else shaped like a URL is refused: taken as a path it would silently
    become a SQLite file under a folder named after the scheme."""
    if spec == "memory":
        from zq.store.memory import MemoryStore
        return MemoryStore()
    url = _URL.match(spec)
    if url is not None:
        scheme = url.group(1)
        if scheme.lower() not in POSTGRES_SCHEMES:
            raise ConfigError(f"unknown store URL scheme {scheme!r}; use memory, a file "
                              "path, or postgresql://...")
        from zq.store.postgres import PostgresStore
        return PostgresStore(spec)
    from zq.store.sqlite import SqliteStore
    return SqliteStore(spec, sync=sync)


def redact(spec: str) -> str:
    """The store as logs and errors show it: a URL's password as ***."""
    if _URL.match(spec) is None:
        return spec
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_USER.sub(r"\1:***@", spec))
