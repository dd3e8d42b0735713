"""The task catalogue: every task name the workers announced in HELLO, with the options
its ``@zq.task`` declares. A submission by name (``client.submit("mod:f")``, ``zq
submit``, a schedule) gets the declared options it left unset, so they hold wherever a
task is submitted from; what a submission gives wins. Pure, kept in the store's meta.
"""

from __future__ import annotations

from typing import Any

from zq.core import codec
from zq.core.balance import parse_rate
from zq.errors import ProtocolError

MAX_NAMES = 10_000  # names the master remembers; the least recently announced go first
META_KEY = "catalogue"


def check_declared(name: str, opts: dict[str, Any]) -> str | None:
    """Why a worker's declared options for name cannot be used (the values a submission
    would be refused for), or None. The codec has checked keys and types already."""
    retries = opts.get("retries", 0)
    if not 0 <= retries <= 1000:
        return f"{name}: retries must be between 0 and 1000"
    if "rate_limit" in opts:
        try:
            parse_rate(opts["rate_limit"])
        except ValueError as e:
            return f"{name}: {e}"
    return None


class Catalogue:
    """name -> declared options (possibly none), and when each was last announced."""

    def __init__(self, limit: int = MAX_NAMES) -> None:
        self.limit = limit
        self.options: dict[str, dict[str, Any]] = {}  # every announced name
        # The names that declare something: what a submission's fast path looks up.
        self.declared: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, float] = {}  # name -> wall time it was last announced

    def __contains__(self, name: str) -> bool:
        return name in self.options

    def __len__(self) -> int:
        return len(self.options)

    def announce(self, entries: dict[str, dict[str, Any]], wall: float
                 ) -> tuple[list[str], list[str], bool]:
        """Take a worker's catalogue: (names new to the master, problems with entries
        that were skipped, whether what must be stored changed)."""
        new, problems = [], []
        changed = False
        for name, opts in entries.items():
            why = check_declared(name, opts)
            if why is not None:
                problems.append(why)
                continue
            self._seen[name] = wall
            old = self.options.get(name)
            if old == opts:
                continue
            if old is None:
                new.append(name)
            changed = True
            self._set(name, dict(opts))
        if len(self.options) > self.limit:
            self._evict()
            changed = True
        return new, problems, changed

    def fill(self, name: str, opts: dict[str, Any]) -> dict[str, Any]:
        """opts with name's declared options added where opts has none."""
        declared = self.declared.get(name)
        if not declared:
            return opts
        return {**declared, **opts}

    def view(self) -> dict[str, dict[str, Any]]:
        """name -> declared options, for `status`."""
        return {name: dict(opts) for name, opts in sorted(self.options.items())}

    def dump(self) -> dict[str, Any]:
        return {name: [opts, self._seen.get(name, 0.0)] for name, opts in self.options.items()}

    def load(self, dumped: Any) -> list[str]:
        """Restore a dump; returns problems with entries that were skipped (a store
        written by another version, say): none of them stops the master."""
        problems = []
        if not isinstance(dumped, dict):
            return [] if dumped is None else ["the stored task catalogue is not a map"]
        for name, value in dumped.items():
            why = _stored_entry_problem(name, value)
            if why is not None:
                problems.append(why)
                continue
            self._set(name, dict(value[0]))
            self._seen[name] = float(value[1])
        if len(self.options) > self.limit:
            self._evict()
        return problems

    def _set(self, name: str, opts: dict[str, Any]) -> None:
        self.options[name] = opts
        if opts:
            self.declared[name] = opts
        else:
            self.declared.pop(name, None)

    def _evict(self) -> None:
        by_age = sorted(self.options, key=lambda n: self._seen.get(n, 0.0))
        for name in by_age[:len(self.options) - self.limit]:
            del self.options[name]
            self.declared.pop(name, None)
            self._seen.pop(name, None)


def _stored_entry_problem(name: Any, value: Any) -> str | None:
    if type(value) is not list or len(value) != 2 or type(value[1]) not in (int, float):
        return f"{name!r}: not a catalogue entry"
    try:
        codec.check_catalogue_entry(name, value[0])
    except ProtocolError as e:
        return str(e)
    return check_declared(name, value[0])
