"""Code shipping with real processes (docs/TASKS.md, Code shipping): a master with
--keys, a worker with --allow-code, zq.Client(ship_code=True). Lambdas, closures, bound
methods and functions of a script's __main__ run and return; a worker without the flag
fails such a task with an error saying how to run it and serves on; the master routes
shipped tasks to --allow-code workers when it has one; a master without keys refuses an
--allow-code worker, which exits non-zero saying why; a payload that is not a pickle
fails its task cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

import zq
from tests.apps import ship_tasks as st
from tests.integration.harness import ROOT
from zq.core.shipped import task_name
from zq.security import load_keys_folder

APP = "tests.apps.ship_tasks"


def zq_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zq", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    done = zq_cli("keys", "init", str(tmp_path / "zq-keys"))
    assert done.returncode == 0, done.stderr
    return tmp_path / "zq-keys"


@pytest.fixture
def keyed(cluster, folder):
    """A master with keys; the test starts the workers it needs."""
    cluster.client_keys = load_keys_folder(str(folder), "client")
    cluster.start_master("memory", "--keys", str(folder))
    return cluster


def code_worker(cluster, folder, name="coder", pool="process", concurrency=1):
    return cluster.start_worker(APP, name=name, pool=pool, concurrency=concurrency,
                                extra=("--keys", str(folder), "--allow-code"))


def test_lambda_closure_bound_method_and_nested_function_run(keyed, folder):
    code_worker(keyed, folder)
    base = 100

    def nested(x, *, extra=0):
        return x + base + extra

    def make_adder(n):
        return lambda x: x + n

    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        assert client.submit(lambda x, y: (x * y, "tuple"), 6, 7).result(timeout=30) == \
            (42, "tuple")
        assert client.submit(make_adder(5), 1).result(timeout=30) == 6  # a closure
        assert client.submit(nested, 1, extra=2).result(timeout=30) == 103
        assert client.submit(st.Scaler(3).scale, 5).result(timeout=30) == 15  # bound method
        # An argument that is no value (a plain object, a function) is pickled.
        assert client.submit(lambda s, f: f(s.k), st.Scaler(4), lambda k: k * 10
                             ).result(timeout=30) == 40
        # A plain task still goes by name, as without ship_code.
        assert client.submit(st.add, 2, 3).result(timeout=30) == 5
        names = {t["name"] for t in client.tasks(limit=20)}
    assert task_name("tests.apps.ship_tasks.Scaler.scale") in names
    assert task_name(f"{nested.__module__}.{nested.__qualname__}") in names
    assert f"{APP}:add" in names  # by name


def test_executor_map_ships_a_lambda(keyed, folder):
    code_worker(keyed, folder, pool="thread", concurrency=2)
    with zq.Executor(keyed.endpoint, keys=folder, ship_code=True) as ex:
        k = 3
        assert list(ex.map(lambda x: x * k, range(10), timeout=60)) == [x * 3 for x in range(10)]


MAIN_SCRIPT = """
import sys
import zq

class Greeter:
    def __init__(self, greeting):
        self.greeting = greeting

    def greet(self, name):
        return f"{self.greeting}, {name}"

def shout(word):
    return word.upper() + "!"

with zq.Client(sys.argv[1], keys=sys.argv[2], ship_code=True) as client:
    print(client.submit(shout, "hi").result(timeout=30))
    print(client.submit(Greeter("hello").greet, "zq").result(timeout=30))
"""


def test_functions_and_classes_of_a_scripts_main_run(keyed, folder, tmp_path):
    code_worker(keyed, folder)
    script = tmp_path / "script.py"
    script.write_text(MAIN_SCRIPT)
    done = subprocess.run([sys.executable, str(script), keyed.endpoint, str(folder)],
                          capture_output=True, text=True, timeout=90, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["HI!", "hello, zq"]


def test_a_worker_without_the_flag_refuses_with_the_way_out_then_serves_on(keyed, folder):
    keyed.start_worker(APP, name="plain", pool="process", concurrency=1,
                       extra=("--keys", str(folder)))
    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        with pytest.raises(zq.TaskError) as caught:
            client.submit(lambda: 1).result(timeout=30)
        assert caught.value.type_name == "CodeNotAllowed"
        assert "zq worker --allow-code" in str(caught.value)
        assert "--keys" in str(caught.value)
        assert client.submit(st.add, 20, 22).result(timeout=30) == 42


def test_shipped_tasks_go_to_the_allow_code_worker(keyed, folder):
    # The plain worker has the most idle slots: dispatch would offer it the tasks first.
    keyed.start_worker(APP, name="plain", pool="thread", concurrency=8,
                       extra=("--keys", str(folder)))
    code_worker(keyed, folder, pool="thread", concurrency=1)
    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        futures = [client.submit(lambda i: i * i, i) for i in range(8)]
        assert [f.result(timeout=60) for f in futures] == [i * i for i in range(8)]
        assert client.submit(st.add, 1, 1).result(timeout=30) == 2  # plain: anyone


def test_a_master_without_keys_refuses_an_allow_code_worker(cluster):
    cluster.start_master("memory")
    worker = cluster.start_worker(APP, name="coder", pool="thread", extra=("--allow-code",),
                                  wait=False)
    assert worker.wait(30) == 3  # non-zero: REFUSED_EXIT
    assert "start the master with --keys" in worker.output()
    assert "refused worker coder" in cluster.master.output()
    assert cluster.workers() == set()


def test_a_shipped_payload_that_is_no_pickle_fails_its_task_cleanly(keyed, folder):
    code_worker(keyed, folder)
    name = task_name("hostile.<lambda>")
    bad = [
        b"\x92\x92\xc4\x05junk!\x01\x80",  # [[b"junk!", 1], {}]: code that is no pickle
        b"\x92\xc4\x03abc\xc4\x02no",  # [code, call]: neither unpickles
        b"\x93\x01\x02\x03",  # no shipped payload at all
        b"\xc1",  # not even msgpack
    ]
    with zq.Client(keyed.endpoint, keys=folder) as client:
        for payload in bad:
            # What a hostile client sends: any bytes under a shipped task's name.
            fut = client._mailbox.submit_packed((name, {}), payload)
            with pytest.raises(zq.TaskError) as caught:
                fut.result(timeout=30)
            assert caught.value.type_name == "SerializationError"
            assert "cannot load the shipped task" in str(caught.value)
    # The worker lives on and still runs shipped code.
    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        assert client.submit(lambda: "alive").result(timeout=30) == "alive"


def test_the_async_pool_runs_shipped_functions_and_coroutines(keyed, folder):
    code_worker(keyed, folder, pool="async", concurrency=2)

    async def coroutine(x):
        return x + 1

    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        assert client.submit(lambda: "sync").result(timeout=30) == "sync"
        assert client.submit(coroutine, 41).result(timeout=30) == 42


shipped_values = hst.recursive(
    hst.none() | hst.booleans() | hst.integers() | hst.floats(allow_nan=False) | hst.text()
    | hst.binary(),
    lambda inner: hst.lists(inner, max_size=3) | hst.tuples(inner, inner)
    | hst.dictionaries(hst.text(max_size=4), inner, max_size=3),
    max_leaves=12)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_shipped_calls_round_trip_through_a_worker(keyed, folder):
    """Arguments as values, or pickled when one is not (a Scaler), through a process-pool
    child: the shipped lambda gets what was sent."""
    code_worker(keyed, folder, pool="process")

    def unwrap(x):
        return ("Scaler", x.k) if isinstance(x, st.Scaler) else x

    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(args=hst.lists(shipped_values, max_size=3), kwargs=hst.dictionaries(
            hst.text(min_size=1, max_size=6), shipped_values, max_size=2),
            scaler=hst.booleans())
        def round_trip(args, kwargs, scaler):
            sent = [*args, st.Scaler(5)] if scaler else args
            got = client.submit(lambda *a, **k: ([unwrap(x) for x in a], k), *sent, **kwargs
                                ).result(timeout=30)
            assert got == ([unwrap(x) for x in sent], kwargs)

        round_trip()


def test_a_numpy_array_travels_to_and_from_shipped_code(keyed, folder):
    np = pytest.importorskip("numpy")
    code_worker(keyed, folder, pool="process")
    big = np.arange(10_000)  # 80 KB: frames of their own (docs/PROTOCOL.md §2.1)
    with zq.Client(keyed.endpoint, keys=folder, ship_code=True) as client:
        got = client.submit(lambda a, k: a * k, big, 3).result(timeout=30)
        assert (got == big * 3).all()
        got = client.submit(lambda a, s: a * s.k, big, st.Scaler(2)).result(timeout=30)
        assert (got == big * 2).all()  # the arguments pickled, the array with them
