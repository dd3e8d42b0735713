"""The `zq` command line: one small function per command (parse -> config -> run).

Only this module reads flags and environment variables and configures logging.

Over 600 lines (about 1,000) on purpose: every command is here, each a short function,
so the file reads as the command line's table of contents, and the shared options (each
with its ZQ_* variable, durations, choices) are defined once beside the commands using them.
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
from enum import Enum
from typing import Any, Iterator, NoReturn, Optional

import typer

from zq.config import ClientConfig, MasterConfig, WorkerConfig, default_connect
from zq.core import limits
from zq.errors import AccessRefused, ConfigError, Rejected, ZqError

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown",
                  help="zq: a zero-broker distributed task queue over ZeroMQ. Every flag "
                       "may be set by the ZQ_* environment variable shown next to it.")

DEFAULT_TIMEOUT = 3.0  # seconds a client command waits for the master to answer
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: Any) -> float:
    """'250ms', '30s', '5m', '1h', '2d' or plain seconds ('90', '0.5') -> seconds. The
    one parser for every time the command line asks for (flags and ZQ_* variables)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)  # a default given as a number
    match = _DURATION.match(str(text))
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 250ms, 30s, 5m, 1h, 2d "
                                 "or plain seconds")
    value, unit = match.groups()
    return float(value) * _UNIT_SECONDS[unit]


def _opt(default: Any, *decls: str, env: str, help: str, **kw: Any) -> Any:
    """A flag with its ZQ_* environment variable, shown in --help."""
    return typer.Option(default, *decls, envvar=env, show_envvar=True, help=help, **kw)


def _duration(default: Any, *decls: str, env: str, help: str) -> Any:
    """A flag that takes a duration (parse_duration)."""
    return _opt(default, *decls, env=env, help=help, parser=parse_duration,
                metavar="DURATION")


class Pool(str, Enum):
    PROCESS = "process"
    THREAD = "thread"
    ASYNC = "async"


class StoreSync(str, Enum):
    NORMAL = "normal"
    FULL = "full"


class LogLevel(str, Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(str, Enum):
    TEXT = "text"
    JSON = "json"


class TaskState(str, Enum):  # zq.core.messages.State, by label
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"
    DEAD = "dead"


class RetryState(str, Enum):  # the states `zq retry` may run again
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class FinalState(str, Enum):  # the states `zq purge` may forget
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"


# Flags that mean the same in every command share one variable.
KEYS_OPTION = _opt(
    None, "--keys", env="ZQ_KEYS",
    help="A keys folder (zq keys init): its client key, and its admin key for admin actions.")
CONNECT_OPTION = _opt(None, "--connect", env="ZQ_CONNECT",
                      help="Master address; default tcp://127.0.0.1:5555. Several masters "
                           "(one active, the others standbys): tcp://a:5555,tcp://b:5555.")
TIMEOUT_OPTION = _duration(None, "--timeout", env="ZQ_TIMEOUT",
                           help="How long to wait for the master to answer; default 3s.")
JSON_OPTION = _opt(False, "--json", env="ZQ_JSON", help="Print JSON.")
LOG_LEVEL_OPTION = _opt(LogLevel.INFO, "--log-level", env="ZQ_LOG_LEVEL",
                        help="The least severe log records shown.", case_sensitive=False)
LOG_FORMAT_OPTION = _opt(LogFormat.TEXT, "--log-format", env="ZQ_LOG_FORMAT",
                         help="Log lines as text, or one JSON object per line (time, level, "
                              "logger, message and fields such as task_id).")


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


def _setup_logging(level: LogLevel, fmt: LogFormat) -> None:
    from zq.logs import configure
    configure(level.value, fmt.value)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _timeout(given: Optional[float]) -> float:
    """How long a client command waits for the master: --timeout ($ZQ_TIMEOUT), or 3 s."""
    if given is None:
        given = DEFAULT_TIMEOUT
    if not given > 0:
        _fail(f"the timeout must be > 0 seconds, not {given:g}")
    return float(given)


def _env_timeout() -> float:
    """$ZQ_TIMEOUT for a command whose own --timeout means something else (zq submit)."""
    text = os.environ.get("ZQ_TIMEOUT")
    try:
        return _timeout(parse_duration(text) if text else None)
    except typer.BadParameter:
        _fail(f"ZQ_TIMEOUT={text!r} is not a duration like 250ms, 30s, 5m or plain seconds")


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
    bind: str = _opt("tcp://*:5555", env="ZQ_BIND", help="Endpoint to bind."),
    store: str = _opt("zq.db", env="ZQ_STORE",
                      help="SQLite file for task state, 'memory', or a postgresql:// URL."),
    store_sync: StoreSync = _opt(
        StoreSync.NORMAL, env="ZQ_STORE_SYNC",
        help="SQLite commits survive kill -9 of the master (normal), or a power loss too "
             "(full: an fsync per commit)."),
    heartbeat_interval: float = _duration("1s", env="ZQ_HEARTBEAT_INTERVAL",
                                          help="Time between heartbeats."),
    heartbeat_liveness: int = _opt(3, env="ZQ_HEARTBEAT_LIVENESS",
                                   help="Missed heartbeats before a peer is dead."),
    result_ttl: float = _duration("1d", env="ZQ_RESULT_TTL", help="How long results are kept."),
    max_message: int = _opt(
        limits.MAX_MESSAGE, env="ZQ_MAX_MESSAGE",
        help="Largest frame accepted, in bytes: a peer that sends a larger one is "
             "disconnected."),
    schedule: Optional[str] = _opt(None, env="ZQ_SCHEDULE",
                                   help="A schedule.toml of periodic tasks."),
    keys: Optional[str] = _opt(
        None, "--keys", env="ZQ_KEYS",
        help="Encrypt and authenticate (CurveZMQ) with a keys folder (zq keys init): its "
             "master key, and the peers' public keys in workers/, clients/, admins/ "
             "(read again on SIGHUP)."),
    secret_key: Optional[str] = _opt(
        None, env="ZQ_SECRET_KEY",
        help="Or, instead of --keys: this master's NAME.key_secret; needs --worker-keys "
             "and --client-keys."),
    worker_keys: Optional[str] = _opt(
        None, env="ZQ_WORKER_KEYS",
        help="Directory of the public NAME.key files admitted as workers."),
    client_keys: Optional[str] = _opt(
        None, env="ZQ_CLIENT_KEYS",
        help="Directory of the public NAME.key files admitted as clients."),
    admin_keys: Optional[str] = _opt(
        None, env="ZQ_ADMIN_KEYS",
        help="Directory of the public NAME.key files admitted as admins."),
    insecure: bool = _opt(
        False, "--insecure", env="ZQ_INSECURE",
        help="Without keys, admit peers from any address, not only this host's (loopback): "
             "anyone who reaches the port may submit tasks and run as a worker. Only on a "
             "trusted network; keys are the safe way across hosts."),
    max_connections: int = _opt(
        10_000, env="ZQ_MAX_CONNECTIONS",
        help="Connections open at once; past it new peers are turned away (and retry) "
             "until some leave. Lowered to fit the open-file limit."),
    metrics: Optional[str] = _opt(
        None, env="ZQ_METRICS",
        help="HOST:PORT to serve Prometheus metrics on, at /metrics (like 127.0.0.1:9464)."),
    advertise: Optional[str] = _opt(
        None, env="ZQ_ADVERTISE",
        help="With a PostgreSQL store: the endpoint peers reach this master at, which the "
             "standby masters name to them (default: --bind, * as this host's name)."),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Run the master: the queue, the scheduler and the result store. Several masters on
    one PostgreSQL store: one serves, the others wait as standbys and take over when it
    goes; a master whose store lease moves to another exits with code 3."""
    from zq.master import run_master
    _setup_logging(log_level, log_format)
    try:
        config = MasterConfig(bind=bind, store=store, store_sync=store_sync.value,
                              heartbeat_interval=heartbeat_interval,
                              heartbeat_liveness=heartbeat_liveness,
                              result_ttl=result_ttl,
                              max_message=max_message, schedule=schedule,
                              secret_key=secret_key, worker_keys=worker_keys,
                              client_keys=client_keys, admin_keys=admin_keys, keys=keys,
                              insecure=insecure,
                              max_connections=max_connections,
                              metrics=metrics, advertise=advertise).validate()
        raise typer.Exit(run_master(config))
    except ZqError as e:
        _fail(str(e))


APP_OPTION = _opt(..., "--app", env="ZQ_APP",
                  help="Module whose tasks this worker runs (repeatable; in ZQ_APP, "
                       "separated by spaces).")
POOL_OPTION = _opt(Pool.PROCESS, env="ZQ_POOL", help="How tasks run.")
CONCURRENCY_OPTION = _opt(0, env="ZQ_CONCURRENCY",
                          help="Tasks run at once per worker; default the CPU count.")


@app.command()
def worker(
    app_: list[str] = APP_OPTION,
    connect: Optional[str] = CONNECT_OPTION,
    concurrency: int = CONCURRENCY_OPTION,
    pool: Pool = POOL_OPTION,
    prefetch: Optional[int] = _opt(
        None, env="ZQ_PREFETCH",
        help="Extra tasks held beyond concurrency; default: adaptive, about 50 ms of work."),
    queues: str = _opt("default", env="ZQ_QUEUES",
                       help="Comma-separated queues to take tasks from."),
    name: Optional[str] = _opt(None, env="ZQ_WORKER_NAME",
                               help="Worker name; default host:pid."),
    shutdown_timeout: float = _duration("30s", env="ZQ_SHUTDOWN_TIMEOUT",
                                        help="Time running tasks get to finish on SIGTERM."),
    keys: Optional[str] = _opt(
        None, "--keys", env="ZQ_KEYS",
        help="CurveZMQ: a keys folder (zq keys init) with master.key and this worker's "
             "private/workers/NAME.key_secret."),
    secret_key: Optional[str] = _opt(
        None, env="ZQ_SECRET_KEY",
        help="Or, instead of --keys: this worker's NAME.key_secret; needs --master-key."),
    master_key: Optional[str] = _opt(
        None, env="ZQ_MASTER_KEY", help="CurveZMQ: the master's public NAME.key."),
    allow_code: bool = _opt(
        False, "--allow-code", env="ZQ_ALLOW_CODE",
        help="Also run code that clients ship by value (zq.Client(ship_code=True): lambdas, "
             "closures...). Trusted clusters only: the master must run with --keys."),
    inline_under: float = _duration(
        "0", env="ZQ_INLINE_UNDER",
        help="--pool thread: run a task whose last runs each took less than this (e.g. 1ms) "
             "in the worker's loop thread, without a hand-off to a pool thread (lower "
             "latency, less CPU). A task that turns out long holds the worker back while "
             "it runs. Default 0: never."),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Run a worker that executes tasks of the --app modules."""
    from zq.worker import run_worker
    _setup_logging(log_level, log_format)
    sys.path.insert(0, os.getcwd())  # --app modules are usually next to where it starts
    fields: dict[str, Any] = dict(
        connect=connect or default_connect(), apps=tuple(app_), pool=pool.value,
        prefetch=prefetch, queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
        shutdown_timeout=shutdown_timeout, secret_key=secret_key, master_key=master_key,
        keys=keys, allow_code=allow_code, inline_under=inline_under)
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
def keys_init(directory: str = typer.Argument("zq-keys", envvar="ZQ_KEYS", show_envvar=True,
                                              help="The keys folder to make.")) -> None:
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
             directory: str = _opt("zq-keys", "--dir", env="ZQ_KEYS",
                                   help="The keys folder.")) -> None:
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
    app_: list[str] = APP_OPTION,
    workers: int = _opt(2, env="ZQ_LOCAL_WORKERS", help="How many worker processes."),
    bind: str = _opt("tcp://127.0.0.1:5555", env="ZQ_BIND", help="Endpoint for the master."),
    store: str = _opt("zq.db", env="ZQ_STORE", help="SQLite file, or 'memory'."),
    concurrency: int = CONCURRENCY_OPTION,
    pool: Pool = POOL_OPTION,
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
    worker_cmd = base + ["worker", "--connect", connect, "--pool", pool.value]
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
    kwargs: str = _opt("{}", env="ZQ_SUBMIT_KWARGS",
                       help="Keyword arguments as a JSON object."),
    queue: Optional[str] = _opt(None, env="ZQ_SUBMIT_QUEUE",
                                help="Default: the task's own, else 'default'."),
    priority: Optional[int] = _opt(None, env="ZQ_SUBMIT_PRIORITY",
                                   help="Default: the task's own, else 0."),
    retries: Optional[int] = _opt(None, env="ZQ_SUBMIT_RETRIES",
                                  help="Default: the task's own, else 0."),
    timeout: Optional[float] = _duration(None, env="ZQ_SUBMIT_TIMEOUT",
                                         help="The task's time limit, per attempt."),
    delay: Optional[float] = _duration(None, env="ZQ_SUBMIT_DELAY",
                                       help="Time before it may start."),
    eta: Optional[str] = _opt(
        None, env="ZQ_SUBMIT_ETA",
        help="Not before this time: ISO 8601 (2026-12-01T09:00:00+01:00) or unix seconds."),
    after: list[str] = _opt(
        None, "--after", env="ZQ_SUBMIT_AFTER",
        help="Run only after this task id succeeded (repeatable)."),
    arg_from: list[str] = _opt(
        None, "--arg-from", env="ZQ_SUBMIT_ARG_FROM",
        help="Pass this task's result as an argument, once it has succeeded (repeatable: "
             "these come first, in the order given, then ARGS)."),
    kwarg_from: list[str] = _opt(
        None, "--kwarg-from", env="ZQ_SUBMIT_KWARG_FROM",
        help="NAME=ID: pass task ID's result as keyword argument NAME (repeatable)."),
    key: Optional[str] = _opt(None, env="ZQ_SUBMIT_KEY", help="Deduplication key."),
    retry_backoff: Optional[float] = _duration(None, env="ZQ_SUBMIT_RETRY_BACKOFF",
                                               help="First retry delay (doubles)."),
    retry_on: Optional[str] = _opt(None, env="ZQ_SUBMIT_RETRY_ON",
                                   help="Comma-separated exception names that retry."),
    rate_limit: Optional[str] = _opt(
        None, env="ZQ_SUBMIT_RATE_LIMIT",
        help="At most this many of this task started, e.g. 100/s."),
    wait: bool = _opt(False, "--wait", env="ZQ_SUBMIT_WAIT",
                      help="Wait and print the result as JSON."),
    wait_timeout: Optional[float] = _duration(None, env="ZQ_SUBMIT_WAIT_TIMEOUT",
                                              help="With --wait: give up after this."),
    connect: Optional[str] = CONNECT_OPTION,
    keys: Optional[str] = KEYS_OPTION,
) -> None:
    """Submit one task; print its id, or with --wait its result. The master must accept
    it within $ZQ_TIMEOUT (default 3s; --timeout is the task's own time limit).
    --arg-from/--kwarg-from pass earlier tasks' results: the master holds this task until
    they succeeded (it fails with DependencyFailed if one fails, is cancelled with it)."""
    kw = {**_json_object(kwargs, "--kwargs"), **_kwargs_from(kwarg_from or [])}
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
    ack_timeout = _env_timeout()
    try:
        with _client(connect, ack_timeout, keys) as client:
            parsed = [*_results_of(arg_from or [], "--arg-from"),
                      *(parse_arg(a) for a in args or [])]
            future = client.options(**options).submit(task, *parsed, **kw)
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


def _results_of(ids: list[str], flag: str) -> list[Any]:
    """References to these tasks' results (zq.result_of), for --arg-from."""
    from zq.canvas import result_of
    try:
        return [result_of(i) for i in ids]
    except ZqError as e:
        raise typer.BadParameter(f"{flag}: {e}") from None


def _kwargs_from(pairs: list[str]) -> dict[str, Any]:
    """--kwarg-from NAME=ID, ...: {NAME: reference to task ID's result}."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, tid = pair.partition("=")
        if not sep or not name.isidentifier():
            raise typer.BadParameter(f"--kwarg-from {pair!r} is not NAME=TASK_ID (NAME a "
                                     "keyword argument's name)")
        out[name] = _results_of([tid], "--kwarg-from")[0]
    return out


NOTE_EVERY = 10.0  # seconds of silent waiting before `--wait` says why it still waits


def _print_result(client: Any, future: Any, timeout: Optional[float]) -> None:
    import concurrent.futures

    from zq.client.progress import ProgressBar

    def own_progress() -> tuple[float, Optional[float], int]:
        reported = future.progress  # the task's own progress(done, total), if it reports
        return (0, None, 0) if reported is None else (reported[0], reported[1], 0)

    try:
        with ProgressBar(f"task {future.id}", own_progress):  # on a terminal only
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
def status(json_: bool = JSON_OPTION,
           timeout: Optional[float] = TIMEOUT_OPTION,
           connect: Optional[str] = CONNECT_OPTION,
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Workers, queue depths, task counts and recent throughput."""
    st = _ask(connect, timeout, lambda client: client.status(), keys)
    if json_:
        _print(st, True)
        return
    typer.echo(f"master {st['master_id']}: {len(st['workers'])} workers, "
               f"{st['throughput']:.1f} tasks/s over the last 10 s")
    _table(["worker", "session", "host", "pid", "pool", "concurrency", "running",
            "last seen (s ago)"],
           [[w["name"], w.get("session") or "", w["host"], w["pid"], w["pool"],
             w["concurrency"], w["running"], w["last_seen"]] for w in st["workers"]])
    _table(["queue", "depth"], [[q, n] for q, n in st["queues"].items()])
    _table(["state", "tasks"], [[s, n] for s, n in st["counts"].items() if n])
    _echo_catalogue(st.get("catalogue") or {})


@app.command()
def events(json_: bool = JSON_OPTION,
           queue: Optional[str] = _opt(None, env="ZQ_EVENTS_QUEUE",
                                       help="Only events of this queue."),
           task: Optional[str] = _opt(None, env="ZQ_EVENTS_TASK",
                                      help="Only events of tasks of this name."),
           kind: list[str] = _opt(None, "--kind", env="ZQ_EVENTS_KIND",
                                  help="Only these kinds (repeatable): submitted, started, "
                                       "progress, succeeded, failed, retrying, dead, "
                                       "cancelled, joined, left, lost."),
           count: Optional[int] = _opt(None, env="ZQ_EVENTS_COUNT",
                                       help="Exit after this many events."),
           timeout: Optional[float] = TIMEOUT_OPTION,
           connect: Optional[str] = CONNECT_OPTION,
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Print task and worker events live, as they happen (one line each, or JSON)."""
    from zq.event_stream import EventStream
    from zq.security import peer_keys
    try:
        peer = peer_keys("client", keys, None, None) if keys else None
        with EventStream(connect or default_connect(), peer, queue=queue, task=task,
                         kinds=list(kind) if kind else None,
                         answer_within=_timeout(timeout)) as stream:
            stream.subscribe()
            shown = 0
            for e in stream.events():
                typer.echo(json.dumps(e, default=repr) if json_ else _event_line(e))
                shown += e["kind"] != "gap"
                if count is not None and shown >= count:
                    return
    except KeyboardInterrupt:
        return
    except ZqError as e:
        _fail(str(e))


def _event_line(e: dict[str, Any]) -> str:
    if e["kind"] == "gap":
        return f"-- dropped {e['dropped']} events (this reader fell behind)"
    stamp = float(e["time"])
    when = time.strftime("%H:%M:%S", time.localtime(stamp)) + f".{int(stamp % 1 * 1000):03d}"
    if "id" not in e:  # a worker's
        return (f"{when} {e['kind']:<10} worker {e.get('worker')} ({e.get('host')}, pid "
                f"{e.get('pid')}) queues {','.join(map(str, e.get('queues') or []))}")
    extra = f" {e['done']:g}/{e['total']:g}" if "done" in e else ""
    worker = f" on {e['worker']}" if e.get("worker") else ""
    return (f"{when} {e['kind']:<10} {e['id']} {e['name']} queue {e['queue']} "
            f"attempt {e['attempt']}{worker}{extra}")


@app.command()
def top(interval: Optional[float] = _duration(1.0, "--interval", env="ZQ_TOP_INTERVAL",
                                              help="Time between refreshes; default 1s."),
        timeout: Optional[float] = TIMEOUT_OPTION,
        connect: Optional[str] = CONNECT_OPTION,
        keys: Optional[str] = KEYS_OPTION) -> None:
    """A live view of workers, queues, rates and the longest-running tasks; q quits."""
    from zq import top as view
    from zq.event_stream import EventStream
    from zq.security import peer_keys
    every = _timeout(interval)
    where = connect or default_connect()
    try:
        with _client(connect, _timeout(timeout), keys) as client, EventStream(
                where, peer_keys("client", keys, None, None) if keys else None,
                answer_within=_timeout(timeout)) as stream:
            try:
                stream.subscribe()
            except Rejected as e:  # a master without the event stream (before 1.3)
                typer.echo(f"zq top: no event stream ({e}); the rate comes from status "
                           "counts", err=True)
                view.run(client, where, every)
            else:
                view.run(client, where, every, stream=stream, describe=_event_line)
    except KeyboardInterrupt:
        return
    except ZqError as e:
        _fail(str(e))


@app.command()
def dashboard(http: str = _opt("127.0.0.1:8080", "--http", env="ZQ_DASHBOARD_HTTP",
                               help="HOST:PORT the web dashboard listens on; off loopback it "
                                    "needs --token."),
              token: Optional[str] = _opt(
                  None, "--token", env="ZQ_DASHBOARD_TOKEN",
                  help="An access token (16 characters or more) every request must carry: "
                       "open the page once with ?token=TOKEN, or send 'Authorization: "
                       "Bearer TOKEN'."),
              timeout: Optional[float] = TIMEOUT_OPTION,
              connect: Optional[str] = CONNECT_OPTION,
              keys: Optional[str] = KEYS_OPTION,
              log_level: LogLevel = LOG_LEVEL_OPTION,
              log_format: LogFormat = LOG_FORMAT_OPTION) -> None:
    """A web dashboard (pip install 'zq[web]'): workers, queues, tasks, schedules, live
    from the event stream; retry and cancel with an admin key (or without keys)."""
    _setup_logging(log_level, log_format)
    host, _, port_text = http.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        _fail(f"--http {http!r} is not HOST:PORT, like 127.0.0.1:8080")
    try:
        from zq.event_stream import EventStream
        from zq.security import has_role, peer_keys
        from zq.web import Settings, serve
        from zq.web.guard import is_loopback
    except ImportError as e:
        _fail(f"the dashboard needs its extra: pip install 'zq[web]' ({e})")
    if token is not None and len(token) < 16:
        _fail("--token must be 16 characters or more; make one with: python -c "
              "'import secrets; print(secrets.token_urlsafe(24))'")
    if not is_loopback(host) and not token:
        _fail(f"--http {http}: a dashboard off loopback needs --token (or ZQ_DASHBOARD_TOKEN) "
              "so that not everyone who reaches the port can act on the cluster")
    role = "admin" if not keys or has_role(keys, "admin") else "client"
    where = connect or default_connect()
    settings = Settings(endpoint=where, role=role, token=token, keys=bool(keys))
    try:
        stream_keys = peer_keys("client", keys, None, None) if keys else None
        with _client(connect, _timeout(timeout), keys, admin=role == "admin") as client:
            typer.echo(f"zq dashboard on http://{http}/ (master {where}, {role} actions)",
                       err=True)
            serve(client, host, int(port_text), settings, lambda: EventStream(
                where, stream_keys, answer_within=_timeout(timeout)))
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has stopped already
        return
    except ZqError as e:
        _fail(str(e))


@app.command()
def ping(timeout: Optional[float] = TIMEOUT_OPTION,
         connect: Optional[str] = CONNECT_OPTION,
         keys: Optional[str] = KEYS_OPTION,
         standby_ok: bool = _opt(False, "--standby-ok", env="ZQ_PING_STANDBY_OK",
                                 help="Exit 0 when the master is a standby too (the health "
                                      "check of a standby master's own host).")) -> None:
    """Exit 0 if the active master answers within --timeout, else 1 saying why: a health
    check (Docker's HEALTHCHECK reads 1 as unhealthy). Given several masters
    (--connect a,b) it goes round them; when only a standby answers it says so and which
    master the standby names as active, and exits 2 (0 with --standby-ok)."""
    from zq.masters import parse_connect
    from zq.probe import probe
    from zq.security import peer_keys
    within, where = _timeout(timeout), connect or default_connect()
    standby = None
    try:  # each master itself (a client would follow a standby's hint elsewhere)
        peer = peer_keys("client", keys, None, None) if keys else None
        for endpoint in parse_connect(where):
            started = time.monotonic()
            answer = probe(endpoint, peer, within)
            if answer is not None and answer.status is not None:
                st, took = answer.status, (time.monotonic() - started) * 1000
                typer.echo(f"master {st['master_id']} at {endpoint} answered in "
                           f"{took:.0f} ms: {len(st['workers'])} workers")
                return
            standby = standby or answer
    except ZqError as e:
        _fail(str(e), 1)
    if standby is not None:
        named = f", active is {standby.standby}" if standby.standby else ", active unknown"
        typer.echo(f"the master at {standby.endpoint} is a standby{named}",
                   err=not standby_ok)
        raise typer.Exit(0 if standby_ok else 2)
    started = time.monotonic()
    try:  # none answered: a client says why (a refused key, nothing listening)
        with _client(connect, within, keys) as client:
            st = client.status()
    except ZqError as e:
        _fail(str(e), 1)
    typer.echo(f"master {st['master_id']} at {where} answered in "
               f"{(time.monotonic() - started) * 1000:.0f} ms: {len(st['workers'])} workers")


CATALOGUE_SHOWN = 50  # task names `zq status` lists; --json has them all


def _echo_catalogue(catalogue: dict[str, dict]) -> None:
    """The task names workers announced, with the options each declares."""
    typer.echo(f"task names announced by workers: {len(catalogue)}")
    _table(["task", "declared options"],
           [[name, " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}"
                            for k, v in sorted(catalogue[name].items()))]
            for name in list(catalogue)[:CATALOGUE_SHOWN]])
    if len(catalogue) > CATALOGUE_SHOWN:
        typer.echo(f"... and {len(catalogue) - CATALOGUE_SHOWN} more (zq status --json)")


def _table(columns: list[str], rows: list[list[Any]]) -> None:
    """A table on stdout (rich), nothing when there are no rows. On a terminal it fits the
    screen; otherwise (a pipe, a file) every cell is whole and lines end without padding,
    for grep and awk."""
    if not rows:
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: never read as markup
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(highlight=False, width=100_000, color_system=None)
    with wide.capture() as captured:
        wide.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


@app.command()
def tasks(state: Optional[TaskState] = _opt(None, env="ZQ_TASKS_STATE",
                                            help="Only tasks in this state."),
          queue: Optional[str] = _opt(None, env="ZQ_TASKS_QUEUE", help="Only this queue."),
          name: Optional[str] = _opt(None, env="ZQ_TASKS_NAME",
                                     help="Only this task name, module:function."),
          limit: int = _opt(20, env="ZQ_TASKS_LIMIT", help="At most this many (1000 at most)."),
          json_: bool = JSON_OPTION,
          timeout: Optional[float] = TIMEOUT_OPTION,
          connect: Optional[str] = CONNECT_OPTION,
          keys: Optional[str] = KEYS_OPTION) -> None:
    """List tasks, newest first; `parents` names what each waits for (its after= tasks
    and the tasks whose results it takes: a workflow's graph, one edge list per row)."""
    label = state.value if state else None
    rows = _ask(connect, timeout, lambda client: client.tasks(state=label, queue=queue,
                                                              name=name, limit=limit), keys)
    if json_:
        _print(rows, True)
        return
    _table(["id", "state", "name", "queue", "attempt", "worker", "started", "finished",
            "runtime", "queue wait", "progress", "error", "parents"],
           [[t["id"], t["state"], t["name"], t["queue"], t["attempt"], t.get("worker") or "",
             _when(t["started"]) if t.get("started") else "",
             _when(t["finished"]) if t.get("finished") else "", _seconds(t.get("runtime")),
             _seconds(t.get("queue_wait")),
             f"{t['progress'][0]}/{t['progress'][1]}" if t.get("progress") else "",
             f"{t['error']['type']}: {t['error']['message']}" if t.get("error") else "",
             _parents_cell(t)]
            for t in rows])


PARENTS_IN_CELL = 3  # parent ids `zq tasks` shows in its column (zq result ID: all)


def _parents_cell(t: dict[str, Any]) -> str:
    """The ids a task waits for (after= and inputs), the first few and how many more; a
    master before 1.5 sends none."""
    ids = t.get("parent_ids") or []
    total = t.get("parents_total") or len(ids)
    more = total - min(len(ids), PARENTS_IN_CELL)
    return ",".join(map(str, ids[:PARENTS_IN_CELL])) + (f" +{more}" if more > 0 else "")


def _readable(info: dict[str, Any]) -> dict[str, Any]:
    """A `get` answer with its payload heads (bytes) replaced by previews (zq.preview),
    for JSON and for people."""
    from zq.preview import preview_payload
    out = dict(info)
    head = out.pop("args_head", None)
    if head is not None:
        out["args_preview"] = preview_payload(head, out.get("args_size") or 0)
    if out.get("chunks"):
        out["chunks"] = [{**{k: v for k, v in c.items() if k != "head"},
                          "preview": preview_payload(c["head"], c["size"], call=False)}
                         for c in out["chunks"]]
    return out


def _detail_text(info: dict[str, Any]) -> str:
    """`zq result --detail`: arguments, dependencies, attempts, latest chunks."""
    d = _readable(info)
    lines = [f"arguments: {d.get('args_preview', '(not kept)')}"]
    for what in ("parents", "children"):
        deps = d.get(what) or []
        total = d.get(f"{what}_total", len(deps))
        shown = ", ".join(f"{p['id']} ({p['state'] or 'forgotten'})" for p in deps)
        more = f" and {total - len(deps)} more" if total > len(deps) else ""
        lines.append(f"{'waits for' if what == 'parents' else 'waited for by'}: "
                     f"{shown or 'none'}{more}")
    for a in d.get("attempts") or []:
        err = f": {a['error']['type']}: {a['error']['message']}" if a.get("error") else ""
        lines.append(f"attempt {a['attempt']} on {a['worker']}: {a['outcome']}{err}, "
                     f"started {_when(a['started']) if a['started'] else 'not yet'}, "
                     f"finished {_when(a['finished']) if a['finished'] else 'not yet'}")
    if d.get("chunks_total"):
        lines.append(f"chunks: {d['chunks_total']} streamed, the latest {len(d['chunks'])}:")
        lines += [f"  #{c['seq']}: {c['preview']}" for c in d["chunks"]]
    return "\n".join(lines)


def _seconds(seconds: Optional[float]) -> str:
    return "" if seconds is None else f"{seconds:.3f}s"


def _timing_line(info: dict[str, Any]) -> str:
    """When the latest attempt started and finished, on which worker, how long it ran
    and how long it waited queued before (what is known of it)."""
    parts = [f"{label} {show(info.get(key))}" for label, key, show in (
        ("started", "started", _when), ("finished", "finished", _when),
        ("runtime", "runtime", _seconds), ("queue wait", "queue_wait", _seconds))
        if info.get(key) is not None]
    if info.get("worker"):
        parts.append(f"on worker {info['worker']}")
    return ", ".join(parts)


@app.command()
def result(task_id: str,
           wait: bool = _opt(False, "--wait", env="ZQ_RESULT_WAIT",
                             help="Wait for the task to finish."),
           detail: bool = _opt(False, "--detail", env="ZQ_RESULT_DETAIL",
                               help="Also show its arguments (a preview), the tasks it "
                                    "waits for and that wait for it, its attempts and its "
                                    "latest streamed chunks (on stderr)."),
           json_: bool = JSON_OPTION,
           timeout: Optional[float] = _duration(
               None, "--timeout", env="ZQ_RESULT_TIMEOUT",
               help="How long to wait for the master to answer (default $ZQ_TIMEOUT, else "
                    "3s); with --wait, for the result (default: no limit)."),
           connect: Optional[str] = CONNECT_OPTION,
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Print a task's result (or its state, if it has none yet)."""
    if timeout is None:
        answer = _env_timeout()
    elif wait:
        answer = min(_env_timeout(), _timeout(timeout))
    else:
        answer = _timeout(timeout)
    try:
        with _client(connect, answer, keys) as client:
            future = client.future(task_id) if wait else None
            info = client.get(task_id)  # a master answers and knows the task, or this fails now
            if detail:
                typer.echo(_detail_text(info), err=True)
            if future is not None:
                _print_result(client, future, timeout)
                return
            if info["state"] == "succeeded":
                if not json_ and _timing_line(info):  # stdout keeps the value alone
                    typer.echo(_timing_line(info), err=True)
                _print_result(client, client.future(task_id), answer)
            elif json_:
                _print(_readable(info), True)
                if info.get("error"):
                    raise typer.Exit(1)  # the same exit code as without --json
            else:
                err = info.get("error")
                typer.echo(f"{task_id} is {info['state']}"
                           + (f": {err['type']}: {err['message']}" if err else ""))
                if _timing_line(info):  # stderr: stdout keeps its one line
                    typer.echo(_timing_line(info), err=True)
                if err:
                    raise typer.Exit(1)
    except ZqError as e:
        _fail(str(e))


@app.command()
def retry(task_id: Optional[str] = typer.Argument(None, help="The task to run again."),
          state: Optional[RetryState] = _opt(
              None, env="ZQ_RETRY_STATE",
              help="Or: every task in this state (the newest first, up to --limit)."),
          name: Optional[str] = _opt(None, env="ZQ_RETRY_NAME",
                                     help="With --state: only this task name."),
          queue: Optional[str] = _opt(None, env="ZQ_RETRY_QUEUE",
                                      help="With --state: only this queue."),
          limit: int = _opt(1000, env="ZQ_RETRY_LIMIT",
                            help="With --state: retry at most this many (10000 at most)."),
          json_: bool = JSON_OPTION,
          timeout: Optional[float] = TIMEOUT_OPTION,
          connect: Optional[str] = CONNECT_OPTION,
          keys: Optional[str] = KEYS_OPTION) -> None:
    """Run a failed, dead or cancelled task again; or, with --state, every such task
    (zq retry --state dead --name myapp.tasks:resize)."""
    if (task_id is None) == (state is None):
        _fail("give a task id, or --state failed|dead|cancelled to retry many (not both)")
    if state is None:
        if name is not None or queue is not None:
            _fail("--name and --queue choose tasks with --state; a task id is one task")
        info = _ask(connect, timeout, lambda client: client.retry(task_id), keys, admin=True)
        _print(info if json_ else f"{task_id} queued again", json_)
        return
    if limit < 1:
        _fail(f"--limit must be >= 1, not {limit}")
    from zq.core.queries import MAX_RETRY_MANY
    if limit > MAX_RETRY_MANY:
        _fail(f"--limit is at most {MAX_RETRY_MANY} (the master's most per command), not "
              f"{limit}; run it again for more")
    from zq.bulk import retry_many
    done = _ask(connect, timeout, lambda client: retry_many(
        client, state.value, name, queue, limit), keys, admin=True)
    if json_:
        _print(done, True)
        return
    what = " ".join(x for x in (state.value, name, f"in queue {queue}" if queue else "") if x)
    more = (f" (--limit {limit}: more may match)" if done["count"] >= limit
            else " (more may match: run it again)" if done["more"] else "")
    typer.echo(f"retried {done['count']} {what} tasks{more}")
    for skip in done["skipped"]:
        typer.echo(f"skipped {skip['id']}: {skip['reason']}", err=True)


@app.command()
def cancel(task_id: str, timeout: Optional[float] = TIMEOUT_OPTION,
           connect: Optional[str] = CONNECT_OPTION,
           keys: Optional[str] = KEYS_OPTION) -> None:
    """Cancel a task: a queued one never runs, a running one is stopped."""
    def cancel_then_get(client: Any) -> dict:
        client.future(task_id).revoke()  # stops a running task too (cancel() would not)
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
def purge(state: FinalState = _opt(FinalState.SUCCEEDED, env="ZQ_PURGE_STATE",
                                   help="Forget tasks in this state."),
          older_than: float = _duration("0s", env="ZQ_PURGE_OLDER_THAN",
                                        help="Only those finished longer ago than this."),
          json_: bool = JSON_OPTION,
          timeout: Optional[float] = TIMEOUT_OPTION,
          connect: Optional[str] = CONNECT_OPTION,
          keys: Optional[str] = KEYS_OPTION) -> None:
    """Delete finished tasks in a state, older than a duration (e.g. 1h)."""
    out = _ask(connect, timeout, lambda client: client.purge(state.value, older_than), keys,
               admin=True)
    _print(out if json_ else f"purged {out['purged']} tasks", json_)


schedule_app = typer.Typer(no_args_is_help=True, help="Periodic tasks owned by the master.")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    name: str = typer.Argument(..., help="A name; adding it again replaces it."),
    task: str = typer.Argument(..., help="Task name, module:function."),
    args: list[str] = typer.Argument(None, help="Arguments; each parsed as JSON if it can be."),
    cron: Optional[str] = _opt(None, env="ZQ_SCHEDULE_ADD_CRON",
                               help="5-field cron expression, e.g. '*/5 * * * *'."),
    every: Optional[float] = _duration(None, env="ZQ_SCHEDULE_ADD_EVERY",
                                       help="Or: run every this long (30s, 5m, 1h)."),
    timezone: str = _opt("UTC", env="ZQ_SCHEDULE_ADD_TIMEZONE",
                         help="Timezone of the cron expression."),
    kwargs: str = _opt("{}", env="ZQ_SCHEDULE_ADD_KWARGS",
                       help="Keyword arguments as a JSON object."),
    queue: Optional[str] = _opt(None, env="ZQ_SCHEDULE_ADD_QUEUE",
                                help="Default: the task's own, else 'default'."),
    priority: Optional[int] = _opt(None, env="ZQ_SCHEDULE_ADD_PRIORITY",
                                   help="Default: the task's own, else 0."),
    json_: bool = JSON_OPTION,
    timeout: Optional[float] = TIMEOUT_OPTION,
    connect: Optional[str] = CONNECT_OPTION,
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
def schedule_list(json_: bool = JSON_OPTION,
                  timeout: Optional[float] = TIMEOUT_OPTION,
                  connect: Optional[str] = CONNECT_OPTION,
                  keys: Optional[str] = KEYS_OPTION) -> None:
    """List the periodic tasks with their next run."""
    rows = _ask(connect, timeout, lambda client: client.schedules(), keys)
    if json_:
        _print(rows, True)
        return
    _table(["name", "task", "when", "next run", "last run"],
           [[s["name"], s["task"], _schedule_when(s),
             "never" if s.get("broken") else "paused" if s.get("paused")
             else _when(s["next_run"]),
             _when(s["last_tick"]) if s.get("last_tick") else ""] for s in rows])


def _schedule_when(s: dict) -> str:
    if s.get("broken"):
        return f"BROKEN, never runs: {s['broken']}"
    return f"cron '{s['cron']}' ({s['timezone']})" if s["cron"] else f"every {s['every']}s"


@schedule_app.command("remove")
def schedule_remove(name: str, timeout: Optional[float] = TIMEOUT_OPTION,
                    connect: Optional[str] = CONNECT_OPTION,
                    keys: Optional[str] = KEYS_OPTION) -> None:
    """Remove a periodic task."""
    _ask(connect, timeout, lambda client: client.unschedule(name), keys, admin=True)
    typer.echo(f"{name}: removed")


@schedule_app.command("pause")
def schedule_pause(name: str, json_: bool = JSON_OPTION,
                   timeout: Optional[float] = TIMEOUT_OPTION,
                   connect: Optional[str] = CONNECT_OPTION,
                   keys: Optional[str] = KEYS_OPTION) -> None:
    """Pause a periodic task: no tick runs until it is resumed (kept across restarts)."""
    out = _ask(connect, timeout, lambda client: client.pause_schedule(name), keys, admin=True)
    _print(out if json_ else f"{name}: paused", json_)


@schedule_app.command("resume")
def schedule_resume(name: str, json_: bool = JSON_OPTION,
                    timeout: Optional[float] = TIMEOUT_OPTION,
                    connect: Optional[str] = CONNECT_OPTION,
                    keys: Optional[str] = KEYS_OPTION) -> None:
    """Resume a paused periodic task from its next tick (missed ticks do not run)."""
    out = _ask(connect, timeout, lambda client: client.resume_schedule(name), keys,
               admin=True)
    _print(out if json_ else f"{name}: resumed; next run at {_when(out['next_run'])}", json_)


@schedule_app.command("run")
def schedule_run(name: str, json_: bool = JSON_OPTION,
                 timeout: Optional[float] = TIMEOUT_OPTION,
                 connect: Optional[str] = CONNECT_OPTION,
                 keys: Optional[str] = KEYS_OPTION) -> None:
    """Run a periodic task once now (its schedule is unchanged); prints the task id."""
    out = _ask(connect, timeout, lambda client: client.query("schedule_run", name=name), keys,
               admin=True)
    _print(out if json_ else out["id"], json_)


def _when(ts: Optional[float]) -> str:
    from datetime import datetime
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def main() -> None:
    try:
        app(prog_name="zq")
    except ConfigError as e:
        _fail(str(e))


if __name__ == "__main__":
    main()
