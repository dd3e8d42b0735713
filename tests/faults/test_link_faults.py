"""Faults of the master's links, made by a userspace TCP proxy (tests/faults/proxy.py):
delay, jitter and loss (fault 11), a partition shorter than the liveness window (7), lost
ACKs to a worker (3), lost ACCEPTEDs to a client with a master crash (5), and replayed
messages (14). After each, the invariants I1-I4 (tests/faults/checks.py) hold, with runs
counted by the tasks themselves (tests.apps.e2e_tasks.log_run)."""

from __future__ import annotations

import re
import signal
import time

import zmq

import zq
from tests.apps import e2e_tasks as t
from tests.faults.checks import check_tasks, runs
from tests.faults.proxy import DOWN, UP, Verdict
from tests.integration.harness import wait_until
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role

APP = "tests.apps.e2e_tasks"


def registrations(master_log: str, name: str) -> int:
    """How many times worker `name` registered (first time or again) with this master."""
    return len(re.findall(rf"worker {re.escape(name)} \(.*registered", master_log))


def command(frames: list[bytes]) -> m.Cmd | None:
    """The zq command of a message the proxy saw, None if it is not one."""
    try:
        return codec.decode(frames)[1].cmd
    except Exception:
        return None


def test_delay_jitter_and_loss_cause_no_false_death_at_the_defaults(cluster, proxy_of, tmp_path):
    """Every link of the master (two workers and the client) delays 200 ms +- 50 ms each
    way and loses 5% of its segments (TCP sends them again a timeout later): with the
    default heartbeat (1 s x 3), no worker is ever dropped or re-registers, every task
    runs exactly once (a 4.5 s task too, one and a half liveness windows long) and has one
    result."""
    log = tmp_path / "runs"
    cluster.heartbeat, cluster.liveness = 1.0, 3  # zq's defaults
    cluster.start_master("memory")
    links = proxy_of(seed=11)
    for link in (links.up, links.down):
        link.delay, link.jitter, link.loss = 0.2, 0.05, 0.05
    for name, pool in (("w1", "thread"), ("w2", "process")):
        cluster.start_worker(APP, name=name, pool=pool, concurrency=2, connect=links.endpoint)
    window = cluster.heartbeat * cluster.liveness
    with zq.Client(links.endpoint) as client:
        long = client.submit(t.log_run, str(log), "long", 1.5 * window)
        futures = [client.submit(t.log_run, str(log), f"s{i}", 0.02) for i in range(100)]
        assert [f.result(timeout=120) for f in futures] == [f"s{i}" for i in range(100)]
        assert long.result(timeout=120) == "long"
        extra = check_tasks(client, [long.id, *(f.id for f in futures)], runs(log),
                            {long.id: "long", **{f.id: f"s{i}" for i, f in enumerate(futures)}})
    output = cluster.master.output()
    assert extra == 0, f"{extra} tasks ran twice"
    assert "silent for" not in output
    assert registrations(output, "w1") == registrations(output, "w2") == 1
    assert links.stats.lost_chunks[UP] and links.stats.lost_chunks[DOWN]  # the loss was real


def test_a_partition_shorter_than_the_liveness_window_changes_nothing(cluster, proxy_of, tmp_path):
    """Both directions of a worker's link stall for half the liveness window while it
    runs a task and holds more: it is not dropped, nothing is given to the other worker,
    and every task runs once, where it was leased."""
    log, gate = tmp_path / "runs", tmp_path / "gate"
    # a 3 s window (not the harness's 1 s): the master may last have heard w1 a heartbeat
    # before the stall, and the stall (timed by this loaded process, whose proxy thread
    # shares its GIL) can run over; half the window leaves room for both
    cluster.liveness = 12
    cluster.start_master("memory")
    links = proxy_of()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1, connect=links.endpoint,
                         extra=("--prefetch", "3"))
    with zq.Client(cluster.endpoint) as client:
        first = client.submit(t.log_run, str(log), "t0", gate=str(gate))
        rest = [client.submit(t.log_run, str(log), f"t{i}") for i in range(1, 4)]
        wait_until(lambda: runs(log)["t0"] == 1, 20, "w1 to start the first task")
        wait_until(lambda: [w["running"] for w in client.status()["workers"]] == [4], 10,
                   "w1 to hold the other three")
        cluster.start_worker(APP, name="w2", pool="thread", concurrency=1)
        links.stall(True)
        try:
            time.sleep(cluster.heartbeat * cluster.liveness / 2)  # the fault: this long
        finally:
            links.stall(False)
        gate.touch()
        futures = [first, *rest]
        assert [f.result(timeout=30) for f in futures] == ["t0", "t1", "t2", "t3"]
        assert {client.get(f.id)["worker"] for f in futures} == {"w1"}
        assert check_tasks(client, [f.id for f in futures], runs(log),
                           {f.id: f"t{i}" for i, f in enumerate(futures)}) == 0
    assert "silent for" not in cluster.master.output()


def test_lost_acks_make_the_worker_resend_after_a_reconnect_and_nothing_runs_twice(
        cluster, proxy_of, tmp_path):
    """Every ACK from the master to a worker is lost: the results still reach the client
    (the master recorded them), the worker keeps them. When its connection is reset it
    registers again and sends them again; the master acknowledges them as duplicates:
    one result each, every task ran once, and the worker stops with nothing unacked."""
    log = tmp_path / "runs"
    cluster.start_master("memory")
    links = proxy_of()
    links.capture = True
    links.filter = lambda d, frames: (Verdict.DROP if d == DOWN and command(frames) is m.Cmd.ACK
                                      else Verdict.FORWARD)
    worker = cluster.start_worker(APP, name="w1", pool="thread", concurrency=2,
                                  connect=links.endpoint)
    with zq.Client(cluster.endpoint) as client:
        futures = [client.submit(t.log_run, str(log), f"a{i}") for i in range(20)]
        assert [f.result(timeout=30) for f in futures] == [f"a{i}" for i in range(20)]
        # ACKs go up to zq.core.holdback.ACK_HOLD after the results they name
        wait_until(lambda: links.stats.dropped[DOWN] >= 1, 10, "an ACK to be sent (and lost)")
        links.filter = None  # the network heals; the connection is reset
        links.cut()
        wait_until(lambda: registrations(cluster.master.output(), "w1") == 2, 20,
                   "w1 to register again")
        wait_until(lambda: command_seen(links, m.Cmd.ACK), 20,
                   "the master to acknowledge the resent results")
        assert check_tasks(client, [f.id for f in futures], runs(log),
                           {f.id: f"a{i}" for i, f in enumerate(futures)}) == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert "not acknowledged" not in worker.output()


def command_seen(links, cmd: m.Cmd) -> bool:
    return any(command(frames) is cmd for _, frames in links.delivered)


def test_a_master_killed_after_its_commit_but_before_accepted_arrives(cluster, proxy_of, tmp_path):
    """The master commits a submission, but its ACCEPTED never reaches the client; then
    the master is killed -9 and restarts. The client sends the same ids again and the
    master recognises them: one task each, each runs once."""
    log, store = tmp_path / "runs", str(tmp_path / "zq.db")
    cluster.start_master(store)
    links = proxy_of()
    links.capture = True
    links.connect_patience = 30  # the client reconnects while the master restarts
    links.filter = lambda d, frames: (
        Verdict.DROP if d == DOWN and command(frames) is m.Cmd.ACCEPTED else Verdict.FORWARD)
    with zq.Client(links.endpoint) as client:
        later = client.options(queue="later")  # no worker yet: they stay queued
        futures = [later.submit(t.log_run, str(log), f"k{i}") for i in range(10)]
        wait_until(lambda: (cluster.status() or {}).get("queues", {}).get("later") == 10, 20,
                   "the master to commit the ten tasks")
        # the ACCEPTED left with the status reply, which comes straight from the master:
        # the proxy's thread may not have read (and dropped) it yet
        wait_until(lambda: links.stats.dropped[DOWN] >= 1, 10, "an ACCEPTED to be lost")
        assert not client.flush(0.2)
        cluster.master.kill()
        links.filter = None
        cluster.start_master(store)
        cluster.start_worker(APP, name="w1", pool="thread", extra=("--queues", "later"))
        assert [f.result(timeout=30) for f in futures] == [f"k{i}" for i in range(10)]
        submits = sum(command(frames) is m.Cmd.SUBMIT for d, frames in links.delivered if d == UP)
        assert submits >= 2  # sent again after the restart
        assert check_tasks(client, [f.id for f in futures], runs(log),
                           {f.id: f"k{i}" for i, f in enumerate(futures)}) == 0


def test_replayed_messages_change_nothing(cluster, proxy_of, tmp_path):
    """Every message between the master and its peers is captured; once all tasks are
    done, each captured SUBMIT, RESULT, HEARTBEAT, CREDIT and WATCH is sent again on a
    live connection and from fresh sockets. Nothing runs again, no task is added or
    changed, the master answers the fresh worker sockets with DISCONNECT."""
    log = tmp_path / "runs"
    cluster.start_master("memory")
    links = proxy_of()
    links.capture = True
    links.filter = lambda d, frames: Verdict.FORWARD  # whole messages, so injection is safe
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2, connect=links.endpoint)
    with zq.Client(links.endpoint) as client:
        futures = [client.submit(t.log_run, str(log), f"r{i}") for i in range(10)]
        assert [f.result(timeout=30) for f in futures] == [f"r{i}" for i in range(10)]
        tags = {f.id: f"r{i}" for i, f in enumerate(futures)}
        before = {row["id"]: row for row in client.tasks(limit=1000)}
        # a peer's HEARTBEAT to the master (UP), the one replayed below: the master's own
        # to its peers (DOWN) may come first
        wait_until(lambda: any(d == UP and command(f) is m.Cmd.HEARTBEAT
                               for d, f in links.captured), 10, "an idle peer's HEARTBEAT")
        replays = [(d, frames) for d, frames in links.captured if d == UP
                   and command(frames) in (m.Cmd.SUBMIT, m.Cmd.RESULT, m.Cmd.HEARTBEAT,
                                           m.Cmd.CREDIT, m.Cmd.WATCH)]
        kinds = {command(frames) for _, frames in replays}
        assert {m.Cmd.SUBMIT, m.Cmd.RESULT, m.Cmd.HEARTBEAT} <= kinds, kinds
        for _, frames in replays:  # on the live connections: the worker's and the client's
            links.inject(UP, frames)
        # A query last on each connection: its answer means the master read what was before.
        marker = codec.encode(Role.CLIENT, m.Query(MARKER, "status", {}))
        connections = links.inject(UP, marker)
        answers = replay_from_fresh_sockets(cluster.endpoint, replays)
        wait_until(lambda: replies_seen(links, MARKER) == connections, 20,
                   "the master to read every replay")
        after = {row["id"]: row for row in client.tasks(limit=1000)}
        assert after == before
        assert check_tasks(client, [f.id for f in futures], runs(log), tags) == 0
    worker_replies = {type(msg) for cmd, msg in answers if cmd in (m.Cmd.RESULT, m.Cmd.CREDIT)}
    assert worker_replies <= {m.Disconnect}, worker_replies
    assert cluster.master.alive()


MARKER = 424242


def replies_seen(links, request_id: int) -> int:
    """REPLYs to request_id the proxy delivered to the peers."""
    n = 0
    for d, frames in list(links.delivered):
        if d == DOWN and command(frames) is m.Cmd.REPLY:
            n += codec.decode(frames)[1].request_id == request_id
    return n


def replay_from_fresh_sockets(endpoint: str, replays: list) -> list[tuple[m.Cmd, m.Message]]:
    """Send each captured message from a new DEALER; return (command, first answer)."""
    ctx = zmq.Context()
    answers = []
    try:
        for _, frames in replays:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            sock.send_multipart(frames)
            if sock.poll(2000):
                answers.append((command(frames), codec.decode(sock.recv_multipart())[1]))
            sock.close(0)
    finally:
        ctx.term()
    return answers
