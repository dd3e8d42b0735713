"""What the master's loop tells its core (events) and what the core asks the loop to do
(commands), as frozen dataclasses: the same shape as zq.core.worker_core's.

Wire messages keep their names (docs/PROTOCOL.md); internal stimuli are past tense;
commands are imperative.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zq.core import messages as m
from zq.core.messages import Cmd, Role
from zq.core.tasks import TaskRecord

# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """One decoded message from peer `rid`, in the role it spoke as. A client's `key`
    is the public key it was admitted with (None without keys); `admin`: it may do
    what needs the admin role."""

    rid: bytes
    role: Role
    message: m.Message
    key: str | None = None
    admin: bool = True


@dataclass(frozen=True, slots=True)
class GarbageReceived:
    """Frames that did not decode. `answer`: they carried a zq signature, so the peer
    speaks zq and is told why (ERROR); otherwise they are only counted."""

    rid: bytes
    reason: str
    answer: bool


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A message the loop did not hand over (from a peer it shuns): only counted."""

    rid: bytes


@dataclass(frozen=True, slots=True)
class HandlingFailed:
    """Handling a message from `rid` raised (a bug, or input no check caught). A query
    (`request_id` set) is answered REPLY ok=false, anything else ERROR."""

    rid: bytes
    reason: str
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class EntriesRefused:
    """Entries of a `cmd` batch refused one by one (by the codec, or for the sender's
    role); each with its task id if known and the reason."""

    rid: bytes
    cmd: Cmd
    bad: list[m.BadEntry]


@dataclass(frozen=True, slots=True)
class PeerStoppedReading:
    """The loop holds too much for `rid`, which does not read: drop its session."""

    rid: bytes


@dataclass(frozen=True, slots=True)
class KeyRevoked:
    """The master no longer admits the key of peer `rid` (a SIGHUP reload)."""

    rid: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class StoreChanged:
    """The store could not commit (writable=False) or commits again (True)."""

    writable: bool


@dataclass(frozen=True, slots=True)
class RecordsLoaded:
    """Final tasks read back from the store on demand (an old result being asked for),
    and argument payloads the master had freed that a `get` shows (task id -> payload,
    queries.args_to_load)."""

    records: list[TaskRecord]
    args: dict[str, Any] = field(default_factory=dict)
    rid: bytes = b""  # who asked: the argument bytes read count against its query budget


@dataclass(frozen=True, slots=True)
class Stopping:
    """The master is closing: hand over what is left to persist; nothing more is sent."""


Event = (MessageReceived | GarbageReceived | MessageDropped | HandlingFailed | EntriesRefused
         | PeerStoppedReading | KeyRevoked | StoreChanged | RecordsLoaded | Stopping)


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persist:
    """Save and delete these, set these meta keys, then commit, before any Send of the
    same tick goes out (an ACCEPTED or ACK follows the commit that made it true)."""

    saves: list[TaskRecord] = field(default_factory=list)  # new tasks: every field
    updates: list[TaskRecord] = field(default_factory=list)  # saved before: what changes
    deletes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # store.set_meta(key, value)

    def __bool__(self) -> bool:
        return bool(self.saves or self.updates or self.deletes or self.meta)


@dataclass(frozen=True, slots=True)
class Send:
    rid: bytes
    message: m.Message


@dataclass(frozen=True, slots=True)
class Log:
    """What an operator wants in the master's log (the core never logs itself)."""

    level: str  # "info", "warning" or "error"
    text: str


Command = Persist | Send | Log
