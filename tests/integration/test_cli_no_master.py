"""Client commands of the `zq` command line where no master listens (issue 10, finding 5):
each ends at its --timeout ($ZQ_TIMEOUT, default 3 s) with exit 2 and one line that says
where it looked, for how long, and how to start a master; nothing else on stderr."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.integration.harness import ROOT, free_port

ADD = "tests.apps.e2e_tasks:add"


def expected(endpoint: str, seconds: str) -> str:
    port = endpoint.rsplit(":", 1)[1]
    return (f"error: no zq master answered at {endpoint} within {seconds} s: is it running? "
            f"(start one with: zq master --bind tcp://*:{port})")


def run_all(endpoint: str, commands: list[tuple[list[str], dict[str, str]]]) -> list:
    """Run the commands side by side (each waits its whole timeout); (code, out, err)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZQ_")}
    procs = [subprocess.Popen([sys.executable, "-m", "zq", *args, "--connect", endpoint],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env})
             for args, env in commands]
    try:
        outs = [p.communicate(timeout=60) for p in procs]  # a bound against a hang only
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def test_every_client_command_fails_in_one_line_at_its_timeout() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    one_second = {"ZQ_TIMEOUT": "1"}
    commands = [
        (["status", "--timeout", "1"], {}),
        (["tasks", "--timeout", "1"], {}),
        (["result", "abc", "--timeout", "1"], {}),
        (["result", "abc", "--wait", "--timeout", "1"], {}),
        (["retry", "abc", "--timeout", "1"], {}),
        (["cancel", "abc", "--timeout", "1"], {}),
        (["purge", "--timeout", "1"], {}),
        (["schedule", "list", "--timeout", "1"], {}),
        (["schedule", "add", "s", ADD, "--every", "5", "--timeout", "1"], {}),
        (["schedule", "remove", "s", "--timeout", "1"], {}),
        (["tasks"], one_second),  # $ZQ_TIMEOUT when no --timeout is given
        (["result", "abc", "--wait"], one_second),
        (["submit", ADD, "1", "2"], one_second),
        (["submit", ADD, "1", "2", "--wait"], one_second),
        (["status"], {}),  # the default: 3 s
        # Longer than the client's liveness window (5 s), after which the library warns
        # that it reconnects: the command still says one line only.
        (["status", "--timeout", "6"], {}),
    ]
    results = run_all(endpoint, commands)
    for (args, env), (code, out, err) in zip(commands, results):
        seconds = "3" if args == ["status"] else "6" if "6" in args else "1"
        line = expected(endpoint, seconds)
        if args[0] == "submit":
            line += "; the task may not have been submitted"
        assert (code, out, err.splitlines()) == (2, "", [line]), (args, env, err)


def test_a_bad_timeout_is_refused_clearly() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    results = run_all(endpoint, [(["status"], {"ZQ_TIMEOUT": "soon"}),
                                 (["status", "--timeout", "0"], {})])
    refused = " ".join(results[0][2].translate(str.maketrans("", "", "│╭╮╰╯─")).split())
    assert results[0][0] == 2 and "(env var: 'ZQ_TIMEOUT'): 'soon' is not a duration" in refused
    assert results[1][0] == 2 and "the timeout must be > 0 seconds, not 0" in results[1][2]
