"""Promises of the docs checked end to end with a real master (the rules themselves are
unit-tested in tests/unit/test_task_promises.py)."""

from __future__ import annotations

import zmq

import zq
from tests.apps import e2e_tasks as t
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role

APP = "tests.apps.e2e_tasks"


def test_the_master_answers_a_clients_heartbeat(cluster):
    """docs/PROTOCOL.md §6: so an idle client can tell a live master from a dead one."""
    cluster.start_master()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(cluster.endpoint)
        for _ in range(3):
            sock.send_multipart(codec.encode(Role.CLIENT, m.Heartbeat()))
            assert sock.poll(5000), "no answer to HEARTBEAT"
            role, reply = codec.decode(sock.recv_multipart())
            assert (role, reply) == (Role.MASTER, m.Heartbeat())
    finally:
        sock.close(0)
        ctx.term()


def test_a_task_that_kills_its_worker_gets_two_extra_attempts_then_is_dead(cluster):
    """docs/TASKS.md: a worker's death is not the task's fault: up to two extra attempts
    beyond `retries`, then the task is dead (WorkerLost), every attempt counted. Here
    the task kills its process-pool child each time it runs."""
    cluster.start_master()
    cluster.start_worker(APP, name="w1", concurrency=1, extra=("--prefetch", "0"))
    with zq.Client(cluster.endpoint) as client:
        for retries in (0, 1):
            f = client.options(retries=retries).submit(t.crash)
            err = f.exception(timeout=60)
            assert isinstance(err, zq.TaskError) and err.type_name == "WorkerLost", err
            info = client.get(f.id)
            assert (info["state"], info["attempt"]) == ("dead", retries + 3)
        assert client.submit(t.add, 1, 1).result(timeout=30) == 2  # the worker goes on
