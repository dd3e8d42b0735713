"""One keys folder for a whole setup (zq keys init / add, --keys DIR): its layout, the
modes of its files, one role per key, and which key each side picks from it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zq.cli import app
from zq.config import ClientConfig
from zq.core.messages import Role
from zq.errors import ConfigError
from zq.security import add_key, client_keys_folder, load_keys_folder, load_master_keys, peer_keys


def public_of(path: Path) -> bytes:
    import zmq.auth
    return zmq.auth.load_certificate(str(path))[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    result = CliRunner().invoke(app, ["keys", "init", str(tmp_path / "zq-keys")])
    assert result.exit_code == 0, result.output
    return tmp_path / "zq-keys"


def test_init_writes_the_layout_the_master_reads(folder):
    assert (folder / "master.key").is_file() and (folder / "master.key_secret").is_file()
    for role, sub in (("worker", "workers"), ("client", "clients"), ("admin", "admins")):
        public = folder / sub / f"{role}.key"
        secret = folder / "private" / sub / f"{role}.key_secret"
        assert public_of(public) == public_of(secret)  # the pair's two halves
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert stat.S_IMODE(public.stat().st_mode) == 0o644
        assert not list((folder / sub).glob("*.key_secret"))  # no secret where publics are
    assert stat.S_IMODE((folder / "master.key_secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "private").stat().st_mode) & 0o077 == 0


def test_init_never_overwrites_keys(folder):
    before = (folder / "master.key_secret").read_bytes()
    result = CliRunner().invoke(app, ["keys", "init", str(folder)])
    assert result.exit_code != 0 and "already holds keys" in result.output
    assert (folder / "master.key_secret").read_bytes() == before


def test_the_master_reads_each_role_and_knows_its_admins(folder):
    keys = load_master_keys(None, None, None, keys=str(folder))
    assert keys is not None
    worker = public_of(folder / "workers" / "worker.key").decode()
    client = public_of(folder / "clients" / "client.key").decode()
    admin = public_of(folder / "admins" / "admin.key").decode()
    assert (keys.workers, keys.clients, keys.admins) == ({worker}, {client}, {admin})
    assert keys.is_admin(admin) and not keys.is_admin(client) and not keys.is_admin(worker)
    assert keys.admitted[Role.CLIENT] == {client, admin}  # an admin may act as a client
    assert keys.admitted[Role.WORKER] == {worker}
    assert keys.known == {worker, client, admin}


def test_a_key_in_two_roles_is_refused(folder):
    (folder / "admins" / "also.key").write_bytes((folder / "clients" / "client.key").read_bytes())
    with pytest.raises(ConfigError, match="a key has one role"):
        load_master_keys(None, None, None, keys=str(folder))


def test_add_puts_each_half_in_its_place_and_names_are_unique(folder):
    public, secret = add_key(folder, "worker", "gpu-3")
    assert public == folder / "workers" / "gpu-3.key"
    assert secret == folder / "private" / "workers" / "gpu-3.key_secret"
    with pytest.raises(ConfigError, match="already has a key named 'gpu-3'"):
        add_key(folder, "client", "gpu-3")
    with pytest.raises(ConfigError, match="role is one of worker, client, admin"):
        add_key(folder, "root", "x")
    with pytest.raises(ConfigError, match="is not a key name"):
        add_key(folder, "worker", "../escape")
    result = CliRunner().invoke(app, ["keys", "add", "admin", "ops", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "admins" / "ops.key").is_file()


def test_a_peer_picks_its_role_s_key(folder):
    worker = load_keys_folder(str(folder), "worker")
    assert worker.public == public_of(folder / "workers" / "worker.key")
    assert worker.master == public_of(folder / "master.key")
    add_key(folder, "worker", "gpu-3")  # several: the one init made is the default
    assert load_keys_folder(str(folder), "worker").public == worker.public
    (folder / "private" / "workers" / "worker.key_secret").unlink()
    add_key(folder, "worker", "gpu-4")
    with pytest.raises(ConfigError, match="several worker keys"):
        load_keys_folder(str(folder), "worker")


def test_a_client_uses_the_client_key_and_an_admin_action_the_admin_key(folder):
    client = public_of(folder / "clients" / "client.key")
    admin = public_of(folder / "admins" / "admin.key")
    assert client_keys_folder(str(folder), admin=False).public == client
    assert client_keys_folder(str(folder), admin=True).public == admin
    (folder / "private" / "admins" / "admin.key_secret").unlink()  # a client-only copy
    assert client_keys_folder(str(folder), admin=True).public == client


def test_keys_and_key_files_are_one_or_the_other(folder):
    with pytest.raises(ConfigError, match="not both"):
        peer_keys("worker", str(folder), str(folder / "master.key"), None)
    with pytest.raises(ConfigError, match="not both"):
        load_master_keys(str(folder / "master.key_secret"), None, None, keys=str(folder))
    with pytest.raises(ConfigError, match="zq keys init"):
        peer_keys("client", str(folder / "nope"), None, None)


def test_zq_keys_env_reaches_the_client_config(folder, monkeypatch):
    monkeypatch.setenv("ZQ_KEYS", str(folder))
    assert ClientConfig().keys == str(folder)
