"""A worker whose message could not be sent sends it again on its next turn. A send fails
when the socket has nowhere to queue it: a keyless worker's first HELLO to a master that
uses keys, when libzmq refused the handshake (and dropped the connection's queue) before
the loop's first turn, which on a loaded machine it sometimes does. The worker's wait
was then minus infinity (the core's "send now"), and turning that into poll's
milliseconds raised OverflowError: the worker ended before it could say the master
requires keys (tests/integration/test_multihost.py, once in six CI runs)."""

from __future__ import annotations

from typing import Any

import zmq

from tests.integration.test_worker_protocol import APP, FakeMaster, WorkerThread
from zq import transport
from zq.config import WorkerConfig
from zq.core import messages as m
from zq.errors import PeerCongested


def test_a_hello_that_could_not_be_sent_goes_again(monkeypatch: Any) -> None:
    real_send = transport.send
    failed: list[m.Message] = []

    def send_failing_once(sock: zmq.Socket, role: Any, msg: m.Message,
                          peer: bytes | None = None) -> None:
        if not failed:
            failed.append(msg)
            raise PeerCongested("nowhere to queue it (the test's)")
        real_send(sock, role, msg, peer)

    monkeypatch.setattr(transport, "send", send_failing_once)
    ctx = zmq.Context()
    master = FakeMaster(ctx)
    worker: WorkerThread | None = None
    try:
        worker = WorkerThread(WorkerConfig(connect=master.endpoint, apps=(APP,),
                                           name="w-test", pool="thread", concurrency=1))
        master.expect(m.Hello)
        assert [type(x) for x in failed] == [m.Hello]  # the one that failed went again
        assert worker.thread.is_alive() and worker.code is None
        master.welcome()
        master.expect(m.Heartbeat)  # and the worker goes on as any registered one
    finally:
        if worker is not None:
            worker.stop()
        master.close()
        ctx.term()
