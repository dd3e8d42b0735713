"""Amplification and floods (issue 9, findings 5 and 9): the header is bounded and
decoded with length limits and a bound on arrays per byte; ids are answered once; the
master splits what it sends into messages a peer can decode; each peer's queries are
budgeted in bytes, and what the master holds for a peer that does not read is bounded
in bytes. Bounds are checked by counts (bytes, replies, entries), never by timings."""

from __future__ import annotations

import logging
import tracemalloc

import msgpack
import pytest

from tests.unit.test_master_send import StubRouter
from zq.config import MasterConfig
from zq.core import codec, queries
from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.messages import Cmd, Role
from zq.core.outbox import build as _build
from zq.core.queries import MAX_SCAN, QUERY_BYTES, QUERY_COST, ROW_COST, SCAN_COST
from zq.errors import ProtocolError
from zq.master import Master

C, C2, W = b"c1", b"c2", b"w1"


def test_a_60_mb_header_is_refused_by_its_size_alone() -> None:
    header = b"\xdd" + (15_000_000).to_bytes(4, "big") + b"\x90" * 60_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="over the 16777216 limit"):
            codec.decode([b"ZQC1", header])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # nothing was decoded


def test_a_header_of_empty_arrays_under_the_bound_is_refused_early() -> None:
    rows = 40  # 40 arrays of 100,000 empty arrays: 4 M lists if decoded (~300 MB)
    body = b"\xdd" + (100_000).to_bytes(4, "big") + b"\x90" * 100_000
    header = b"\x92\x0c" + b"\xdc" + rows.to_bytes(2, "big") + body * rows
    assert len(header) < codec.MAX_HEADER
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="more than one array or map per"):
            codec.decode([b"ZQC1", header])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20  # bounded by header bytes / CONTAINER_BYTES, not 64 x


@pytest.mark.parametrize("value, says", [
    ([12, [["t", "n", b"", {}]] * (codec.MAX_ENTRIES + 1)], "exceeds max_array_len"),
    ([17, 1, "status", {str(i): i for i in range(codec.MAX_ENTRIES + 1)}], "max_map_len"),
    ([19, "x" * (codec.MAX_STR + 1)], "max_str_len"),
])
def test_lengths_are_bounded(value, says) -> None:
    with pytest.raises(ProtocolError, match=says):
        codec.decode([b"ZQC1", msgpack.packb(value)])


def core() -> MasterCore:
    s = MasterCore(master_id="m")
    s.advance(1.0, 1_000_000.0)
    return s


def test_a_watch_repeating_one_id_is_answered_once() -> None:
    s = core()
    s.on_hello(W, m.Hello("w", "h", 1, ["default"], 1, "thread", 1, []))
    s.on_submit(C, [("t1", "app:f", b"", {})])
    s.dispatch()
    s.on_worker_results(s.touch_worker(W), [("t1", 1, 0, b"r" * 60_000)])
    s.flush()
    watch = codec.decode([b"ZQC1", msgpack.packb([Cmd.WATCH, ["t1"] * 10_000])])[1]
    s.on_watch(C2, watch.ids)
    out = s.flush().messages
    assert [(rid, len(msg.entries)) for rid, msg in out] == [(C2, 1)]  # not 10,000


def test_what_the_master_sends_is_split_into_messages_a_peer_decodes() -> None:
    acks = _build(Cmd.ACK, [f"t{i}" for i in range(120_000)])
    assert [len(a.ids) for a in acks] == [50_000, 50_000, 20_000]
    results = _build(Cmd.RESULT, [(f"t{i}", 3, b"r" * 60_000) for i in range(300)])
    assert len(results) == 3 and sum(len(r.entries) for r in results) == 300
    for msg in (*acks, *results):
        frames = codec.encode(Role.MASTER, msg)
        assert len(frames[1]) <= codec.MAX_HEADER
        assert codec.decode(frames)[1] == msg
    big = _build(Cmd.RESULT, [(f"t{i}", 3, b"R" * 100_000) for i in range(300)])
    assert len(big) == 1  # payloads of 64 KiB and more are frames: outside the header


def test_each_peer_s_queries_are_budgeted_in_bytes() -> None:
    s = core()
    s.on_submit(C, [(f"t{i}", "app:f", b"", {}) for i in range(5000)])
    s.flush()
    flooder, other = Caller(b"flood"), Caller(b"other")
    for i in range(600):  # 600 `tasks` queries in one turn, without limit: 1,000 rows each
        s.on_query(flooder, i, "tasks", {"limit": 1000})
    s.on_query(other, 1, "status", {})
    replies = [(rid, msg) for rid, msg in s.flush().messages]
    answered = [msg for rid, msg in replies if rid == b"flood" and msg.ok]
    refused = [msg for rid, msg in replies if rid == b"flood" and not msg.ok]
    per = QUERY_COST + ROW_COST * 1000 + SCAN_COST * 1000
    assert len(answered) == -(-QUERY_BYTES // per)  # the budget, then no more
    assert all(len(msg.body) == 1000 for msg in answered)
    assert len(refused) == 600 - len(answered) and "too many queries" in refused[0].body
    assert any(rid == b"other" and msg.ok for rid, msg in replies)  # others are served
    assert queries.status(s)["queries_refused"] == len(refused)
    s.advance(2.0, 1_000_001.0)  # a second later the budget is back
    s.on_query(flooder, 601, "tasks", {"limit": 10})
    assert s.flush().messages[0][1].ok


def test_a_peer_that_stops_reading_is_dropped_past_max_held(caplog) -> None:
    master = Master(MasterConfig(store="memory", max_held=1_000_000))
    router = master.sock = StubRouter()  # type: ignore[assignment]
    try:
        core = master.core
        core.advance(1.0, 1_000_000.0)
        core.on_hello(W, m.Hello("slow", "h", 1, ["default"], 4, "thread", 4, []))
        core.on_submit(C, [(f"t{i}", "app:f", b"", {}) for i in range(4)])
        core.dispatch()
        master._send(core.flush().messages)
        router.full.add(W)  # the worker stops reading
        for _ in range(20):  # 50 kB a message: 20 of them make 1 MB
            master._send([(W, m.Reply(1, True, "x" * 50_000))])
        assert W not in master._held and W not in core.workers  # dropped
        assert queries.status(core)["dropped_sessions"] == 1
        assert all(core.tasks[f"t{i}"].state is m.State.QUEUED for i in range(4))
        assert "stopped reading" in caplog.text
        core.validate()
        master._send([(C, m.Reply(2, True, None))])  # others are served
        assert router.sent[C][-1] == m.Reply(2, True, None)
    finally:
        master.store.close()
        master.ctx.term()


assert logging  # caplog reads the master's log


def test_a_tasks_query_that_matches_little_looks_at_a_bounded_number_of_tasks() -> None:
    s = core()
    n = MAX_SCAN + 5000
    s.on_submit(C, [(f"t{i}", "app:f", b"", {}) for i in range(n)])
    s.flush()
    s.on_query(Caller(b"q"), 1, "tasks", {"state": "running"})  # matches none of them
    (_, reply), = s.flush().messages
    assert reply.ok and reply.body == [] and s._scanned == MAX_SCAN
    left = s.query_budget[b"q"][0]
    assert left == QUERY_BYTES - QUERY_COST - SCAN_COST * MAX_SCAN  # and it is paid for
