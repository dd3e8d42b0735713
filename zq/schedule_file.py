"""Reads `zq master --schedule schedule.toml`: one [[schedule]] table per periodic task.

    [[schedule]]
    name = "nightly-report"
    task = "myapp.tasks:report"
    cron = "0 3 * * *"          # or: every = 60  (seconds)
    timezone = "Europe/Berlin"  # optional, for cron; default UTC
    args = [1, 2]               # optional; also kwargs = { x = 1 }, queue, priority
"""

from __future__ import annotations

import sys
from typing import Any

from zq.core.periodic import Schedule
from zq.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KEYS = {"name", "task", "cron", "every", "timezone", "args", "kwargs", "queue", "priority"}


def read_schedule_file(path: str) -> list[dict[str, Any]]:
    """The validated schedule entries of a TOML file; ConfigError says what is wrong."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read schedule file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"schedule file {path} is not valid TOML: {e}") from e
    entries = doc.get("schedule", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: use [[schedule]] tables, one per periodic task")
    out = []
    for i, entry in enumerate(entries, 1):
        unknown = set(entry) - _KEYS
        if unknown:
            raise ConfigError(f"{path}: schedule #{i} has unknown keys {sorted(unknown)}; "
                              f"known: {sorted(_KEYS)}")
        if "every" in entry:
            entry["every"] = float(entry["every"])
        Schedule.from_spec(dict(entry))  # validates every field
        out.append(entry)
    names = [e["name"] for e in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: schedule names must be unique")
    return out
