"""Amplification and floods against a real master (issue 9, findings 5 and 9), played by
raw protocol peers: a 60 MB header, 600 `tasks` queries from a peer that never reads,
and a peer that stops reading while it asks for more. Bounded by counts: reply sizes,
replies answered, bytes of memory; the master answers another client throughout."""

from __future__ import annotations

import msgpack

import zq
from tests.integration.harness import query
from tests.integration.raw_peer import RawPeer
from tests.integration.test_boundary_survival import master_in_thread
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Cmd, Role


def peak_rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_60_mb_header_of_empty_arrays_is_refused_cheaply(cluster):
    cluster.start_master("memory", "--max-message", str(64 * 2**20))
    header = b"\xdd" + (15_000_000).to_bytes(4, "big") + b"\x90" * 60_000_000
    with RawPeer(cluster.endpoint, Role.CLIENT) as raw:
        raw.send_raw([b"ZQC1", header])
        error = raw.recv_until(lambda x: isinstance(x, m.Error), timeout=30)
        assert "over the 16777216 limit" in error.reason
    assert query(cluster.endpoint) is not None  # still serving
    # It took the frame itself (60 MB) and nothing like the 4.4 GB a decode cost.
    assert peak_rss_kb(cluster.master.pid) < 400_000


def test_600_tasks_queries_from_a_peer_that_never_reads(cluster):
    cluster.start_master("memory")
    with zq.Client(cluster.endpoint) as client:
        futures = [client.submit("app:f", i) for i in range(3000)]  # no worker: queued
        assert client.flush(30) and len(futures) == 3000
        with RawPeer(cluster.endpoint, Role.CLIENT) as flooder:
            for i in range(600):  # no limit given: the master's default and cap apply
                flooder.send_raw([b"ZQC1", msgpack.packb([Cmd.QUERY, i, "tasks",
                                                          {"limit": 10**9 if i % 2 else 1000}])])
            assert client.status()["counts"]["queued"] == 3000  # another client is served
            replies = []
            while len(replies) < 600:  # now read what the master queued for it
                msg = flooder.recv(10)
                assert msg is not None, f"only {len(replies)} replies"
                replies.append(msg)
        ok = [r for r in replies if r.ok]
        refused = [r for r in replies if not r.ok]
        assert all(len(r.body) <= 1000 for r in ok)  # every answer is capped
        assert len(ok) <= 60, len(ok)  # the budget: about 4 MiB of answers a second
        assert all("too many queries" in r.body or "limit" in r.body for r in refused)
        assert client.status()["queries_refused"] >= 600 - len(ok) - 300


def test_a_peer_that_stops_reading_is_dropped_and_others_are_served(caplog):
    """A raw client sends query after query and never reads. ZeroMQ queues 1,000
    messages for it, then the master holds what is left, up to max_held (1 MB here):
    then it drops that session (and ignores the peer for a while), and serves everyone
    else."""
    with master_in_thread(max_held=1_000_000) as (master, endpoint):
        with zq.Client(endpoint) as client:
            flooder = RawPeer(endpoint, Role.CLIENT, rcvhwm=1)
            try:
                ask = codec.encode(Role.CLIENT, m.Query(1, "status", {}))
                for i in range(100_000):  # bounded; the master drops it long before
                    flooder.sock.send_multipart(ask)
                    if i % 2000 == 1999 and client.status()["dropped_sessions"]:
                        break
                assert client.status()["dropped_sessions"] >= 1
                assert all(n <= 1_000_000 for n in list(master._held_bytes.values()))
                assert client.submit("app:g").id  # others are served
                assert client.flush(10)
            finally:
                flooder.close()
    assert "stopped reading" in caplog.text
