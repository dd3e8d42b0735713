"""The command line for operations, as real processes (issue 14): `zq ping` as a health
check (exit 0 when the master answers, 1 when none does or it refuses the key), a master
configured by ZQ_* variables alone, and shell completion of the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import ROOT, Cluster, Proc, free_port, query, wait_until
from zq.security import load_keys_folder


def zq_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZQ_")}
    return subprocess.run([sys.executable, "-m", "zq", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT,  # a bound against a hang only
                          env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def test_ping_answers_while_the_master_is_up_and_fails_once_it_is_gone(cluster: Cluster):
    master = cluster.start_master()
    up = zq_cli("ping", "--timeout", "2s", "--connect", cluster.endpoint)
    assert up.returncode == 0, up.stderr
    master_id = cluster.status()["master_id"]
    assert up.stdout.startswith(f"master {master_id} at {cluster.endpoint} answered in ")
    assert up.stdout.rstrip().endswith(" ms: 0 workers")

    master.kill()
    down = zq_cli("ping", "--timeout", "500ms", "--connect", cluster.endpoint)
    assert (down.returncode, down.stdout) == (1, ""), down.stderr
    assert down.stderr.splitlines() == [
        f"error: no zq master answered at {cluster.endpoint} within 0.5 s: is it running? "
        f"(start one with: zq master --bind tcp://*:{cluster.port})"]


def test_ping_where_nothing_ever_listened_takes_its_timeout_from_zq_timeout():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    down = zq_cli("ping", env={"ZQ_CONNECT": endpoint, "ZQ_TIMEOUT": "250ms"})
    assert down.returncode == 1
    assert f"no zq master answered at {endpoint} within 0.25 s" in down.stderr


def test_ping_with_keys(cluster: Cluster, tmp_path: Path):
    folder = tmp_path / "zq-keys"
    made = zq_cli("keys", "init", env={"ZQ_KEYS": str(folder)})  # the folder from ZQ_KEYS
    assert made.returncode == 0, made.stderr
    cluster.client_keys = load_keys_folder(str(folder), "client")
    cluster.start_master("memory", "--keys", str(folder))
    up = zq_cli("ping", "--connect", cluster.endpoint, env={"ZQ_KEYS": str(folder)})
    assert up.returncode == 0, up.stderr
    # A key the master does not know: it is refused, and ping says so.
    other = tmp_path / "other-keys"
    assert zq_cli("keys", "init", str(other)).returncode == 0
    (other / "master.key").write_bytes((folder / "master.key").read_bytes())
    refused = zq_cli("ping", "--timeout", "5s", "--connect", cluster.endpoint, "--keys",
                     str(other))
    assert refused.returncode == 1, refused.stdout
    assert "refused this client's key" in refused.stderr, refused.stderr


def test_a_master_configured_by_variables_alone(tmp_path: Path):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    store = tmp_path / "from-env.db"
    master = Proc(["master"], tmp_path / "master.log", env={
        "ZQ_BIND": endpoint, "ZQ_STORE": str(store), "ZQ_HEARTBEAT_INTERVAL": "250ms",
        "ZQ_STORE_SYNC": "full", "ZQ_LOG_LEVEL": "debug"})
    try:
        wait_until(lambda: master.alive() and query(endpoint, timeout=0.5), 15,
                   "the master configured by ZQ_* variables to answer")
        assert store.exists()  # ZQ_STORE was used, not ./zq.db
        up = zq_cli("ping", env={"ZQ_CONNECT": endpoint})
        assert up.returncode == 0, up.stderr
    finally:
        master.close()


def test_shell_completion_of_commands_and_choices():
    def complete(words: str, index: int) -> list[str]:
        done = zq_cli(env={"_ZQ_COMPLETE": "complete_bash", "COMP_WORDS": words,
                           "COMP_CWORD": str(index)})
        assert done.returncode == 0, done.stderr
        return done.stdout.split()
    assert complete("zq pi", 1) == ["ping"]
    assert complete("zq worker --pool ", 3) == ["process", "thread", "async"]
    assert complete("zq tasks --state d", 3) == ["dead"]
    # Typer guesses the shell from the parent process (sh under make); this variable
    # makes --show-completion take the shell's name instead.
    script = zq_cli("--show-completion", "bash",
                    env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "_ZQ_COMPLETE=complete_bash" in script.stdout
