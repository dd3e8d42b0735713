"""What the master does about a peer rather than a task: a malformed message, the
entries of a batch the codec refused alone, a message whose handling raised, a client's
heartbeat, and a peer the master stops serving because it does not read. Each is
counted and answered (ERROR, REJECTED, REPLY ok=false) so that the peer learns what
was wrong. These are functions of the MasterCore they change (zq.core.master_core).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zq.core import messages as m
from zq.core import queries, workers
from zq.core.messages import Cmd

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore


def on_client_heartbeat(core: MasterCore, rid: bytes) -> None:
    core._push(rid, Cmd.HEARTBEAT, None)


def on_bad_message(core: MasterCore, rid: bytes, reason: str) -> None:
    core.dropped += 1
    core._push(rid, Cmd.ERROR, reason)


def on_bad_entries(core: MasterCore, rid: bytes, cmd: Cmd, bad: list[m.BadEntry]) -> None:
    """Entries of a batch the codec refused one by one (the rest of the message was
    applied): a SUBMIT entry with a task id is REJECTED with the reason; the others
    are named in one ERROR. A refused entry changes nothing and is not ACKed."""
    core.bad_entries += len(bad)
    said = []
    for tid, reason in bad:
        if cmd is Cmd.SUBMIT and tid is not None:
            core._push(rid, Cmd.REJECTED, (tid, reason))
        else:
            said.append(reason if tid is None else f"task {tid}: {reason}")
    if said:
        more = f" (and {len(said) - 5} more)" if len(said) > 5 else ""
        core._push(rid, Cmd.ERROR, f"{cmd.name}: {len(said)} entries refused, the "
                                   f"rest applied: {'; '.join(said[:5])}{more}")


def drop_peer(core: MasterCore, rid: bytes) -> str:
    """The master stopped serving peer rid (it does not read): a worker is dropped as
    lost, a client stops being anyone's watcher. Returns what the peer was. (The loop
    logs why; drop_worker names the tasks the worker held.)"""
    core.dropped_sessions += 1
    core.events.unsubscribe(rid)
    w = core.workers.get(rid)
    if w is not None:
        workers.drop_worker(core, w)
        return f"worker {w.name}"
    for tid in [tid for tid, r in core.watcher.items() if r == rid]:
        del core.watcher[tid]
        more = core.more_watchers.get(tid)
        if more:  # another watcher takes over
            core.watcher[tid] = more.pop()
            if not more:
                del core.more_watchers[tid]
    for tid, more in list(core.more_watchers.items()):
        more.discard(rid)
        if not more:
            del core.more_watchers[tid]
    return "client"


def on_failed_message(core: MasterCore, rid: bytes, reason: str,
                      request_id: int | None = None) -> None:
    """Handling a message from rid raised (the master caught it): count it and say
    so, as REPLY ok=false to a query, as ERROR to anything else."""
    core.dropped += 1
    if request_id is not None:
        queries.reply(core, rid, request_id, False, reason)
    else:
        core._push(rid, Cmd.ERROR, reason)
