"""The `zq` command line: one small function per command (parse -> config -> run).

Only this module reads flags and environment variables and configures logging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any, Iterator, Optional

import typer

from zq.config import ClientConfig, MasterConfig, WorkerConfig, default_connect
from zq.errors import AccessRefused, ConfigError, Rejected, ZqError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="zq: a zero-broker distributed task queue over ZeroMQ.")

KEYS_OPTION = typer.Option(
    None, "--keys", envvar="ZQ_KEYS",
    help="A keys folder (zq keys init): its client key, and its admin key for admin actions.")
CONNECT_HELP = "Master address; default $ZQ_CONNECT, else tcp://127.0.0.1:5555."
DEFAULT_TIMEOUT = 3.0  # seconds a client command waits for the master to answer
TIMEOUT_HELP = "Seconds to wait for the master to answer; default $ZQ_TIMEOUT, else 3."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '1h', '2d' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 30s, 15m, 1h or 2d")
    value, unit = match.groups()
    return float(value) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def parse_eta(text: str) -> float:
    """An ISO 8601 time (naive means local time) or unix seconds -> unix seconds."""
    from datetime import datetime
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(f"--eta {text!r} is neither unix seconds nor an ISO 8601 "
                                 "time like 2026-12-01T09:00:00+01:00") from None


def parse_arg(text: str) -> Any:
    """A command-line task argument: JSON when it parses, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _timeout(given: Optional[float]) -> float:
    """How long a client command waits for the master: --timeout, $ZQ_TIMEOUT, or 3 s."""
    if given is None:
        text = os.environ.get("ZQ_TIMEOUT")
        try:
            given = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            _fail(f"ZQ_TIMEOUT={text!r} is not a number of seconds")
    if not given > 0:
        _fail(f"the timeout must be > 0 seconds, not {given:g}")
    return float(given)


@contextlib.contextmanager
def _client(connect: Optional[str], timeout: float, keys: Optional[str] = None,
            admin: bool = False) -> Iterator[Any]:
    """A client whose queries wait `timeout` seconds. The command says itself what went
    wrong, in one line: the client's own reconnect warnings are kept quiet; and after a
    failure it closes at once instead of trying to deliver what is queued."""
    from zq.client import Client
    quiet = logging.getLogger("zq.client")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # a refused key (an error) is still said
    try:
        fields: dict[str, Any] = {"connect": connect or default_connect(),
                                  "query_timeout": timeout, "admin": admin}
        if keys:  # --keys (or ZQ_KEYS): the keys folder's client key, admin key with admin
            fields.update(keys=keys, secret_key=None, master_key=None)
        client = Client(config=ClientConfig(**fields))
        try:
            yield client
        except BaseException:
            client.close(0)
            raise
        client.close()
    finally:
        quiet.setLevel(level)


def _ask(connect: Optional[str], timeout: Optional[float], call: Any,
         keys: Optional[str] = None, admin: bool = False) -> Any:
    """call(client) against the master; a zq error becomes a clear message and exit 2.
    admin: an admin action, asked with the keys folder's admin key if it has one."""
    try:
        with _client(connect, _timeout(timeout), keys, admin) as client:
            return call(client)
    except ZqError as e:
        _fail(str(e))


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        _fail(f"{flag} is not JSON: {e}")
    if not isinstance(value, dict):
        _fail(f"{flag} must be a JSON object like '{{\"x\": 1}}'")
    return value


def _print(value: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(value, indent=2, default=str))
    else:
        typer.echo(value if isinstance(value, str) else json.dumps(value, default=str))


# --- processes ---------------------------------------------------------------------------

@app.command()
def master(
    bind: str = typer.Option("tcp://*:5555", help="Endpoint to bind."),
    store: str = typer.Option("zq.db", help="SQLite file for task state, or 'memory'."),
    store_sync: str = typer.Option(
        "normal", help="SQLite commits survive kill -9 of the master (normal), or a power "
                       "loss too (full: an fsync per commit)."),
    heartbeat_interval: float = typer.Option(1.0, help="Seconds between heartbeats."),
    heartbeat_liveness: int = typer.Option(3, help="Missed heartbeats before a peer is dead."),
    result_ttl: str = typer.Option("1d", help="How long results are kept (e.g. 1h, 1d)."),
    max_message: int = typer.Option(256 * 1024 * 1024, help="Largest frame accepted, in bytes: a peer that sends a larger one is disconnected."),
    schedule: Optional[str] = typer.Option(None, help="A schedule.toml of periodic tasks."),
    keys: Optional[str] = typer.Option(
        None, "--keys", envvar="ZQ_KEYS",
        help="Encrypt and authenticate (CurveZMQ) with a keys folder (zq keys init): its "
             "master key, and the peers' public keys in workers/, clients/, admins/ "
             "(read again on SIGHUP)."),
    secret_key: Optional[str] = typer.Option(
        None, help="Or, instead of --keys: this master's NAME.key_secret; needs "
                   "--worker-keys and --client-keys."),
    worker_keys: Optional[str] = typer.Option(
        None, help="Directory of the public NAME.key files admitted as workers."),
    client_keys: Optional[str] = typer.Option(
        None, help="Directory of the public NAME.key files admitted as clients."),
    admin_keys: Optional[str] = typer.Option(
        None, help="Directory of the public NAME.key files admitted as admins."),
    insecure: bool = typer.Option(
        False, "--insecure", envvar="ZQ_INSECURE",
        help="Without keys, admit peers from any address, not only this host's (loopback): "
             "anyone who reaches the port may submit tasks and run as a worker. Only on a "
             "trusted network; keys are the safe way across hosts."),
    max_connections: int = typer.Option(
        10_000, help="Connections open at once; past it new peers are turned away (and "
                     "retry) until some leave. Lowered to fit the open-file limit."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run the master: the queue, the scheduler and the result store."""
    from zq.master import run_master
    _setup_logging(log_level)
    try:
        config = MasterConfig(bind=bind, store=store, store_sync=store_sync,
                              heartbeat_interval=heartbeat_interval,
                              heartbeat_liveness=heartbeat_liveness,
                              result_ttl=parse_duration(result_ttl),
                              max_message=max_message, schedule=schedule,
                              secret_key=secret_key, worker_keys=worker_keys,
                              client_keys=client_keys, admin_keys=admin_keys, keys=keys,
                              insecure=insecure,
                              max_connections=max_connections).validate()
        raise typer.Exit(run_master(config))
    except ZqError as e:
        _fail(str(e))


@app.command()
def worker(
    app_: list[str] = typer.Option(..., "--app", help="Module whose tasks this worker runs (repeatable)."),
    connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
    concurrency: int = typer.Option(0, help="Tasks run at once; default the CPU count."),
    pool: str = typer.Option("process", help="process, thread or async."),
    prefetch: Optional[int] = typer.Option(None, help="Extra tasks held beyond concurrency; default: adaptive, about 50 ms of work."),
    queues: str = typer.Option("default", help="Comma-separated queues to take tasks from."),
    name: Optional[str] = typer.Option(None, help="Worker name; default host:pid."),
    shutdown_timeout: float = typer.Option(30.0, help="Seconds running tasks get to finish on SIGTERM."),
    keys: Optional[str] = typer.Option(
        None, "--keys", envvar="ZQ_KEYS",
        help="CurveZMQ: a keys folder (zq keys init) with master.key and this worker's "
             "private/workers/NAME.key_secret."),
    secret_key: Optional[str] = typer.Option(
        None, envvar="ZQ_SECRET_KEY",
        help="Or, instead of --keys: this worker's NAME.key_secret; needs --master-key."),
    master_key: Optional[str] = typer.Option(
        None, envvar="ZQ_MASTER_KEY", help="CurveZMQ: the master's public NAME.key."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
) -> None:
    """Run a worker that executes tasks of the --app modules."""
    from zq.worker import run_worker
    _setup_logging(log_level)
    sys.path.insert(0, os.getcwd())  # --app modules are usually next to where it starts
    fields: dict[str, Any] = dict(
        connect=connect or default_connect(), apps=tuple(app_), pool=pool, prefetch=prefetch,
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
        shutdown_timeout=shutdown_timeout, secret_key=secret_key, master_key=master_key,
        keys=keys)
    if concurrency:
        fields["concurrency"] = concurrency
    if name:
        fields["name"] = name
    try:
        raise typer.Exit(run_worker(WorkerConfig(**fields).validate()))
    except ZqError as e:
        _fail(str(e))


keys_app = typer.Typer(no_args_is_help=True, help="CurveZMQ keys: one folder for a whole setup.")
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(directory: str = typer.Argument("zq-keys", help="The keys folder to make.")) -> None:
    """Make a keys folder: the master's key pair and one worker, one client and one admin
    key pair. Every side then takes --keys DIR (secret files are mode 0600)."""
    from zq.security import init_keys
    try:
        made = init_keys(directory)
    except ZqError as e:
        _fail(str(e))
    typer.echo(f"keys in {directory}: " + ", ".join(str(p) for p in made))
    typer.echo(f"the master host uses {directory} as it is; a worker or client host needs "
               f"only master.key and its own private/ROLEs/NAME.key_secret, in the same "
               f"layout (zq master/worker/submit --keys {directory})")


@keys_app.command("add")
def keys_add(role: str = typer.Argument(..., help="worker, client or admin."),
             name: str = typer.Argument(..., help="A name for the key, e.g. gpu-3."),
             directory: str = typer.Option("zq-keys", "--dir", help="The keys folder.")) -> None:
    """Add a key pair of one role to a keys folder; a running master admits it after
    SIGHUP (kill -HUP PID)."""
    from zq.security import add_key
    try:
        public, secret = add_key(directory, role, name)
    except ZqError as e:
        _fail(str(e))
    typer.echo(f"public key: {public}\nsecret key: {secret} (keep it private)")


@app.command()
def local(
    app_: list[str] = typer.Option(..., "--app", help="Module whose tasks the workers run."),
    workers: int = typer.Option(2, help="How many worker processes."),
    bind: str = typer.Option("tcp://127.0.0.1:5555", help="Endpoint for the master."),
    store: str = typer.Option("zq.db", help="SQLite file, or 'memory'."),
    concurrency: int = typer.Option(0, help="Per worker; default the CPU count."),
    pool: str = typer.Option("process", help="process, thread or async."),
) -> None:
    """A master and N workers in one command, for development. Ctrl-C (SIGINT), SIGTERM
    or SIGHUP stops them all gracefully, workers first; a second signal stops the
    workers at once. On Linux they also stop if `zq local` is killed with SIGKILL."""
    from zq.lifetime import child_setup
    connect = bind.replace("*", "127.0.0.1")
    stops = _catch_stop_signals()
    base = [sys.executable, "-m", "zq"]
    # Each child in its own process group (a Ctrl-C at the terminal reaches only us, and we
    # stop them in order) with SIGTERM when we die, however we die.
    setup = child_setup(signal.SIGTERM)
    procs = [subprocess.Popen(base + ["master", "--bind", bind, "--store", store],
                              preexec_fn=setup)]
    worker_cmd = base + ["worker", "--connect", connect, "--pool", pool]
    for a in app_:
        worker_cmd += ["--app", a]
    if concurrency:
        worker_cmd += ["--concurrency", str(concurrency)]
    try:
        procs += [subprocess.Popen(worker_cmd + ["--name", f"local-{i}"], preexec_fn=setup)
                  for i in range(workers)]
        typer.echo(f"zq local: master on {connect}, {workers} workers; Ctrl-C to stop", err=True)
        while not stops and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        names = ["the master"] + [f"worker local-{i}" for i in range(workers)]
        ended = [n for n, p in zip(names, procs) if p.poll() is not None]
    finally:
        _stop_all(procs, stops)
    if ended and not stops:
        _fail(f"zq local: {ended[0]} exited by itself, so the others were stopped too", 1)


LOCAL_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LOCAL_STOP_WAIT = 40.0  # seconds stopping workers get (theirs is 30) before SIGKILL


def _catch_stop_signals() -> list[int]:
    """The stop signals received, as they come. SIGINT is caught even when inherited as
    ignored (a background job of a shell): `kill -INT` must still stop zq local. SIGHUP
    ignored stays ignored: that is what `nohup` asks for."""
    stops: list[int] = []
    for sig in LOCAL_STOP_SIGNALS:
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue
        signal.signal(sig, lambda signum, frame: stops.append(signum))
    return stops


def _stop_all(procs: list[subprocess.Popen], stops: list[int]) -> None:
    """SIGTERM the workers and wait for them (they finish their running tasks and hand
    the results to the master), then the master. A signal that comes meanwhile is passed
    on to the workers: a second SIGTERM stops a worker at once."""
    workers, master = procs[1:], procs[:1]
    for group in (workers, master):
        seen = len(stops)
        for p in group:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + LOCAL_STOP_WAIT
        while any(p.poll() is None for p in group) and time.monotonic() < deadline:
            if len(stops) > seen:
                seen = len(stops)
                for p in group:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        for p in group:
            if p.poll() is None:
                p.kill()
                p.wait()


# --- client commands ---------------------------------------------------------------------

@app.command()
def submit(
    task: str = typer.Argument(..., help="Task name, module:function."),
    args: list[str] = typer.Argument(None, help="Arguments; each parsed as JSON if it can be."),
    kwargs: str = typer.Option("{}", help="Keyword arguments as a JSON object."),
    queue: Optional[str] = typer.Option(None, help="Default: the task's own, else 'default'."),
    priority: Optional[int] = typer.Option(None, help="Default: the task's own, else 0."),
    retries: Optional[int] = typer.Option(None, help="Default: the task's own, else 0."),
    timeout: Optional[float] = typer.Option(None, help="Seconds per attempt."),
    delay: Optional[float] = typer.Option(None, help="Seconds before it may start."),
    eta: Optional[str] = typer.Option(None, help="Not before this time: ISO 8601 (2026-12-01T09:00:00+01:00) or unix seconds."),
    after: list[str] = typer.Option(None, "--after", help="Run only after this task id succeeded (repeatable)."),
    key: Optional[str] = typer.Option(None, help="Deduplication key."),
    retry_backoff: Optional[float] = typer.Option(None, help="First retry delay in seconds (doubles)."),
    retry_on: Optional[str] = typer.Option(None, help="Comma-separated exception names that retry."),
    rate_limit: Optional[str] = typer.Option(None, help="At most this many of this task started, e.g. 100/s."),
    wait: bool = typer.Option(False, "--wait", help="Wait and print the result as JSON."),
    wait_timeout: Optional[float] = typer.Option(None, help="With --wait: give up after this."),
    connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
    keys: Optional[str] = KEYS_OPTION,
) -> None:
    """Submit one task; print its id, or with --wait its result. The master must accept
    it within $ZQ_TIMEOUT seconds (default 3; --timeout is the task's own time limit)."""
    kw = _json_object(kwargs, "--kwargs")
    # Only what was given: the master fills in the rest from what the task declares.
    options: dict[str, Any] = {}
    for opt, value in (("queue", queue), ("priority", priority), ("retries", retries),
                       ("timeout", timeout), ("delay", delay), ("key", key),
                       ("retry_backoff", retry_backoff), ("rate_limit", rate_limit)):
        if value is not None:
            options[opt] = value
    if eta is not None:
        options["eta"] = parse_eta(eta)
    if after:
        options["after"] = list(after)
    if retry_on:
        options["retry_on"] = tuple(n.strip() for n in retry_on.split(",") if n.strip())
    from zq.client import no_master_error
    ack_timeout = _timeout(None)
    try:
        with _client(connect, ack_timeout, keys) as client:
            future = client.options(**options).submit(task, *[parse_arg(a) for a in args or []], **kw)
            # Its id is printed, or its result waited for, once the master has it durably.
            acked = client.flush(ack_timeout)
            failed = future.done() and not future.cancelled() and future.exception()
            if isinstance(failed, AccessRefused):
                _fail(str(failed))
            if not acked:
                _fail(f"{no_master_error(client.config.connect, ack_timeout)}; the task may not "
                      "have been submitted")
            if isinstance(failed, Rejected):
                _fail(f"the master rejected the task: {failed}")
            if not wait:
                typer.echo(future.id)
                return
            _print_result(client, future, wait_timeout)
    except ZqError as e:
        _fail(str(e))


NOTE_EVERY = 10.0  # seconds of silent waiting before `--wait` says why it still waits


def _print_result(client: Any, future: Any, timeout: Optional[float]) -> None:
    import concurrent.futures
    try:
        value = _wait_saying_why(client, future, timeout)
    except concurrent.futures.CancelledError:
        _fail(f"task {future.id} was cancelled", 1)
    except concurrent.futures.TimeoutError:
        _fail(f"task {future.id} did not finish within {timeout}s", 3)
    except ZqError as e:
        if not hasattr(e, "type_name"):
            raise
        _fail_remote(e)
    except Exception as e:  # a built-in exception re-raised from the task
        _fail_remote(e)
    else:
        typer.echo(json.dumps(value, default=repr))


def _wait_saying_why(client: Any, future: Any, timeout: Optional[float]) -> Any:
    """future.result(timeout); every NOTE_EVERY seconds of waiting, a line on stderr says
    what the task is doing, or that no master answers, so a wait is never silent."""
    import concurrent.futures
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = NOTE_EVERY if deadline is None else min(NOTE_EVERY, deadline - time.monotonic())
        try:
            return future.result(timeout=max(left, 0.0))
        except concurrent.futures.TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        try:
            state = client.query("get", timeout=NOTE_EVERY / 2, id=future.id)["state"]
            typer.echo(f"still waiting: task {future.id} is {state}", err=True)
        except ZqError:
            typer.echo(f"still waiting for task {future.id}: no zq master answers at "
                       f"{client.config.connect} (is it running?)", err=True)


def _fail_remote(e: BaseException) -> None:
    tb = getattr(e, "traceback", "") or getattr(e.__cause__, "traceback", "")
    if tb:
        typer.echo(tb.rstrip(), err=True)
    _fail(f"task failed: {type(e).__name__}: {e}", 1)


@app.command()
def status(json_: bool = typer.Option(False, "--json"),
           timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
           connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Workers, queue depths, task counts and recent throughput."""
    st = _ask(connect, timeout, lambda client: client.status(), keys)
    if json_:
        _print(st, True)
        return
    typer.echo(f"master {st['master_id']}: {len(st['workers'])} workers, "
               f"{st['throughput']:.1f} tasks/s over the last 10 s")
    for w in st["workers"]:
        session = f" session={w['session']}" if w.get("session") else ""
        typer.echo(f"  worker {w['name']}{session} host={w['host']} pid={w['pid']} "
                   f"pool={w['pool']} concurrency={w['concurrency']} running={w['running']} "
                   f"last_seen={w['last_seen']}s ago")
    typer.echo("queues: " + (", ".join(f"{q}={n}" for q, n in st["queues"].items()) or "none"))
    typer.echo("tasks:  " + ", ".join(f"{s}={n}" for s, n in st["counts"].items() if n))
    _echo_catalogue(st.get("catalogue") or {})


CATALOGUE_SHOWN = 50  # task names `zq status` lists; --json has them all


def _echo_catalogue(catalogue: dict[str, dict]) -> None:
    """The task names workers announced, with the options each declares."""
    typer.echo(f"task names announced by workers: {len(catalogue)}")
    for name in list(catalogue)[:CATALOGUE_SHOWN]:
        opts = " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                        for k, v in sorted(catalogue[name].items()))
        typer.echo(f"  {name}" + (f"  {opts}" if opts else ""))
    if len(catalogue) > CATALOGUE_SHOWN:
        typer.echo(f"  ... and {len(catalogue) - CATALOGUE_SHOWN} more (zq status --json)")


@app.command()
def tasks(state: Optional[str] = typer.Option(None), queue: Optional[str] = typer.Option(None),
          name: Optional[str] = typer.Option(None), limit: int = typer.Option(20),
          json_: bool = typer.Option(False, "--json"),
          timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
          connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
          keys: Optional[str] = KEYS_OPTION) -> None:
    """List tasks, newest first."""
    rows = _ask(connect, timeout, lambda client: client.tasks(state=state, queue=queue, name=name,
                                                     limit=limit), keys)
    if json_:
        _print(rows, True)
        return
    for t in rows:
        err = f" {t['error']['type']}: {t['error']['message']}" if t.get("error") else ""
        prog = f" progress={t['progress'][0]}/{t['progress'][1]}" if t.get("progress") else ""
        typer.echo(f"{t['id']}  {t['state']:<9} {t['name']} queue={t['queue']} "
                   f"attempt={t['attempt']}{prog}{err}")


@app.command()
def result(task_id: str, wait: bool = typer.Option(False, "--wait"),
           json_: bool = typer.Option(False, "--json"),
           timeout: Optional[float] = typer.Option(
               None, help="Seconds to wait for the master to answer (default $ZQ_TIMEOUT, "
                          "else 3); with --wait, for the result (default: no limit)."),
           connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Print a task's result (or its state, if it has none yet)."""
    answer = _timeout(None if wait else timeout)
    if wait and timeout is not None:
        answer = min(answer, _timeout(timeout))
    try:
        with _client(connect, answer, keys) as client:
            future = client.future(task_id) if wait else None
            info = client.get(task_id)  # a master answers and knows the task, or this fails now
            if future is not None:
                _print_result(client, future, timeout)
                return
            if info["state"] == "succeeded":
                _print_result(client, client.future(task_id), answer)
            elif json_:
                _print(info, True)
                if info.get("error"):
                    raise typer.Exit(1)  # the same exit code as without --json
            else:
                err = info.get("error")
                typer.echo(f"{task_id} is {info['state']}"
                           + (f": {err['type']}: {err['message']}" if err else ""))
                if err:
                    raise typer.Exit(1)
    except ZqError as e:
        _fail(str(e))


@app.command()
def retry(task_id: str, json_: bool = typer.Option(False, "--json"),
          timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
          connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
          keys: Optional[str] = KEYS_OPTION) -> None:
    """Run a failed, dead or cancelled task again."""
    info = _ask(connect, timeout, lambda client: client.retry(task_id), keys, admin=True)
    _print(info if json_ else f"{task_id} queued again", json_)


@app.command()
def cancel(task_id: str, timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
           connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Cancel a task: a queued one never runs, a running one is stopped."""
    def cancel_then_get(client: Any) -> dict:
        client.future(task_id).cancel()
        return client.get(task_id)  # answered after the CANCEL: the master has seen it
    info = _ask(connect, timeout, cancel_then_get, keys, admin=True)
    state = info["state"]
    if state == "cancelled":
        typer.echo(f"{task_id}: cancelled")
    elif state in ("succeeded", "failed", "dead"):
        _fail(f"task {task_id} is already {state}; nothing to cancel", 1)
    else:
        typer.echo(f"{task_id}: cancel requested; it is {state}"
                   + (f" on worker {info['worker']}" if info.get("worker") else ""))


@app.command()
def purge(state: str = typer.Option("succeeded"), older_than: str = typer.Option("0s"),
          json_: bool = typer.Option(False, "--json"),
          timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
          connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
          keys: Optional[str] = KEYS_OPTION) -> None:
    """Delete finished tasks in a state, older than a duration (e.g. 1h)."""
    seconds = parse_duration(older_than)
    out = _ask(connect, timeout, lambda client: client.purge(state, seconds), keys, admin=True)
    _print(out if json_ else f"purged {out['purged']} tasks", json_)


schedule_app = typer.Typer(no_args_is_help=True, help="Periodic tasks owned by the master.")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    name: str = typer.Argument(..., help="A name; adding it again replaces it."),
    task: str = typer.Argument(..., help="Task name, module:function."),
    args: list[str] = typer.Argument(None, help="Arguments; each parsed as JSON if it can be."),
    cron: Optional[str] = typer.Option(None, help="5-field cron expression, e.g. '*/5 * * * *'."),
    every: Optional[float] = typer.Option(None, help="Or: run every N seconds."),
    timezone: str = typer.Option("UTC", help="Timezone of the cron expression."),
    kwargs: str = typer.Option("{}", help="Keyword arguments as a JSON object."),
    queue: Optional[str] = typer.Option(None, help="Default: the task's own, else 'default'."),
    priority: Optional[int] = typer.Option(None, help="Default: the task's own, else 0."),
    json_: bool = typer.Option(False, "--json"),
    timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
    connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
    keys: Optional[str] = KEYS_OPTION,
) -> None:
    """Add (or replace) a periodic task."""
    kw = _json_object(kwargs, "--kwargs")
    values = [parse_arg(a) for a in args or []]
    out = _ask(connect, timeout, lambda client: client.schedule(
        name, task, *values, cron=cron, every=every, timezone=timezone, kwargs=kw,
        queue=queue, priority=priority), keys, admin=True)
    _print(out if json_ else f"{name}: next run at {_when(out['next_run'])}", json_)


@schedule_app.command("list")
def schedule_list(json_: bool = typer.Option(False, "--json"),
                  timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
                  connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
                  keys: Optional[str] = KEYS_OPTION) -> None:
    """List the periodic tasks with their next run."""
    rows = _ask(connect, timeout, lambda client: client.schedules(), keys)
    if json_:
        _print(rows, True)
        return
    for s in rows:
        if s.get("broken"):
            typer.echo(f"{s['name']}: BROKEN, never runs: {s['broken']}")
            continue
        when = f"cron '{s['cron']}' ({s['timezone']})" if s["cron"] else f"every {s['every']}s"
        typer.echo(f"{s['name']}: {s['task']} {when}, next run {_when(s['next_run'])}")


@schedule_app.command("remove")
def schedule_remove(name: str, timeout: Optional[float] = typer.Option(None, help=TIMEOUT_HELP),
                    connect: Optional[str] = typer.Option(None, help=CONNECT_HELP),
                    keys: Optional[str] = KEYS_OPTION) -> None:
    """Remove a periodic task."""
    _ask(connect, timeout, lambda client: client.unschedule(name), keys, admin=True)
    typer.echo(f"{name}: removed")


def _when(ts: Optional[float]) -> str:
    from datetime import datetime
    return "never" if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def main() -> None:
    try:
        app()
    except ConfigError as e:
        _fail(str(e))


if __name__ == "__main__":
    main()
