"""Issue 9, finding 1, end to end: a task name that reaches outside what the --app
module defines fails FATAL with UnknownTask on a real worker, in every pool, runs
nothing, and the worker goes on serving."""

from __future__ import annotations

import pytest

import zq

APP = "tests.apps.allow_list_app"


@pytest.mark.parametrize("pool", ["process", "thread", "async"])
def test_a_shell_command_through_an_imported_module_never_runs(cluster, tmp_path, pool):
    cluster.start_master("memory")
    cluster.start_worker(APP, name="w", pool=pool, concurrency=1)
    marker = tmp_path / "escaped"
    with zq.Client(cluster.endpoint) as client:
        for name in (f"{APP}:os.system", f"{APP}:system", f"{APP}:zq.pools.runner.os.system"):
            f = client.submit(name, f"touch {marker}")
            with pytest.raises(zq.UnknownTask, match="This worker has:"):
                f.result(timeout=20)
        # eval through the builtins of a module the app imported
        f = client.submit(f"{APP}:zq.core.serde.builtins.eval",
                          f"open({str(marker)!r}, 'w').close()")
        with pytest.raises(zq.UnknownTask):
            f.result(timeout=20)
        # ... and the app module cannot be rewritten through its own dunders
        f = client.submit(f"{APP}:__setattr__", "double", None)
        with pytest.raises(zq.UnknownTask):
            f.result(timeout=20)
        assert client.submit(f"{APP}:double", 21).result(timeout=20) == 42
        assert client.get(f.id)["state"] == "failed"  # FATAL: never retried
    assert not marker.exists()
