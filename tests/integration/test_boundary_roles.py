"""Roles with real keys (issue 9, "Roles"): a client key cancels the tasks it submitted,
not another client key's, and reads (watches) any; an admin key cancels any task."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import zq
from tests.integration.test_keys_folder import folder, zq_cli  # noqa: F401 (a fixture)
from zq.security import load_keys_folder


def host_of(folder: Path, tmp_path: Path, name: str) -> Path:
    """What one client host gets: master.key and that client's own secret."""
    copy = tmp_path / f"host-{name}"
    (copy / "private" / "clients").mkdir(parents=True)
    shutil.copy(folder / "master.key", copy)
    shutil.copy(folder / "private" / "clients" / f"{name}.key_secret",
                copy / "private" / "clients" / "client.key_secret")
    return copy


def test_a_client_key_touches_only_its_own_tasks(cluster, folder, tmp_path):  # noqa: F811
    done = zq_cli("keys", "add", "client", "other", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    cluster.client_keys = load_keys_folder(str(folder), "client")
    cluster.start_master("memory", "--keys", str(folder))  # no worker: tasks stay queued
    mine, other = host_of(folder, tmp_path, "client"), host_of(folder, tmp_path, "other")
    with zq.Client(cluster.endpoint, keys=mine) as owner, \
            zq.Client(cluster.endpoint, keys=other) as stranger, \
            zq.Client(cluster.endpoint, keys=folder) as admin:
        a = owner.submit("app:f", 1)
        b = owner.submit("app:f", 2)
        assert owner.flush(10)
        # Reading is every client's: a WATCH of another key's task is accepted (the
        # task is queued, so no result yet), never refused.
        with pytest.raises(TimeoutError):
            stranger.future(a.id).result(timeout=1)
        # Cancelling it: refused by the master (1.5's cancel_unstarted answers "denied"),
        # so cancel() says False, and the task stays queued.
        assert not stranger.future(b.id).cancel()
        stranger.status()  # answered after the CANCEL: one peer's messages keep their order
        assert owner.get(b.id)["state"] == "queued"
        assert a.cancel()  # its own
        assert owner.get(a.id)["state"] == "cancelled"
        admin.future(b.id).cancel()  # an admin watches and cancels any task
        assert admin.get(b.id)["state"] == "cancelled"
