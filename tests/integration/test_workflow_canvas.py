"""Canvas (issue 17) with a real master and real workers: signatures, chains, groups and
chords submitted as one workflow, each step held in the master until what it takes has
succeeded."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

import zq
from tests.apps import workflow_tasks as w
from tests.integration.harness import wait_until

APP = "tests.apps.workflow_tasks"


@pytest.fixture
def client(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=4)
    with zq.Client(cluster.endpoint) as c:
        yield c


def test_a_chain_passes_each_result_as_the_first_argument(client):
    f = client.submit(zq.chain(w.add.s(1, 2), w.mul.s(10), w.add.s(0.5)))
    assert f.result(timeout=30) == 30.5


def test_a_group_gives_a_group_future(client):
    g = client.submit(zq.group([w.add.s(i, i) for i in range(5)]))
    assert isinstance(g, zq.GroupFuture) and len(g) == 5
    assert g.result(timeout=30) == [0, 2, 4, 6, 8]
    assert sorted(f.result() for f in g.as_completed(timeout=30)) == [0, 2, 4, 6, 8]


def test_a_chord_calls_the_callback_with_the_list_of_results(client):
    f = client.submit(zq.chord(zq.group(w.mul.s(i, 2) for i in range(100)), w.total.s(1)))
    assert f.result(timeout=60) == 1 + sum(range(0, 200, 2))


def test_signatures_by_name_and_with_options(client):
    f = client.submit(zq.chain(zq.sig("tests.apps.workflow_tasks:slow", 0.0, 5),
                               w.add.s(1).set(priority=3)))
    assert f.result(timeout=30) == 6


def test_a_group_after_a_step_and_a_chord_in_a_chain(client):
    f = client.submit(zq.chain(w.add.s(1, 1), zq.group(w.mul.s(3), w.mul.s(4)), w.total.s()))
    assert f.result(timeout=30) == 14


def test_a_failed_step_fails_the_rest_with_dependency_failed(client):
    f = client.submit(zq.chain(w.fail.s("step one"), w.add.s(1), w.add.s(2)))
    with pytest.raises(zq.DependencyFailed) as info:
        f.result(timeout=30)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "step one"


def test_cancelling_a_group_cancels_what_has_not_run(client):
    g = client.submit(zq.group(zq.sig("tests.apps.workflow_tasks:slow", 0, i).set(delay=60)
                               for i in range(3)))
    after = client.submit(zq.chord(zq.group([]), w.total.s()))  # an empty chord: sum([])
    assert after.result(timeout=30) == 0
    wait_until(lambda: all(client.get(f.id)["state"] == "pending" for f in g), 20,
               "the delayed members to wait in the master")
    assert g.cancel()
    for f in g:
        with pytest.raises(cf.CancelledError):
            f.result(timeout=30)
