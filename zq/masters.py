"""A worker's or client's list of masters (`--connect tcp://a:5555,tcp://b:5555`, the
same in ZQ_CONNECT, or a list given to zq.Client): several masters on one shared store
(PostgreSQL), one active, the others standbys. A peer connects to the first; whenever it
connects again (it lost its master, or a standby answered STANDBY) it goes to the next
one, round the list, with the reconnect backoff it already has; a standby that names
the active master's endpoint sends it there first. With one endpoint nothing changes.
"""

from __future__ import annotations

from typing import Sequence

from zq.errors import ConfigError

MAX_HINT = 1024  # characters of an endpoint a standby names (codec.MAX_ENDPOINT)


def parse_connect(spec: str | Sequence[str]) -> list[str]:
    """The endpoints of `spec`: one endpoint, several separated by commas, or a list of
    them. Each must look like scheme://address (tcp://host:5555, ipc://path)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    endpoints = [e.strip() for e in items if isinstance(e, str) and e.strip()]
    bad = [e for e in endpoints if "://" not in e]
    if bad or not endpoints or len(endpoints) != len(items):
        shown = bad[0] if bad else spec
        raise ConfigError(f"{shown!r} is not an endpoint like tcp://host:5555 (several "
                          "masters: tcp://a:5555,tcp://b:5555)")
    return endpoints


def join_connect(spec: str | Sequence[str]) -> str:
    """The one-string form (commas) of an endpoint or a list of them, checked."""
    return ",".join(parse_connect(spec))


class MasterList:
    """Which master to connect to next."""

    def __init__(self, spec: str | Sequence[str]) -> None:
        self.endpoints = parse_connect(spec)
        self.current = self.endpoints[0]
        self._previous: str | None = None  # the endpoint tried before the current one
        self._index = 0
        self._hint: str | None = None
        self._stayed = False  # the current standby was tried again once already
        self._opened = False

    def next(self) -> str:
        """The endpoint of the next connection: the first of the list at first; then the
        one follow() chose, if any (once); else the one after the last tried."""
        if not self._opened:
            self._opened = True
            return self.current
        before, self._previous = self.current, self.current
        if self._hint is not None:
            self.current, self._hint = self._hint, None
            if self.current in self.endpoints:  # the list goes on after it from now on
                self._index = self.endpoints.index(self.current)
        else:
            self._index = (self._index + 1) % len(self.endpoints)
            self.current = self.endpoints[self._index]
        if self.current != before:
            self._stayed = False
        return self.current

    def follow(self, hint: str) -> None:
        """The current master answered STANDBY, naming `hint` as the active one: try it
        next, unless it is the master we just came from (lost: the standby has not
        seen that yet) or malformed. Without such a hint, try the same standby once
        more (it may be taking over), then go on round the list."""
        if (hint and "://" in hint and len(hint) <= MAX_HINT and hint != self.current
                and hint != self._previous):
            self._hint = hint
        elif not self._stayed:
            self._hint, self._stayed = self.current, True
