"""Periodic tasks owned by the master: cron or fixed-interval schedules, and which tick
is due. Pure: wall time is passed in. Cron expressions are parsed by croniter.

Rules: a schedule fires at most once per tick, named ``NAME@TICK`` so a tick that fired
before a restart is recognised after it; after downtime only the latest missed tick
fires (once), not one run per missed tick. A paused schedule has no next tick; resumed,
its next tick is the first one after the resume (the ticks it missed while paused never
fire). The pause is stored with the schedule, so it outlasts a restart, and replacing a
schedule (schedule_add, a schedule file at start-up) keeps it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from zq.core import limits, serde
from zq.errors import ConfigError, SerializationError

MIN_EVERY = 0.25  # seconds: a shorter interval would fire (nearly) every loop turn
MAX_EVERY = 10 * 365 * 86400.0
MAX_ARGS_BYTES = 64 * 1024  # a schedule's encoded arguments
# What a peer or a schedule file may set; the other fields are the master's own.
PUBLIC_FIELDS = ("name", "task", "cron", "every", "timezone", "args", "kwargs", "queue",
                 "priority")
# Its task ids, NAME@TIME for a tick and NAME@now-TIME-N for a run now (a ten-digit
# unix time with microseconds), must fit codec.MAX_ID's 128 characters: a worker refuses
# a whole TASK batch holding a longer id.
MAX_SCHEDULE_NAME = 96


@dataclass
class Schedule:
    name: str
    task: str  # module:function
    cron: str | None = None  # standard 5-field cron
    every: float | None = None  # seconds
    timezone: str = "UTC"  # for cron
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None  # None: the queue the task declares, else "default"
    priority: int | None = None
    anchor: float = 0.0  # wall time `every` ticks count from
    last_tick: float | None = None  # the last tick that fired
    paused: bool = False  # no tick fires until resumed (the master's own field)

    def validate(self) -> Schedule:
        """Every field of the right type and in range; ConfigError says which is not.
        Checked before a schedule is stored, and again when one is loaded."""
        name = self.name
        if type(name) is not str or not 0 < len(name) <= MAX_SCHEDULE_NAME or "@" in name:
            raise ConfigError(f"schedule name {_short(name)} must be a string of 1 to "
                              f"{MAX_SCHEDULE_NAME} characters, without '@'")
        if type(self.task) is not str or ":" not in self.task or len(self.task) > 512:
            raise ConfigError(f"schedule {name}: task {_short(self.task)} must be "
                              "'module:function'")
        if (self.cron is None) == (self.every is None):
            raise ConfigError(f"schedule {name}: give exactly one of cron or every")
        if self.cron is not None and (type(self.cron) is not str or len(self.cron) > 200
                                      or not croniter.is_valid(self.cron)):
            raise ConfigError(f"schedule {name}: {_short(self.cron)} is not a 5-field cron "
                              "expression like '*/5 * * * *'")
        if self.every is not None and not (_number(self.every) and self.every > 0):
            raise ConfigError(f"schedule {name}: every must be a positive number of seconds")
        if self.every is not None and not MIN_EVERY <= self.every <= MAX_EVERY:
            raise ConfigError(f"schedule {name}: every must be from {MIN_EVERY:g} to "
                              f"{MAX_EVERY:g} seconds, not {self.every:g}")
        if type(self.timezone) is not str or len(self.timezone) > 64:
            raise ConfigError(f"schedule {name}: timezone must be a name like 'Europe/Berlin'")
        _zone(self)
        if type(self.args) is not list or type(self.kwargs) is not dict \
                or not all(type(k) is str for k in self.kwargs):
            raise ConfigError(f"schedule {name}: args must be a list and kwargs a table "
                              "with string keys")
        if self.queue is not None and (type(self.queue) is not str
                                       or not 0 < len(self.queue) <= 512):
            raise ConfigError(f"schedule {name}: queue must be a queue name (a string), "
                              f"not {_short(self.queue)}")
        if self.priority is not None and (type(self.priority) is not int
                                          or not -2**31 <= self.priority < 2**31):
            raise ConfigError(f"schedule {name}: priority must be an integer, "
                              f"not {_short(self.priority)}")
        if type(self.paused) is not bool:
            raise ConfigError(f"schedule {name}: paused must be true or false")
        if not _number(self.anchor) or not (self.last_tick is None or _number(self.last_tick)):
            raise ConfigError(f"schedule {name}: anchor and last_tick must be finite times")
        if not serde.nesting_within([self.args, self.kwargs], limits.MAX_NESTING):
            raise ConfigError(f"schedule {name}: args and kwargs may nest at most "
                              f"{limits.MAX_NESTING} levels deep")
        try:
            size = len(serde.encode_call(self.args, self.kwargs))
        except SerializationError as e:
            raise ConfigError(f"schedule {name}: {e}") from e
        if size > MAX_ARGS_BYTES:
            raise ConfigError(f"schedule {name}: its arguments take {size} bytes, over "
                              f"the {MAX_ARGS_BYTES} allowed")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stored(self) -> dict[str, Any]:
        """to_dict() as the store keeps it: `paused` only when true, so a master older
        than 1.5 still loads every schedule that is not paused."""
        d = self.to_dict()
        if not self.paused:
            del d["paused"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        """A schedule as the master stored it, its own fields (anchor, last_tick) too."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"schedule {_short(d.get('name'))}: unknown keys "
                              f"{sorted(map(str, unknown))}")
        try:
            return cls(**d).validate()
        except TypeError as e:
            raise ConfigError(f"schedule {_short(d.get('name'))}: {e}") from e

    @classmethod
    def from_spec(cls, d: dict[str, Any]) -> Schedule:
        """A schedule as a peer or a schedule file gives it: the public fields only
        (the master sets anchor and last_tick itself)."""
        own = sorted(str(k) for k in d if k not in PUBLIC_FIELDS)
        if own:
            raise ConfigError(f"schedule {_short(d.get('name'))}: unknown keys {own}; "
                              f"known: {', '.join(PUBLIC_FIELDS)}")
        return cls.from_dict(d)

    def task_id(self, tick: float) -> str:
        """NAME@TICK, the tick's unix time: whole seconds as an integer, other ticks to
        the microsecond (rounded to the second, ticks less than a second apart shared
        one id, and all but the first were lost as resubmissions of it)."""
        return f"{self.name}@" + f"{tick:.6f}".rstrip("0").rstrip(".")


def _number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


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
        # Stored schedules that cannot load (name -> (what was stored, why)): kept, so
        # nothing is lost, and listed as broken until replaced or removed.
        self.broken: dict[str, tuple[dict[str, Any], str]] = {}

    def add(self, s: Schedule, wall: float) -> None:
        """Add or replace a schedule. A new one first fires at its first tick from now;
        one replacing a paused one stays paused."""
        s.validate()
        old = self.schedules.get(s.name)
        if old is not None and s.last_tick is None:
            s.last_tick = old.last_tick
        if old is not None and old.paused:
            s.paused = True
        if not s.anchor:
            s.anchor = wall
        self.schedules[s.name] = s
        self.broken.pop(s.name, None)
        self.next_at.pop(s.name, None)
        if not s.paused:
            self.next_at[s.name] = next_tick(s, s.last_tick if s.last_tick is not None
                                             else wall)

    def pause(self, name: str) -> Schedule:
        """No tick of this schedule fires until resume(). KeyError: no such schedule
        (ValueError: a broken one, which never fires anyway)."""
        s = self.get(name)
        s.paused = True
        self.next_at.pop(name, None)
        return s

    def resume(self, name: str, wall: float) -> Schedule:
        """Ticks fire again, from the first one after `wall`: none missed while paused."""
        s = self.get(name)
        if s.paused:
            s.paused = False
            self.next_at[name] = next_tick(s, wall)
        return s

    def get(self, name: str) -> Schedule:
        """KeyError: no such schedule; ValueError: a broken one (never fires)."""
        s = self.schedules.get(name)
        if s is None:
            if name in self.broken:
                raise ValueError(f"schedule {name!r} is broken ({self.broken[name][1]}); "
                                 "add it again or remove it")
            raise KeyError(name)
        return s

    def remove(self, name: str) -> bool:
        self.next_at.pop(name, None)
        gone = self.broken.pop(name, None) is not None
        return self.schedules.pop(name, None) is not None or gone

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
        return [s.stored() for s in self.schedules.values()] + [
            raw for raw, _ in self.broken.values()]

    def load(self, dumped: Any, wall: float) -> list[str]:
        """The schedules a store kept. One that cannot load (a bad field saved by an
        older master, say) is skipped and kept as broken: never a reason not to start.
        Returns a line for the log per broken schedule."""
        notes: list[str] = []
        if dumped is not None and type(dumped) is not list:
            return [f"the stored schedules are not a list ({type(dumped).__name__}): "
                    "none loaded"]
        for i, d in enumerate(dumped or ()):
            name = d.get("name") if type(d) is dict else None
            key = name if type(name) is str and name else f"#{i + 1}"
            try:
                if type(d) is not dict:
                    raise ConfigError(f"schedule {key}: not a table but {type(d).__name__}")
                self.add(Schedule.from_dict(d), wall)
            except (ConfigError, ValueError, TypeError, OverflowError) as e:
                self.broken[key] = (d if type(d) is dict else {"name": key}, str(e))
                notes.append(f"schedule {key} cannot load, skipped (zq schedule list shows "
                             f"it broken; add it again or remove it): {e}")
        return notes

    def view(self, name: str) -> dict[str, Any]:
        """A schedule as `schedule_list` shows it; a broken one with `broken` = why."""
        if name in self.broken:
            raw, why = self.broken[name]
            out: dict[str, Any] = {f: None for f in PUBLIC_FIELDS}
            out.update({f: raw.get(f) for f in PUBLIC_FIELDS if f in raw})
            out.update(name=name, next_run=None, broken=why, paused=raw.get("paused") is True)
            return out
        view = self.schedules[name].to_dict()
        view["next_run"] = self.next_at.get(name)
        view["broken"] = None
        return view

    def names(self) -> list[str]:
        return sorted([*self.schedules, *self.broken])


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()
