"""Bad input gets a clear error or a counted drop, and the master keeps serving others."""

from __future__ import annotations

import msgpack
import pytest
import zmq

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import query
from zq.core import codec, messages, serde

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def served(cluster):
    cluster.start_master("memory", "--max-message", str(1024 * 1024))
    cluster.start_worker(APP, name="w1", pool="thread")
    return cluster


@pytest.fixture
def raw(served):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(served.endpoint)
    yield sock
    sock.close(0)
    ctx.term()


def reply_to(sock, frames, timeout=3.0):
    sock.send_multipart(frames)
    if not sock.poll(timeout * 1000):
        return None
    return codec.decode(sock.recv_multipart())[1]


def still_serving(cluster):
    with zq.Client(cluster.endpoint) as client:
        assert client.submit(t.add, 40, 2).result(timeout=20) == 42


ERRORS = {
    "garbage header": [b"ZQC1", b"\xc1\xc1\xc1"],
    "truncated msgpack": [b"ZQC1", msgpack.packb([12, [["id", "a:b", b"x" * 50, {}]]])[:-20]],
    "unknown command": [b"ZQC1", msgpack.packb([99, "x"])],
    "wrong field types": [b"ZQC1", msgpack.packb([12, [[1, 2, 3, 4]]])],
    "worker command from a client": [b"ZQC1", msgpack.packb([1, "n", "h", 1, [], 1, "p", 1, []])],
    # An unknown SUBMIT option refuses that entry alone (REJECTED): test_boundary_entries.py
    "missing fields": [b"ZQC1", msgpack.packb([12])],
    "deep nesting": [b"ZQC1", b"\x91" * 100_000 + b"\x00"],
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_malformed_message_gets_an_error_and_harms_nobody(served, raw, case):
    reply = reply_to(raw, ERRORS[case])
    assert isinstance(reply, messages.Error), reply
    assert reply.reason  # says what was wrong
    still_serving(served)


def test_foreign_peer_is_dropped_and_counted(served, raw):
    before = query(served.endpoint)["dropped_messages"]
    for frames in ([b"GET / HTTP/1.1"], [b"XXXX", b"hello"], [b"", b"", b""]):
        raw.send_multipart(frames)
    assert not raw.poll(300)  # no answer to a peer that is not speaking zq
    still_serving(served)
    assert query(served.endpoint)["dropped_messages"] >= before + 3


def _submit_of_frame(tid: str, size: int) -> list:
    """A SUBMIT whose argument payload is a frame of exactly `size` bytes."""
    payload = serde.encode_call([b"x" * (size - 8)], {})  # 8 bytes of msgpack around it
    assert len(payload) == size
    return codec.encode(messages.Role.CLIENT, messages.Submit(
        [(tid, "tests.apps.e2e_tasks:size_of", payload, {})]))


def test_a_frame_over_max_message_drops_the_connection(served, raw):
    """docs/PROTOCOL.md §1: max_message is the largest frame; ZeroMQ drops the connection
    of a peer that sends a larger one (MAXMSGSIZE = max_message, here 1 MiB), and the
    master never sees the message. A frame of exactly max_message is fine. Others are
    served."""
    limit = 1024 * 1024
    monitor = raw.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        raw.send_multipart(_submit_of_frame("big1", limit + 1))
        assert monitor.poll(10_000), "the connection was not dropped"
        assert not raw.poll(200)  # and no answer: the master never saw it
    finally:
        raw.disable_monitor()
        monitor.close(0)
    still_serving(served)
    with zq.Client(served.endpoint) as client:
        other = zmq.Context.instance().socket(zmq.DEALER)
        other.setsockopt(zmq.LINGER, 0)
        try:
            other.connect(served.endpoint)
            other.send_multipart(_submit_of_frame("fits", limit))
            assert other.poll(10_000)
            assert isinstance(codec.decode(other.recv_multipart())[1], messages.Accepted)
            assert client.future("fits").result(timeout=20) == limit - 8
        finally:
            other.close(0)


def test_unknown_task_and_bad_arguments(served):
    with zq.Client(served.endpoint) as client:
        with pytest.raises(zq.UnknownTask):
            client.submit("tests.apps.e2e_tasks:missing").result(timeout=20)
        with pytest.raises(zq.SerializationError):
            client.submit(t.echo, object())  # no codec carries a bare object
        with pytest.raises(TypeError):  # wrong arity: raised by the task, re-raised here
            client.submit(t.add, 1).result(timeout=20)
    still_serving(served)


def test_worker_hello_with_garbage_fields_is_rejected(served, raw):
    # A worker-signature message with bad fields: an error, not a registration.
    reply = reply_to(raw, [b"ZQW1", msgpack.packb([1, "n", "h", -5, "notalist", 1, "p", 1, []])])
    assert isinstance(reply, messages.Error)
    assert "w1" in {w["name"] for w in query(served.endpoint)["workers"]}
    assert len(query(served.endpoint)["workers"]) == 1
