"""A client killed (-9) in the middle of sending a SUBMIT (issue 10): the master accepts
exactly the batches that reached it whole, each of those tasks runs once, and nothing
of the batch cut in its middle exists. The client talks through the fault proxy, which
throttles its link so the kill lands inside a message, and drops what it still holds
when the client dies (as a cut link would)."""

from __future__ import annotations

import sys
import textwrap

import zq
from tests.faults.checks import check_tasks, runs
from tests.faults.proxy import UP
from tests.integration.harness import Proc, wait_until
from zq.core import codec, serde
from zq.core import messages as m

APP = "tests.apps.e2e_tasks"
PAD = 3000  # characters of each tag: a SUBMIT of 100 tasks is about 300 kB

CLIENT = textwrap.dedent("""
    import sys, threading, zq
    endpoint, log, n, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    client = zq.Client(endpoint, config=zq.ClientConfig(connect=endpoint, batch_size=100))
    for i in range(n):
        client.submit("tests.apps.e2e_tasks:log_run", log, f"c{i}-" + "x" * pad)
    print("submitted", flush=True)
    threading.Event().wait()  # until killed
""")


def submitted(frames_list: list) -> list[tuple[str, str]]:
    """(task id, tag) of every entry of the SUBMITs among frames_list."""
    out = []
    for frames in frames_list:
        try:
            _, msg = codec.decode(frames)
        except Exception:
            continue
        if isinstance(msg, m.Submit):
            for tid, _, payload, _ in msg.entries:
                out.append((tid, serde.decode_call(payload)[0][1]))
    return out


def test_a_client_killed_mid_submit_leaves_no_half_accepted_batch(cluster, proxy_of, tmp_path):
    log = tmp_path / "runs"
    cluster.start_master(str(tmp_path / "zq.db"))
    link = proxy_of()
    link.capture = True
    link.abort_on_close = True  # what the link holds dies with the client
    link.up.rate = 200_000  # bytes/s: a 300 kB SUBMIT takes 1.5 s to go through
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    client = Proc([str(script), link.endpoint, str(log), "1000", str(PAD)],
                  tmp_path / "client.log", program=[sys.executable])
    cluster.procs.append(client)

    def inside_the_third_submit() -> bool:
        whole = [f for d, f in list(link.delivered) if d == UP]
        return len(submitted(whole)) >= 200 and link.mid_message(UP)
    wait_until(inside_the_third_submit, 60, "the client to be in the middle of a SUBMIT")
    client.kill()
    wait_until(lambda: link.connections() == 0, 10, "the proxy to drop the client's link")
    arrived = submitted([f for d, f in list(link.delivered) if d == UP])
    sent = submitted([f for d, f in list(link.captured) if d == UP])
    cut_off = [tid for tid, _ in sent if tid not in dict(arrived)]
    assert len(arrived) >= 200 and cut_off, (len(arrived), len(sent))

    cluster.start_worker(APP, name="w1", pool="thread", concurrency=4)
    with zq.Client(cluster.endpoint) as fresh:
        tags = {tid: tag for tid, tag in arrived}
        futures = [fresh.future(tid) for tid in tags]
        assert [f.result(timeout=60) for f in futures] == list(tags.values())
        assert check_tasks(fresh, tags, runs(log), tags) == 0  # exactly these, each once
        for tid in cut_off[:20]:
            try:
                fresh.get(tid)
            except zq.Rejected:
                continue
            raise AssertionError(f"task {tid} of the batch cut in its middle exists")
    assert not (set(runs(log)) - set(tags.values()))
