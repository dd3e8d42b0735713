"""The command line's own parsing and error messages (typer's CliRunner, no master)."""

from __future__ import annotations

import threading

import pytest
import typer
from typer.testing import CliRunner

from zq import cli
from zq.cli import app, parse_arg, parse_duration, parse_eta

runner = CliRunner()
NOWHERE = "tcp://127.0.0.1:1"  # nothing listens there; these commands fail before asking


def flat(output: str) -> str:
    """An error as one line: without the box typer draws around it, lines joined."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def test_durations_args_and_etas():
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("1h") == 3600 and parse_duration("2d") == 172800
    with pytest.raises(typer.BadParameter, match="duration"):
        parse_duration("soon")
    assert parse_arg("3") == 3 and parse_arg('{"a": [1]}') == {"a": [1]}
    assert parse_arg("hello") == "hello"
    assert parse_eta("1700000000") == 1700000000.0
    assert parse_eta("2026-12-01T09:00:00+00:00") == 1796115600.0
    with pytest.raises(typer.BadParameter, match="ISO 8601"):
        parse_eta("next tuesday")


@pytest.mark.parametrize("args, message", [
    (["submit", "m:f", "--kwargs", "[1]"], "must be a JSON object"),
    (["submit", "m:f", "--kwargs", "{nope"], "--kwargs is not JSON"),
    (["schedule", "add", "s", "m:f", "--every", "5", "--kwargs", "{nope"], "--kwargs is not JSON"),
    # a bad task name is reported as such, not as bad JSON (ConfigError is a ValueError)
    (["schedule", "add", "s", "nocolon", "--every", "5"], "must look like 'module:function'"),
    (["purge", "--older-than", "soon"], "duration"),
])
def test_bad_input_gets_a_clear_error(args, message):
    result = runner.invoke(app, [*args, "--connect", NOWHERE])
    assert result.exit_code != 0
    assert message in flat(result.output)
    assert "not JSON" not in result.output or "not JSON" in message


def test_master_refuses_an_unknown_store_sync_before_it_starts(tmp_path):
    result = runner.invoke(app, ["master", "--bind", NOWHERE, "--store", str(tmp_path / "zq.db"),
                                 "--store-sync", "sometimes"])
    assert result.exit_code == 2
    assert "'--store-sync'" in flat(result.output)
    assert "'sometimes' is not one of 'normal', 'full'" in flat(result.output)
    assert not (tmp_path / "zq.db").exists()  # refused before the store was opened


def test_a_wait_without_a_master_fails_at_once_in_one_line():
    result = runner.invoke(app, ["result", "some-id", "--wait", "--timeout", "1.5",
                                 "--connect", NOWHERE])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: no zq master answered at {NOWHERE} within 1.5 s: is it running? "
        "(start one with: zq master --bind tcp://*:1)"]


def test_a_wait_whose_master_goes_away_says_why_and_gives_up_at_its_timeout(monkeypatch):
    from tests.component.fake_master import FakeMaster
    from zq.core import messages as m

    monkeypatch.setattr(cli, "NOTE_EVERY", 0.2)
    fm = FakeMaster(accept=False)
    fm.replies["get"] = (True, {"id": "some-id", "state": "running"})

    def stop_after_the_first_note() -> None:  # the task was found, then the master is gone
        fm.wait_for(lambda log: len([x for x in log if isinstance(x, m.Query)]) >= 2, 10)
        fm.stop()
    stopper = threading.Thread(target=stop_after_the_first_note)
    stopper.start()
    try:
        result = runner.invoke(app, ["result", "some-id", "--wait", "--timeout", "3",
                                     "--connect", fm.endpoint])
    finally:
        stopper.join(15)
    assert result.exit_code == 3, result.output
    assert f"still waiting for task some-id: no zq master answers at {fm.endpoint}" in result.output
    assert "did not finish within 3.0s" in result.output
