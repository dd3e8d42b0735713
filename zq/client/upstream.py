"""Cancelling a workflow from its final future, upstream included (issue 17, protocol
1.5): client.cancel(future) and GroupFuture.cancel() revoke the futures (CANCEL: the task
and what follows it) and ask the master, without waiting, to cancel what those tasks take
results from and has not started (QUERY `cancel_inputs`, decided in
zq.core.workflows.cancel_inputs).

A master older than 1.5 answers the query ok=false (an unknown kind), which nobody waits
for: the tasks and what follows them are cancelled, the inputs upstream run, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zq.core.codec import MAX_IDS

if TYPE_CHECKING:
    from zq.client.future import Future

KIND = "cancel_inputs"


class _Unheard:
    """The REPLY sink of a cancel_inputs query: nobody waits for the answer (the futures
    of the inputs this client holds hear their cancellation as RESULTs)."""

    __slots__ = ()

    def on_reply(self, ok: bool, body: Any) -> None:
        pass

    def on_lost(self, exc: BaseException) -> None:
        pass

    def on_expired(self) -> None:
        pass


UNHEARD = _Unheard()


def cancel_workflow(futures: list[Future]) -> bool:
    """Revoke each future (whatever its task's state), then ask the master to cancel,
    upstream of them, what has not started and nothing else needs. True if any future
    was cancelled here. Never waits; safe from a done-callback."""
    revoked = [f.revoke() for f in futures]
    if futures:
        send = futures[0]._mailbox.ask_later  # one client's futures (a workflow's)
        if send is not None:
            ids = [f.id for f in futures]
            for i in range(0, len(ids), MAX_IDS):
                send(KIND, {"ids": ids[i:i + MAX_IDS]}, UNHEARD)
    return any(revoked)
