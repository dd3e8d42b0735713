"""Key files and the errors a wrong key setup gets, before any socket is made."""

from __future__ import annotations

import stat

import pytest
from typer.testing import CliRunner

from zq.cli import app
from zq.core.messages import Role
from zq.errors import ConfigError
from zq.security import create_keys, load_master_keys, load_peer_keys


def test_zq_keys_add_writes_a_public_and_a_private_file(tmp_path):
    result = CliRunner().invoke(app, ["keys", "add", "worker", "w1", "--dir", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    public = tmp_path / "k" / "workers" / "w1.key"
    secret = tmp_path / "k" / "private" / "workers" / "w1.key_secret"
    assert "secret-key" not in public.read_text() and "secret-key" in secret.read_text()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644


def test_peer_keys_load_or_say_what_is_missing(tmp_path):
    create_keys(tmp_path, "master")
    create_keys(tmp_path, "w1")
    keys = load_peer_keys(str(tmp_path / "w1.key_secret"), str(tmp_path / "master.key"))
    assert keys is not None and len(keys.secret) == len(keys.master) == 40  # z85
    assert load_peer_keys(None, None) is None
    with pytest.raises(ConfigError, match="both --secret-key .* and --master-key"):
        load_peer_keys(str(tmp_path / "w1.key_secret"), None)
    with pytest.raises(ConfigError, match="holds no secret key: give the NAME.key_secret"):
        load_peer_keys(str(tmp_path / "w1.key"), str(tmp_path / "master.key"))
    with pytest.raises(ConfigError, match="cannot read the key file .*zq keys init"):
        load_peer_keys(str(tmp_path / "nope.key_secret"), str(tmp_path / "master.key"))


def test_master_keys_need_all_three_options_and_keep_roles_apart(tmp_path):
    create_keys(tmp_path, "master")
    create_keys(tmp_path / "workers", "w1")
    create_keys(tmp_path / "clients", "c1")
    keys = load_master_keys(str(tmp_path / "master.key_secret"), str(tmp_path / "workers"),
                            str(tmp_path / "clients"))
    assert keys is not None
    assert len(keys.admitted[Role.WORKER]) == len(keys.admitted[Role.CLIENT]) == 1
    assert keys.admitted[Role.WORKER].isdisjoint(keys.admitted[Role.CLIENT])
    assert load_master_keys(None, None, None) is None
    with pytest.raises(ConfigError, match="needs all of --secret-key"):
        load_master_keys(str(tmp_path / "master.key_secret"), str(tmp_path / "workers"), None)
    with pytest.raises(ConfigError, match="the client keys .* is not a directory"):
        load_master_keys(str(tmp_path / "master.key_secret"), str(tmp_path / "workers"),
                         str(tmp_path / "master.key"))


def test_zq_master_with_half_a_key_setup_stops_with_the_reason(tmp_path):
    create_keys(tmp_path, "master")
    result = CliRunner().invoke(app, ["master", "--bind", "tcp://127.0.0.1:1", "--store",
                                      "memory", "--secret-key",
                                      str(tmp_path / "master.key_secret")])
    assert result.exit_code != 0
    assert "needs all of --secret-key" in result.output
