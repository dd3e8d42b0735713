"""The link to the master, as a peer's core sees it: what a worker's or a client's loop
tells its core about the socket, and the commands that act on it. MessageReceived, Send
and OpenConnection serve both cores; GarbageReceived is the worker's (the client's loop
counts what it drops itself), the link events the client's (its loop watches the link).
worker_events and client_events re-export these, so each core keeps one vocabulary.
The master's own MessageReceived (zq.core.master_events) carries the sender as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from zq.core import messages as m

# --- events ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: m.Message
    now: float


@dataclass(frozen=True, slots=True)
class GarbageReceived:
    """Bytes from the master that did not decode: dropped, but still a sign of life."""
    now: float


@dataclass(frozen=True, slots=True)
class MessagesSent:
    """The socket took messages (for the heartbeat timer)."""
    now: float


@dataclass(frozen=True, slots=True)
class LinkOpened:
    """A fresh socket is connected (after OpenConnection)."""
    now: float


@dataclass(frozen=True, slots=True)
class OpenFailed:
    """A fresh socket could not be made (after OpenConnection)."""
    now: float


@dataclass(frozen=True, slots=True)
class LinkDropped:
    """The transport saw the connection to the master close."""
    now: float


# --- commands -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Send:
    message: m.Message


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """Make a fresh socket to the master (the client's loop then reports LinkOpened or
    OpenFailed)."""
