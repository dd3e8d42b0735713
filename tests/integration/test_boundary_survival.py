"""No message ends the master loop (issue 9, finding 2): queries with arguments of the
wrong type or out of range are answered ok=false, and any exception raised while one
message is handled is logged, counted (`dropped_messages`) and answered, while the
master goes on serving everyone else."""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import zmq

import zq
from tests.integration.harness import free_port, query
from zq.config import MasterConfig
from zq.core import codec, queries
from zq.core import messages as m
from zq.core.messages import Role
from zq.master import Master


def test_bad_query_arguments_are_answered_and_the_master_lives(cluster):
    cluster.start_master("memory")
    with zq.Client(cluster.endpoint) as client:
        with pytest.raises(zq.Rejected, match="state"):
            client.tasks(state=4)  # ended Master.run with AttributeError before
        with pytest.raises(zq.Rejected, match="anchor"):
            client.query("schedule_add", name="s", task="m:f", every=60.0, anchor=math.inf)
        with pytest.raises(zq.Rejected, match="every"):
            client.query("schedule_add", name="s", task="m:f", every=math.inf)
        assert client.schedules() == []
        assert cluster.master.alive()
        assert client.status()["workers"] == []  # still serving
    assert "Traceback" not in cluster.master.output()


@contextmanager
def master_in_thread(**config: Any) -> Iterator[tuple[Master, str]]:
    """A Master in this process (so a test can break one of its handlers), memory store."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    master = Master(MasterConfig(bind=endpoint, store="memory", **config))
    thread = threading.Thread(target=master.run, name="master", daemon=True)
    thread.start()
    try:
        assert master.ready.wait(10), "the master did not start"
        yield master, endpoint
    finally:
        master.stop()
        thread.join(10)
        assert not thread.is_alive(), "the master loop did not stop"


def ask(endpoint: str, msg: m.Message) -> Any:
    """Send one client message on a fresh socket and return the master's answer."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(codec.encode(Role.CLIENT, msg))
        assert sock.poll(5000), "no answer from the master"
        return codec.decode(sock.recv_multipart())[1]
    finally:
        sock.close(0)


def test_an_exception_in_any_handler_is_answered_counted_and_survived(monkeypatch, caplog):
    with master_in_thread() as (master, endpoint):
        def boom(*args: Any) -> None:
            raise RuntimeError("a bug in the watch handler")

        monkeypatch.setattr(master.core, "on_watch", boom)
        answer = ask(endpoint, m.Watch(["t1"]))
        assert isinstance(answer, m.Error) and "RuntimeError" in answer.reason

        real_status = queries.status
        calls = []

        def status_once_broken(core: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise KeyError("a bug in status")
            return real_status(core)

        monkeypatch.setattr(queries, "status", status_once_broken)
        answer = ask(endpoint, m.Query(5, "status", {}))
        assert isinstance(answer, m.Reply) and not answer.ok and "KeyError" in answer.body
        # Another client is served, and sees both failures counted.
        status = query(endpoint)
        assert status is not None and status["dropped_messages"] == 2
        with zq.Client(endpoint) as client:
            assert client.submit("tests.apps.e2e_tasks:add", 1, 2).id  # accepted
            assert client.flush(10)
    assert "a bug in the watch handler" in caplog.text
