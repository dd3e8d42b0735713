"""`zq ping`'s question to each master of a list: are you the active master? One
status QUERY on a socket of its own; the answer is the status (active), STANDBY and
the active master's endpoint if the standby knows it, or nothing within the time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import zmq

from zq import transport
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role
from zq.errors import ProtocolError, Rejected
from zq.security import PeerKeys


@dataclass(frozen=True)
class Answer:
    endpoint: str
    status: dict[str, Any] | None  # the active master's status
    standby: str | None  # a standby's hint ("" when it names none); None: not a standby


def probe(endpoint: str, keys: PeerKeys | None, within: float) -> Answer | None:
    """Ask the master at `endpoint` for its status; None when it does not answer within
    `within` seconds. Rejected when it refuses (a key it does not admit, say)."""
    ctx = zmq.Context()
    sock = transport.peer_socket(ctx, endpoint, keys=keys)
    try:
        transport.send(sock, Role.CLIENT, m.Query(1, "status", {}))
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000) + 1):
                break
            try:
                _, msg = codec.decode(sock.recv_multipart())
            except ProtocolError:
                continue
            if isinstance(msg, m.Standby):
                return Answer(endpoint, None, msg.active)
            if isinstance(msg, m.Reply) and msg.request_id == 1:
                if not msg.ok:
                    raise Rejected(str(msg.body))
                return Answer(endpoint, dict(msg.body), None)
            if isinstance(msg, m.Error):
                raise Rejected(msg.reason)
        return None
    finally:
        sock.close(0)
        ctx.term()
