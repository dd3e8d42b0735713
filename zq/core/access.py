"""Who is asking: the caller of a client message, and what a caller may do.

Without keys every peer is an admin (the master admits loopback peers only unless it
runs --insecure on a trusted network). With keys the master builds the Caller of each
message from the key the peer was admitted with: a client key may submit, watch and
cancel its own tasks and read (status, tasks, results); an admin key may do everything,
including purge, retry, cancel any task, change schedules and change a rate limit that
is already set. A worker key only works (the master checks roles per message).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class Caller:
    """One client message's sender: its routing id, the public key (z85 text) it was
    admitted with (None without keys) and whether that key is an admin's."""

    rid: bytes
    key: str | None = None
    admin: bool = True


class Need(Enum):
    """The privilege a request needs."""

    READ = "client"  # any admitted client
    ADMIN = "admin"


def allowed(caller: Caller, need: Need) -> bool:
    return need is Need.READ or caller.admin


def may_touch(caller: Caller, owner: str | None) -> bool:
    """Whether caller may cancel (or otherwise change) a task submitted by `owner`:
    an admin may touch any task; a client key only those it submitted. Tasks of no
    key (submitted without keys, or by the master's schedules) are an admin's."""
    return caller.admin or (caller.key is not None and caller.key == owner)


def refusal(what: str, need: Need) -> str:
    return (f"{what} needs the {need.value} role; this client's key does not have it "
            "(use a key from the master's admins folder)")
