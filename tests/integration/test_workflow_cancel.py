"""Cancelling a workflow from its final future (issue 17) with a real master and worker:
what has not run is cancelled upstream too (the earlier steps of a chain, the members of
a chord), not only what follows; what another task still needs is left alone."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

import zq
from tests.apps import workflow_tasks as w
from tests.integration.harness import wait_until

APP = "tests.apps.workflow_tasks"
HELD = 3600  # a delay that keeps a step waiting in the master for the whole test


@pytest.fixture
def client(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    with zq.Client(cluster.endpoint) as c:
        yield c


def states(client) -> dict[str, str]:
    return {t["id"]: t["state"] for t in client.tasks(limit=1000)}


def test_cancelling_a_chains_final_future_cancels_its_earlier_steps(client):
    final = client.submit(zq.chain(w.add.s(1, 2).set(delay=HELD), w.mul.s(10), w.add.s(1)))
    wait_until(lambda: len(states(client)) == 3, 20, "the chain's three steps accepted")
    assert client.cancel(final)
    with pytest.raises(cf.CancelledError):
        final.result(timeout=30)
    wait_until(lambda: set(states(client).values()) == {"cancelled"}, 20,
               "every step of the chain cancelled")


def test_cancelling_a_chord_cancels_its_members_not_started(client):
    done = client.submit(w.add, 1, 1)
    assert done.result(timeout=30) == 2
    final = client.submit(zq.chord(zq.group(w.mul.s(i, 2).set(delay=HELD) for i in range(20)),
                                   w.total.s()))
    wait_until(lambda: len(states(client)) == 22, 20, "the chord accepted")
    client.cancel(final)
    wait_until(lambda: list(states(client).values()).count("cancelled") == 21, 20,
               "the callback and the 20 members cancelled")
    assert states(client)[done.id] == "succeeded"


def test_a_group_of_chains_cancels_each_chain(client):
    g = client.submit(zq.group(zq.chain(w.add.s(i, 1).set(delay=HELD), w.mul.s(2))
                               for i in range(3)))
    wait_until(lambda: len(states(client)) == 6, 20, "the three chains accepted")
    assert g.cancel()
    wait_until(lambda: set(states(client).values()) == {"cancelled"}, 20,
               "both steps of every chain cancelled")


def test_an_input_another_task_takes_is_left_alone(client):
    shared = client.options(delay=HELD).submit(w.add, 1, 2)
    other = client.submit(w.mul, shared, 5)
    final = client.submit(zq.chain(w.add.s(shared, 1), w.mul.s(2)))
    wait_until(lambda: len(states(client)) == 4, 20, "the four tasks accepted")
    client.cancel(final)
    wait_until(lambda: list(states(client).values()).count("cancelled") == 2, 20,
               "the chain's two steps cancelled")
    now = states(client)
    assert (now[shared.id], now[other.id]) == ("pending", "pending")
