"""Issue 16, the operators' commands given a list of masters (one active on a shared
PostgreSQL store, one standby): `zq ping` goes round the list to the active master,
and asked a standby alone it says so, naming the active one, and exits 2 (0 with
--standby-ok, for a standby host's own health check); `zq events` subscribes through
the list (the standby first: it goes on to the active master) and prints events."""

from __future__ import annotations

import json

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import Cluster, Proc, free_port, wait_until
from tests.integration.test_cli_ops import zq_cli

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def two_masters(cluster: Cluster, database) -> tuple[str, str]:  # noqa: F811
    a_end, b_end = cluster.endpoint, f"tcp://127.0.0.1:{free_port()}"
    a = cluster.start_master(database)
    b = cluster.start_master(database, bind=b_end, wait=False)
    cluster.master = a
    wait_until(lambda: "standby:" in b.output(), 20, "the second master to wait as standby")
    return a_end, b_end


def test_ping_goes_round_the_list_and_says_when_a_standby_answers(two_masters):
    a_end, b_end = two_masters
    up = zq_cli("ping", "--timeout", "5s", "--connect", f"{b_end},{a_end}")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("master ") and " answered in " in up.stdout
    standby = zq_cli("ping", "--timeout", "1s", "--connect", b_end)
    assert (standby.returncode, standby.stdout) == (2, ""), standby.stderr
    assert f"the master at {b_end} is a standby, active is {a_end}" in standby.stderr
    ok = zq_cli("ping", "--timeout", "1s", "--connect", b_end, "--standby-ok")
    assert ok.returncode == 0, ok.stderr
    assert f"the master at {b_end} is a standby, active is {a_end}" in ok.stdout


def test_events_subscribes_through_a_list_that_starts_with_the_standby(
        two_masters, cluster: Cluster, tmp_path):
    a_end, b_end = two_masters
    reader = Proc(["events", "--json", "--kind", "submitted", "--count", "1",
                   "--connect", f"{b_end},{a_end}"], tmp_path / "events.log")
    try:
        with zq.Client(a_end) as client:
            def subscribed_and_seen() -> bool:
                client.submit(t.add, 1, 2)  # again until the reader has subscribed
                return not reader.alive()
            wait_until(subscribed_and_seen, 30, "zq events to print a submitted event",
                       interval=0.2)
        assert reader.wait(10) == 0, reader.output()
        lines = [line for line in reader.output().splitlines() if line.startswith("{")]
        assert json.loads(lines[0])["kind"] == "submitted"
    finally:
        if reader.alive():
            reader.kill()
