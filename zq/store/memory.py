"""The volatile store: nothing is written anywhere, so it costs nothing per task."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from zq.core.tasks import TaskRecord


class MemoryStore:
    """Keeps nothing across restarts. The master's own records are the only copy, so
    saving is a no-op; meta values are kept for the process's lifetime."""

    durable = False

    def __init__(self) -> None:
        self._meta: dict[str, Any] = {}

    def load(self) -> Iterator[TaskRecord]:
        return iter(())

    def save(self, records: Iterable[TaskRecord]) -> None:
        pass

    def update(self, records: Iterable[TaskRecord]) -> None:
        pass

    def delete(self, ids: Iterable[str]) -> None:
        pass

    def get(self, task_id: str) -> TaskRecord | None:
        return None  # the master's own records are all there is

    def get_meta(self, key: str) -> Any:
        return self._meta.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = value

    def commit(self) -> None:
        pass

    def behind(self) -> bool:
        return False

    def compact(self, limit: int) -> bool:
        return False

    def close(self) -> None:
        pass
