"""Periodic tasks owned by the master: cron or fixed-interval schedules, and which tick
is due. Pure: wall time is passed in. Cron expressions are parsed by croniter.

Rules: a schedule fires at most once per tick, named ``NAME@TICK`` so a tick that fired
before a restart is recognised after it; after downtime only the latest missed tick
fires (once), not one run per missed tick.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from zq.errors import ConfigError


@dataclass
class Schedule:
    name: str
    task: str  # module:function
    cron: str | None = None  # standard 5-field cron
    every: float | None = None  # seconds
    timezone: str = "UTC"  # for cron
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    anchor: float = 0.0  # wall time `every` ticks count from
    last_tick: float | None = None  # the last tick that fired

    def validate(self) -> "Schedule":
        if not self.name or "@" in self.name:
            raise ConfigError(f"schedule name {self.name!r} must be non-empty, without '@'")
        if ":" not in self.task:
            raise ConfigError(f"schedule {self.name}: task {self.task!r} must be 'module:function'")
        if (self.cron is None) == (self.every is None):
            raise ConfigError(f"schedule {self.name}: give exactly one of cron or every")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ConfigError(f"schedule {self.name}: {self.cron!r} is not a 5-field cron "
                              "expression like '*/5 * * * *'")
        if self.every is not None and not (self.every > 0 and math.isfinite(self.every)):
            raise ConfigError(f"schedule {self.name}: every must be a positive number of seconds")
        _zone(self)
        if not isinstance(self.args, list) or not isinstance(self.kwargs, dict):
            raise ConfigError(f"schedule {self.name}: args must be a list and kwargs a table")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schedule":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"schedule {d.get('name')!r}: unknown keys {sorted(unknown)}")
        try:
            return cls(**d).validate()
        except TypeError as e:
            raise ConfigError(f"schedule {d.get('name')!r}: {e}") from e

    def task_id(self, tick: float) -> str:
        """NAME@TICK, the tick's unix time: whole seconds as an integer, other ticks to
        the microsecond (rounded to the second, ticks less than a second apart shared
        one id, and all but the first were lost as resubmissions of it)."""
        return f"{self.name}@" + f"{tick:.6f}".rstrip("0").rstrip(".")


def _zone(s: Schedule) -> ZoneInfo:
    try:
        return ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"schedule {s.name}: unknown timezone {s.timezone!r}") from e


def next_tick(s: Schedule, after: float) -> float:
    """The first tick strictly after `after`."""
    if s.every is not None:
        k = math.floor((after - s.anchor) / s.every) + 1
        return s.anchor + k * s.every
    start = datetime.fromtimestamp(after, _zone(s))
    return float(croniter(s.cron, start).get_next(float))


def latest_tick(s: Schedule, at: float) -> float | None:
    """The last tick at or before `at`, or None if there is none yet."""
    if s.every is not None:
        if at < s.anchor + s.every:
            return None
        return s.anchor + math.floor((at - s.anchor) / s.every) * s.every
    # get_prev is strict, so start a hair after `at` to include a tick exactly at it
    start = datetime.fromtimestamp(at + 1e-6, _zone(s))
    return float(croniter(s.cron, start).get_prev(float))


class Periodic:
    """The master's schedules and when each is next due."""

    def __init__(self) -> None:
        self.schedules: dict[str, Schedule] = {}
        self.next_at: dict[str, float] = {}

    def add(self, s: Schedule, wall: float) -> None:
        """Add or replace a schedule. A new one first fires at its first tick from now."""
        s.validate()
        old = self.schedules.get(s.name)
        if old is not None and s.last_tick is None:
            s.last_tick = old.last_tick
        if not s.anchor:
            s.anchor = wall
        self.schedules[s.name] = s
        self.next_at[s.name] = next_tick(s, s.last_tick if s.last_tick is not None else wall)

    def remove(self, name: str) -> bool:
        self.next_at.pop(name, None)
        return self.schedules.pop(name, None) is not None

    def next_due(self) -> float | None:
        return min(self.next_at.values()) if self.next_at else None

    def due(self, wall: float) -> list[tuple[Schedule, float]]:
        """Schedules due at `wall`, each with the one tick it fires for now."""
        fired = []
        for name, at in list(self.next_at.items()):
            if at > wall:
                continue
            s = self.schedules[name]
            tick = latest_tick(s, wall)
            if tick is not None and (s.last_tick is None or tick > s.last_tick):
                s.last_tick = tick
                fired.append((s, tick))
            self.next_at[name] = next_tick(s, wall)
        return fired

    def dump(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.schedules.values()]

    def load(self, dumped: list[dict[str, Any]] | None, wall: float) -> None:
        for d in dumped or ():
            self.add(Schedule.from_dict(d), wall)


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()
