"""The pieces of "secure by default" that need no socket: which addresses are loopback,
how refusals are throttled in the logs, and what a peer makes of its monitor's events."""

from __future__ import annotations

import pytest
import zmq

from zq.gate import is_loopback, local_only_transport
from zq.security import PeerKeys
from zq.transport import LinkWatch, LogThrottle

KEYS = PeerKeys(public=b"P" * 40, secret=b"S" * 40, master=b"M" * 40)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1",
                                     "::1%lo"])
def test_loopback_addresses_are_local(address):
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["10.231.1.2", "192.0.2.2", "0.0.0.0", "fd00::2",
                                     "::ffff:10.0.0.1", "", "localhost:0:0:42", "garbage"])
def test_other_addresses_are_not(address):
    assert not is_loopback(address)


def test_only_tcp_needs_the_loopback_rule():
    assert not local_only_transport("tcp://*:5555")
    assert local_only_transport("ipc:///tmp/zq.ipc")
    assert local_only_transport("inproc://zq")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_logs_once_per_key_and_period_and_counts_the_rest():
    clock = Clock()
    throttle = LogThrottle(every=10.0, clock=clock)
    assert throttle.allow("a") == 0
    assert throttle.allow("b") == 0  # another key has its own period
    assert [throttle.allow("a") for _ in range(5)] == [None] * 5
    clock.now += 10.0
    assert throttle.allow("a") == 5  # the next line says how many were left out
    assert throttle.allow("a") is None


def test_a_throttle_with_a_burst_logs_that_many_per_period():
    clock = Clock()
    throttle = LogThrottle(every=60.0, burst=3, clock=clock)
    assert [throttle.allow("a") for _ in range(7)] == [0, 0, 0, None, None, None, None]
    clock.now += 59.0
    assert throttle.allow("a") is None  # the period began at the first line
    clock.now += 1.0
    assert throttle.allow("a") == 5  # a new period: its first line counts the rest
    assert [throttle.allow("a") for _ in range(3)] == [0, 0, None]
    clock.now += 60.0
    assert throttle.allow("a") == 1


def test_throttle_memory_is_bounded():
    throttle = LogThrottle(every=10.0, max_keys=3, clock=Clock())
    for key in range(100):
        assert throttle.allow(key) == 0
    assert len(throttle._last) <= 3


def auth(value: int) -> tuple[int, int]:
    return zmq.EVENT_HANDSHAKE_FAILED_AUTH, value


def test_a_refusal_without_keys_says_loopback_and_insecure():
    watch = LinkWatch("worker", "tcp://10.0.0.1:5555", None)
    dropped, refusal = watch.note(*auth(400))
    assert not dropped and refusal is not None and refusal.final
    assert "tcp://10.0.0.1:5555 refused this worker" in refusal.message
    assert "loopback" in refusal.message and "--insecure" in refusal.message


def test_a_refused_key_is_named():
    refusal = LinkWatch("client", "tcp://m:1", KEYS).note(*auth(400))[1]
    assert refusal is not None and refusal.final
    assert "refused this client's key " + "P" * 40 in refusal.message


def test_a_busy_master_is_not_final():
    refusal = LinkWatch("client", "tcp://m:1", None).note(*auth(500))[1]
    assert refusal is not None and not refusal.final
    assert "connection limit" in refusal.message


def test_keys_on_one_side_only_is_a_refusal_saying_which():
    mismatch = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    plain = LinkWatch("client", "tcp://m:1", None).note(*mismatch)[1]
    keyed = LinkWatch("client", "tcp://m:1", KEYS).note(*mismatch)[1]
    assert plain is not None and plain.final and "requires keys" in plain.message
    assert keyed is not None and keyed.final and "does not use keys" in keyed.message


def test_failed_curve_handshakes_in_a_row_mean_a_wrong_master_key():
    watch = LinkWatch("worker", "tcp://m:1", KEYS)
    failed = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)
    assert watch.note(*failed) == (False, None)
    assert watch.note(*failed) == (False, None)
    assert watch.note(zmq.EVENT_HANDSHAKE_SUCCEEDED, 0) == (False, None)  # starts afresh
    assert [watch.note(*failed)[1] for _ in range(LinkWatch.FAILED_IN_A_ROW - 1)] == [None, None]
    refusal = watch.note(*failed)[1]
    assert refusal is not None and refusal.final
    assert "failed 3 times in a row" in refusal.message and "master key" in refusal.message


def test_without_keys_failed_handshakes_in_a_row_mean_the_master_requires_keys():
    """The master often hangs up before the peer sees the mechanism mismatch."""
    watch = LinkWatch("worker", "tcp://m:1", None)
    assert watch.note(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104) == (False, None)
    assert watch.note(zmq.EVENT_DISCONNECTED, 9) == (True, None)
    assert watch.note(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 104) == (False, None)
    refusal = watch.note(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)[1]
    assert refusal is not None and refusal.final and "requires keys" in refusal.message


def test_the_connection_cap_leaves_room_under_the_open_file_limit(caplog):
    from zq.gate import connection_cap
    assert connection_cap(10_000, 1_048_576) == 10_000  # far under: as asked, silently
    assert "accepting at most" not in caplog.text
    assert connection_cap(10_000, 256) == 192  # 256 - 64 for the store, zmq, bursts
    assert connection_cap(10_000, 4096) == 3686  # 90% of a larger limit
    assert "accepting at most 3686 connections, not 10000" in caplog.text
    assert connection_cap(10_000, 10) == 1  # never zero
