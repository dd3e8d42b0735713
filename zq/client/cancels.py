"""Asking the master to cancel tasks only if they have not started (protocol 1.5, QUERY
`cancel_unstarted`, decided in zq.core.cancels): what Future.cancel(), Executor.shutdown
(cancel_futures=True) and an abandoned map() use, as concurrent.futures cancels only its
pending futures. Many ids go in one query (up to 10,000).

A master older than 1.5 answers the query ok=false (an unknown kind): its ids come back
`unanswered`, as do those of a query no answer came to, and the caller does what zq did
before 1.5 for them (Future.cancel(): ask the task's state, then CANCEL it unless it
runs; map(): leave or CANCEL them as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from zq.core.codec import MAX_IDS
from zq.errors import ZqError

if TYPE_CHECKING:
    from zq.client.mailbox import Mailbox

KIND = "cancel_unstarted"
UNKNOWN = "unknown"  # the master holds no such task (zq.core.cancels.UNKNOWN)


@dataclass
class Answer:
    """The master's word on each id asked about."""

    cancelled: set[str] = field(default_factory=set)  # cancelled now (or before)
    # Not held by the master: never accepted yet (still unacknowledged, or BUSY): it
    # cannot have started, and a CANCEL of it drops it from what the client sends.
    unknown: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # no word: decide as before 1.5
    # The others are running (or may be) or ended: left alone.

    def add(self, ids: list[str], body: Any) -> None:
        """Take one REPLY body for ids (the master's answer, checked: a body that is not
        the documented shape counts as no answer)."""
        if type(body) is not dict or type(body.get("cancelled")) is not list \
                or type(body.get("kept")) is not dict:
            self.unanswered += ids
            return
        asked = set(ids)
        self.cancelled.update(i for i in body["cancelled"] if type(i) is str and i in asked)
        kept = body["kept"]
        self.unknown += [i for i in ids if kept.get(i) == UNKNOWN]


def batches(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + MAX_IDS] for i in range(0, len(ids), MAX_IDS)]


def ask(mailbox: Mailbox, ids: list[str]) -> Answer:
    """Ask now and wait for the answers (a user's thread). Never from the client's I/O
    thread (a done-callback): nothing could answer there, so every id is unanswered."""
    answer = Answer()
    query = mailbox.ask
    for batch in batches(ids):
        if query is None or mailbox.on_io_thread():
            answer.unanswered += batch
            continue
        try:
            body = query(KIND, ids=batch)
        except ZqError:  # Rejected (a master before 1.5), ConnectionLost, closed
            answer.unanswered += batch
            continue
        answer.add(batch, body)
    return answer


class _LaterReply:
    """The REPLY sink of one query nobody waits for: its answer goes to `then` on the
    client's I/O thread (keep it short: no waiting there)."""

    __slots__ = ("ids", "then")

    def __init__(self, ids: list[str], then: Callable[[Answer], None]) -> None:
        self.ids, self.then = ids, then

    def on_reply(self, ok: bool, body: Any) -> None:
        answer = Answer()
        if ok:
            answer.add(self.ids, body)
        else:
            answer.unanswered += self.ids
        self.then(answer)

    def on_lost(self, exc: BaseException) -> None:
        self.then(Answer(unanswered=list(self.ids)))

    def on_expired(self) -> None:
        self.then(Answer(unanswered=list(self.ids)))


def ask_later(mailbox: Mailbox, ids: list[str], then: Callable[[Answer], None]) -> None:
    """Ask without waiting, from any thread (the I/O thread too): `then` gets each
    batch's answer on the I/O thread (or at once, on the caller's, if the client is
    closed)."""
    send = mailbox.ask_later
    for batch in batches(ids):
        if send is None:
            then(Answer(unanswered=batch))
        else:
            send(KIND, {"ids": batch}, _LaterReply(batch, then))
