"""Remote exceptions keep their meaning through a real master and worker (issue 13):
args with their types, OSError's errno/strerror/filename, an app's own exception class;
a worker that sends a malformed error payload gives the client a TaskError, and the
client goes on working."""

from __future__ import annotations

import msgpack
import pytest

import zq
from tests.apps import futures_tasks as t
from tests.integration.raw_peer import RawPeer
from zq.core import messages as m
from zq.core.messages import Role
from zq.errors import RemoteTraceback

APP = "tests.apps.futures_tasks"


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_exceptions_come_back_with_their_args(cluster, tmp_path, pool):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool=pool)
    with zq.Client(cluster.endpoint) as client:
        err = client.submit(t.raise_value_error, 123).exception(timeout=30)
        assert type(err) is ValueError and err.args == (123,)
        assert isinstance(err.__cause__, RemoteTraceback)
        assert "raise ValueError(*args)" in err.__cause__.traceback
        missing = str(tmp_path / "missing.txt")
        err = client.submit(t.open_missing, missing).exception(timeout=30)
        assert type(err) is FileNotFoundError
        assert (err.errno, err.filename) == (2, missing) and err.strerror
        err = client.submit(t.raise_app_error, "x", (1, 2)).exception(timeout=30)
        assert type(err) is t.AppError and err.args == ("x", (1, 2))
        with pytest.raises(t.CodedError) as info:
            client.submit(t.raise_coded, 7, "why").result(timeout=30)
        assert info.value.code == 7
        err = client.submit(t.raise_meta).exception(timeout=30)
        assert type(err) is zq.TaskError and err.type_name == "MetaError"


@pytest.mark.parametrize("payload", [
    b"\xc1 not msgpack",
    msgpack.packb([1, 2, 3]),
    msgpack.packb({"type": 5, "message": None}),
    msgpack.packb({"type": "ValueError", "message": "m", "args": "not a list",
                   "errno": "x", "module": 7}),
    msgpack.packb({"type": "Boom", "message": "m", "module": "zq_never_imported_mod",
                   "qualname": "Boom", "args": [1]}),
    msgpack.packb({"type": "CodedError", "message": "m", "module": "tests.apps.futures_tasks",
                   "qualname": "CodedError", "args": [1, 2, 3, 4]}),  # __init__ refuses
])
def test_a_malformed_error_payload_is_a_task_error(cluster, payload):
    """A raw worker answers a task with an error payload that is garbage or names what
    cannot be rebuilt: the future fails with TaskError (whatever remains readable), and
    the same client then gets a normal result."""
    cluster.liveness = 40  # 10 s: the raw worker sends no heartbeat while it holds a task
    cluster.start_master()
    with RawPeer(cluster.endpoint, Role.WORKER) as worker, zq.Client(cluster.endpoint) as c:
        worker.hello("raw", credit=2)
        bad = c.submit(t.echo, 1)
        task = worker.recv_until(lambda x: isinstance(x, m.Task))
        worker.send(m.Result([(bad.id, task.entries[0][1], 2, payload)]))
        err = bad.exception(timeout=10)
        assert type(err) is zq.TaskError
        good = c.submit(t.echo, 2)
        task = worker.recv_until(lambda x: isinstance(x, m.Task))
        worker.send(m.Result([(good.id, task.entries[0][1], 0, msgpack.packb("fine"))]))
        assert good.result(timeout=10) == "fine"
