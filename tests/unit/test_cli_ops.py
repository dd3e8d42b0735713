"""The command line as operations use it (issue 14), parsed with typer's CliRunner, no
master: every flag has a ZQ_* variable shown in --help, choice flags refuse other values,
durations read the same everywhere, and flags and variables reach the configs."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import typer
from typer.testing import CliRunner

from zq import cli, config
from zq.cli import app, parse_duration
from zq.core.queries import FINAL_LABELS, STATE_LABELS

runner = CliRunner()
WIDE = {"TERMINAL_WIDTH": "250", "COLUMNS": "250"}  # help and errors unwrapped
# One variable, one meaning: a variable shared by several flags only where they are the
# same flag; the keys folder is also `zq keys add --dir` and `zq keys init DIRECTORY`.
SAME_MEANING = {"ZQ_KEYS": {"--keys", "--dir"}}


def flat(output: str) -> str:
    """Output as one line: without the boxes typer draws, lines joined."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, path + (name,))
        else:
            yield path + (name,), command


def flags(command: Any) -> list[Any]:
    return [p for p in command.params
            if p.param_type_name == "option" and p.name != "help"]


ROOT_COMMAND = typer.main.get_command(app)
ALL_COMMANDS = list(commands(ROOT_COMMAND))


def test_the_walk_sees_every_command():
    names = {" ".join(path) for path, _ in ALL_COMMANDS}
    assert {"master", "worker", "submit", "ping", "tasks", "keys add", "schedule add"} <= names


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=lambda x: " ".join(x)
                         if isinstance(x, tuple) else "")
def test_every_flag_has_a_zq_variable_shown_in_help(path, command):
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    shown = flat(result.output)
    for option in flags(command):
        assert isinstance(option.envvar, str) and option.envvar.startswith("ZQ_"), \
            (path, option.opts)
        assert f"[env var: {option.envvar}]" in shown, (path, option.opts)


def test_a_variable_means_one_thing():
    seen: dict[str, set[str]] = {}
    for _, command in ALL_COMMANDS:
        names = [o.envvar for o in flags(command)]
        assert len(names) == len(set(names)), names  # none twice in one command
        for option in flags(command):
            seen.setdefault(option.envvar, set()).add(option.opts[0])
    for env, opts in seen.items():
        assert opts == SAME_MEANING.get(env, opts) and (len(opts) == 1 or env in SAME_MEANING), \
            (env, opts)


def test_durations():
    cases = {"250ms": 0.25, "30s": 30, "5m": 300, "1h": 3600, "2d": 172800, "90": 90,
             "1.5": 1.5, ".5": 0.5, " 10 s ": 10, "0": 0}
    assert {text: parse_duration(text) for text in cases} == cases
    for bad in ("soon", "5 minutes", "-1s", "1e3", "", "ms", "1h30m", "inf", "nan", "5M"):
        with pytest.raises(typer.BadParameter, match="is not a duration like 250ms, 30s"):
            parse_duration(bad)


def test_choice_flags_match_what_the_rest_of_zq_accepts():
    assert tuple(p.value for p in cli.Pool) == config.POOLS
    assert tuple(s.value for s in cli.TaskState) == STATE_LABELS
    assert tuple(s.value for s in cli.FinalState) == FINAL_LABELS


@pytest.mark.parametrize("args, env, refused", [
    (["worker", "--app", "m", "--pool", "fork"], {},
     "Invalid value for '--pool' (env var: 'ZQ_POOL'): Value error, 'fork' is not one of "
     "'process', 'thread', 'async'"),
    (["worker", "--app", "m"], {"ZQ_POOL": "fork"}, "'fork' is not one of 'process'"),
    (["master", "--store-sync", "always"], {}, "'always' is not one of 'normal', 'full'"),
    (["master", "--log-level", "loud"], {},
     "'loud' is not one of 'debug', 'info', 'warning', 'error'"),
    (["tasks", "--state", "done"], {}, "'done' is not one of 'pending', 'queued', 'running'"),
    (["purge", "--state", "running"], {}, "'running' is not one of 'succeeded', 'failed'"),
    (["master", "--result-ttl", "forever"], {},
     "Invalid value for '--result-ttl' (env var: 'ZQ_RESULT_TTL'): 'forever' is not a "
     "duration"),
    (["status"], {"ZQ_TIMEOUT": "soon"}, "(env var: 'ZQ_TIMEOUT'): 'soon' is not a duration"),
    (["submit", "m:f"], {"ZQ_TIMEOUT": "soon"}, "ZQ_TIMEOUT='soon' is not a duration"),
    (["schedule", "add", "s", "m:f", "--every", "often"], {}, "'often' is not a duration"),
])
def test_a_bad_value_is_refused_with_the_flag_and_the_choices(args, env, refused):
    result = runner.invoke(app, [*args, "--connect", "tcp://127.0.0.1:1"]
                           if args[0] not in ("master", "worker") else args, env={**WIDE, **env})
    assert result.exit_code == 2, result.output
    assert refused in flat(result.output)


def test_flags_and_variables_reach_the_master_config(monkeypatch):
    import zq.master
    seen: list[config.MasterConfig] = []
    monkeypatch.setattr(zq.master, "run_master", lambda c: seen.append(c) or 0)
    result = runner.invoke(app, ["master", "--heartbeat-interval", "250ms",
                                 "--store-sync", "full", "--log-level", "WARNING"],
                           env={"ZQ_RESULT_TTL": "2h", "ZQ_STORE": "memory",
                                "ZQ_BIND": "tcp://127.0.0.1:7", "ZQ_MAX_CONNECTIONS": "9"})
    assert result.exit_code == 0, result.output
    c = seen[0]
    assert (c.heartbeat_interval, c.result_ttl, c.store_sync, c.store, c.bind,
            c.max_connections) == (0.25, 7200.0, "full", "memory", "tcp://127.0.0.1:7", 9)


def test_variables_reach_the_worker_config(monkeypatch):
    import zq.worker
    seen: list[config.WorkerConfig] = []
    monkeypatch.setattr(zq.worker, "run_worker", lambda c: seen.append(c) or 0)
    result = runner.invoke(app, ["worker"], env={
        "ZQ_APP": "one.tasks two.tasks", "ZQ_POOL": "thread", "ZQ_CONCURRENCY": "3",
        "ZQ_SHUTDOWN_TIMEOUT": "1m", "ZQ_QUEUES": "a,b", "ZQ_WORKER_NAME": "gpu-1",
        "ZQ_CONNECT": "tcp://10.0.0.1:5555", "ZQ_PREFETCH": "0"})
    assert result.exit_code == 0, result.output
    c = seen[0]
    assert (c.apps, c.pool, c.concurrency, c.shutdown_timeout, c.queues, c.name, c.connect,
            c.prefetch) == (("one.tasks", "two.tasks"), "thread", 3, 60.0, ("a", "b"),
                            "gpu-1", "tcp://10.0.0.1:5555", 0)


def test_a_flag_wins_over_its_variable(monkeypatch):
    import zq.worker
    seen: list[config.WorkerConfig] = []
    monkeypatch.setattr(zq.worker, "run_worker", lambda c: seen.append(c) or 0)
    result = runner.invoke(app, ["worker", "--pool", "async", "--app", "m"],
                           env={"ZQ_POOL": "thread", "ZQ_APP": "x"})
    assert result.exit_code == 0, result.output
    assert (seen[0].pool, seen[0].apps) == ("async", ("m",))


def test_tables_keep_every_cell_whole_and_literal_off_a_terminal(capsys):
    long_name = "myapp.tasks:" + "x" * 300
    cli._table(["id", "name"], [["a1", long_name], ["b2", "[bold]not markup[/bold]"]])
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split() for ln in lines] == [["id", "name"], ["a1", long_name],
                                            ["b2", "[bold]not", "markup[/bold]"]]
    assert all(ln == ln.rstrip() for ln in lines)
    cli._table(["id"], [])
    assert capsys.readouterr().out == ""  # no rows, no header


TIME_WORDS = ("timeout", "delay", "interval", "ttl", "every", "older_than", "backoff")


def test_every_time_flag_takes_a_duration():
    times = [(path, o.name) for path, command in ALL_COMMANDS for o in flags(command)
             if any(word in o.name for word in TIME_WORDS)]
    assert len(times) >= 12, times
    for path, command in ALL_COMMANDS:
        for o in flags(command):
            if any(word in o.name for word in TIME_WORDS):
                assert o.metavar == "DURATION", (path, o.name)  # set only by cli._duration
