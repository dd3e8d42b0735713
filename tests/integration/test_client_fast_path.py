"""The client's fast path for submit().result() (IoLoop.lead): a thread waiting for its
future runs the client's I/O loop itself while no other thread does, so the result is
read and settled on that thread. On a real master and worker: values, errors, cancel
and timeouts on it; several threads submitting and waiting at once; a result for one
thread arriving while another leads; Ctrl-C while it waits. Which thread settled a
future is seen from its done-callback, which runs on the thread that settles it."""

from __future__ import annotations

import concurrent.futures as cf
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import zq
from tests.apps import futures_tasks as t
from tests.integration.harness import wait_until

APP = "tests.apps.futures_tasks"
IO_THREAD = "zq-client-io"


def start(cluster, concurrency: int = 4) -> None:
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=concurrency)


def settled_on(fut: zq.Future) -> list[str]:
    """The name of the thread that will settle fut (a list filled by its callback)."""
    where: list[str] = []
    fut.add_done_callback(lambda f: where.append(threading.current_thread().name))
    return where


def open_once_led(client: zq.Client, gate: Path) -> threading.Thread:
    """A thread that opens `gate` once the calling thread leads the client's loop (the
    mailbox then counts it as the I/O thread): a gated task's result can then only
    arrive while the caller waits in result(), never before it got there."""
    me = threading.get_ident()

    def open_gate() -> None:
        wait_until(lambda: client._mailbox._io_ident == me, 30, "the waiting thread to lead")
        gate.touch()
    opener = threading.Thread(target=open_gate, daemon=True)
    opener.start()
    return opener


def test_a_lone_result_is_settled_on_the_waiting_thread(cluster, tmp_path: Path):
    start(cluster)
    with zq.Client(cluster.endpoint) as client:
        me = threading.current_thread().name
        for i in range(3):
            gate = tmp_path / f"gate{i}"
            fut = client.submit(t.gated, str(tmp_path / f"started{i}"), str(gate), i)
            where = settled_on(fut)
            opener = open_once_led(client, gate)
            assert fut.result(timeout=30) == i
            opener.join(30)
            assert where == [me]  # the fast path: not the I/O thread
        gate = tmp_path / "gate-fail"
        fut = client.submit(t.gated_fail, str(gate), "boom")
        where = settled_on(fut)
        opener = open_once_led(client, gate)
        with pytest.raises(ValueError, match="boom"):
            fut.result(timeout=30)
        opener.join(30)
        assert where == [me]
        assert fut.exception(timeout=30) is not None
        # Still served by the I/O thread when nobody waits in result():
        fut = client.submit(t.echo, "later")
        where = settled_on(fut)
        wait_until(fut.done, 30, "the future to settle by itself")
        assert where == [IO_THREAD] and fut.result() == "later"


def test_with_another_future_open_the_io_thread_serves(cluster, tmp_path: Path):
    start(cluster)
    started, gate = str(tmp_path / "s"), str(tmp_path / "g")
    with zq.Client(cluster.endpoint) as client:
        slow = client.submit(t.gated, started, gate, "slow")
        wait_until(lambda: Path(started).exists(), 30, "the gated task to start")
        for i in range(5):  # not lone: the general path
            fut = client.submit(t.echo, i)
            where = settled_on(fut)
            assert fut.result(timeout=30) == i
            assert where == [IO_THREAD]
        Path(gate).touch()
        assert slow.result(timeout=30) == "slow"


def test_timeout_and_cancel_while_leading(cluster, tmp_path: Path):
    start(cluster)
    started, gate = str(tmp_path / "s"), str(tmp_path / "g")
    with zq.Client(cluster.endpoint) as client:
        fut = client.submit(t.gated, started, gate, "v")
        with pytest.raises(cf.TimeoutError):
            fut.result(timeout=0.2)  # led for 0.2 s, then gave the loop back
        wait_until(lambda: Path(started).exists(), 30, "the gated task to start")
        assert client.submit(t.echo, 1).result(timeout=30) == 1  # the loop is whole
        # A thread leads waiting for fut; another revokes it: the leader wakes with it.
        got: list[Any] = []

        def waiter() -> None:
            try:
                got.append(fut.result(timeout=30))
            except BaseException as e:  # what the test checks
                got.append(e)

        th = threading.Thread(target=waiter, name="waiter")
        th.start()
        wait_until(lambda: client._mailbox.lead_wanted(), 30, "the waiter to lead")
        assert fut.revoke() is True
        th.join(30)
        assert not th.is_alive() and len(got) == 1
        assert isinstance(got[0], cf.CancelledError)
        Path(gate).touch()
        assert client.submit(t.echo, 2).result(timeout=30) == 2


def test_a_result_for_another_thread_arrives_while_one_leads(cluster, tmp_path: Path):
    start(cluster)
    started, gate = str(tmp_path / "s"), str(tmp_path / "g")
    with zq.Client(cluster.endpoint) as client:
        slow = client.submit(t.gated, started, gate, "slow")
        wait_until(lambda: Path(started).exists(), 30, "the gated task to start")
        out: dict[str, Any] = {}

        def lead_on_slow() -> None:
            out["slow"] = slow.result(timeout=60)

        leader = threading.Thread(target=lead_on_slow, name="leader")
        leader.start()
        wait_until(lambda: client._mailbox.lead_wanted(), 30, "the thread to lead")
        quick = client.submit(t.echo, "quick")  # this thread cannot lead: it waits
        where = settled_on(quick)
        assert quick.result(timeout=30) == "quick"
        assert where == ["leader"]  # settled by the leader's loop, not the I/O thread
        assert leader.is_alive() and "slow" not in out
        Path(gate).touch()
        leader.join(30)
        assert out == {"slow": "slow"}


def test_many_threads_submitting_and_waiting_at_once(cluster):
    """Whether a thread leads at a given moment depends on the timing (lone or not); every
    mix of leading and waiting must give every thread its own results."""
    start(cluster)
    with zq.Client(cluster.endpoint) as client:
        got: dict[int, Any] = {}
        errors: list[BaseException] = []
        lock = threading.Lock()

        def run(k: int) -> None:
            try:
                for i in range(k * 1000, k * 1000 + 40):
                    value = client.submit(t.echo, i).result(timeout=60)
                    with lock:
                        got[i] = value
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(k,), name=f"s{k}") for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors and not any(th.is_alive() for th in threads)
        assert got == {i: i for k in range(8) for i in range(k * 1000, k * 1000 + 40)}
        assert client.submit(t.echo, "after").result(timeout=30) == "after"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="Ctrl-C goes to the main thread")
def test_ctrl_c_while_leading_leaves_the_client_whole(cluster, tmp_path: Path):
    start(cluster)
    started, gate = str(tmp_path / "s"), str(tmp_path / "g")
    main = threading.main_thread().ident
    with zq.Client(cluster.endpoint) as client:
        fut = client.submit(t.gated, started, gate, "v")
        wait_until(lambda: Path(started).exists(), 30, "the gated task to start")

        def interrupt() -> None:  # once the main thread leads, waiting in poll
            wait_until(lambda: client._mailbox.lead_wanted(), 30, "the main thread to lead")
            signal.pthread_kill(main, signal.SIGINT)

        th = threading.Thread(target=interrupt)
        th.start()
        with pytest.raises(KeyboardInterrupt):
            fut.result(timeout=30)
        th.join(30)
        Path(gate).touch()
        assert fut.result(timeout=30) == "v"
        assert client.submit(t.echo, 3).result(timeout=30) == 3
