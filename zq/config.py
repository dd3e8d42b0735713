"""Frozen configuration for each process, with defaults and validate().

Only cli.py reads flags and environment variables; everything else takes these.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from zq.core import limits
from zq.errors import ConfigError
from zq.masters import parse_connect

DEFAULT_CONNECT = "tcp://127.0.0.1:5555"
DEFAULT_EXIT_TIMEOUT = 10.0
POOLS = ("process", "thread", "async")


def default_connect() -> str:
    """The address clients and workers use when none is given: $ZQ_CONNECT or loopback."""
    return os.environ.get("ZQ_CONNECT") or DEFAULT_CONNECT


def default_exit_timeout() -> float:
    """Seconds a live client waits at interpreter exit for the master to accept what was
    submitted (Client docstring): $ZQ_EXIT_TIMEOUT, else 10."""
    text = os.environ.get("ZQ_EXIT_TIMEOUT")
    if not text:
        return DEFAULT_EXIT_TIMEOUT
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"ZQ_EXIT_TIMEOUT={text!r} is not a number of seconds") from None


def metrics_address(text: str) -> tuple[str, int]:
    """--metrics HOST:PORT (an IPv6 host in brackets; no host: every address) ->
    (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--metrics {text!r} is not HOST:PORT (like 127.0.0.1:9464)")
    return host.strip("[]") or "0.0.0.0", int(port)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class MasterConfig:
    bind: str = "tcp://*:5555"
    store: str = "zq.db"  # a SQLite file path, "memory", or a postgresql:// URL
    store_sync: str = "normal"  # SQLite: "normal" survives kill -9, "full" power loss too
    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 3
    max_message: int = limits.MAX_MESSAGE  # bytes per frame; larger frames drop the peer
    result_ttl: float = limits.RESULT_TTL
    max_queued: int = limits.MAX_QUEUED  # above this SUBMIT gets BUSY (back-pressure)
    # Bytes the master holds for one peer that does not read (its ZeroMQ queue is full);
    # past this that peer's session is dropped.
    max_held: int = 64 * 1024 * 1024
    schedule: str | None = None  # path of a schedule.toml
    # CurveZMQ (zq.security): this master's NAME.key_secret, and directories of the
    # public NAME.key files admitted as workers and as clients. All three, or none.
    secret_key: str | None = None
    worker_keys: str | None = None
    client_keys: str | None = None
    admin_keys: str | None = None
    keys: str | None = None  # or one keys folder (zq keys init): see zq.security
    # Without keys the master admits only peers on its own host (loopback); insecure
    # admits anyone who reaches its port (zq.gate). Keys make it moot.
    insecure: bool = False
    # Connections open at once; past it new peers are turned away (ZAP 300) until some
    # leave. The master lowers it to fit its open-file limit.
    max_connections: int = 10_000
    # HOST:PORT to serve Prometheus metrics on (/metrics); None: no metrics, no cost.
    metrics: str | None = None
    # The endpoint peers reach this master at, which a standby names to them (on a
    # shared store, PostgreSQL); None: the bound endpoint, a wildcard as this host's name.
    advertise: str | None = None

    def validate(self) -> MasterConfig:
        _require("://" in self.bind, f"--bind {self.bind!r} is not an endpoint like tcp://*:5555")
        _require(self.heartbeat_interval > 0, "--heartbeat-interval must be > 0")
        _require(self.heartbeat_liveness >= 1, "--heartbeat-liveness must be >= 1")
        _require(self.result_ttl > 0, "--result-ttl must be > 0")
        _require(self.max_queued > 0, "max_queued must be > 0")
        _require(self.max_held > 0, "max_held must be > 0")
        _require(self.store_sync in ("normal", "full"),
                 f"--store-sync must be normal or full, not {self.store_sync!r}")
        _require(self.max_connections >= 1, "--max-connections must be >= 1")
        _require(self.advertise is None or "://" in self.advertise,
                 f"--advertise {self.advertise!r} is not an endpoint like tcp://host:5555")
        if self.metrics is not None:
            metrics_address(self.metrics)
        return self


@dataclass(frozen=True)
class WorkerConfig:
    connect: str = field(default_factory=default_connect)
    apps: tuple[str, ...] = ()
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    pool: str = "process"
    prefetch: int | None = None  # extra tasks held beyond concurrency; None = adaptive
    queues: tuple[str, ...] = ("default",)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    shutdown_timeout: float = 30.0
    reconnect_min: float = 0.1
    reconnect_max: float = 30.0
    # CurveZMQ (zq.security): this worker's NAME.key_secret and the master's NAME.key,
    # or a keys folder (its worker key).
    secret_key: str | None = field(default_factory=lambda: os.environ.get("ZQ_SECRET_KEY"))
    master_key: str | None = field(default_factory=lambda: os.environ.get("ZQ_MASTER_KEY"))
    keys: str | None = field(default_factory=lambda: os.environ.get("ZQ_KEYS"))
    # Run code that clients ship by value (Client(ship_code=True)); the master admits
    # such a worker only if it runs with keys (docs/TASKS.md, Code shipping).
    allow_code: bool = False
    # Thread pool: run tasks measured shorter than this (seconds) in the worker's loop
    # thread, without a hand-off to a pool thread (zq.pools.thread.ThreadPool); 0 = never.
    inline_under: float = 0.0

    @property
    def credit(self) -> int:
        prefetch = self.concurrency if self.prefetch is None else self.prefetch
        return self.concurrency + prefetch

    def validate(self) -> WorkerConfig:
        _require(bool(self.apps), "give at least one --app MODULE whose tasks this worker runs")
        _require(self.pool in POOLS, f"--pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        _require(self.concurrency >= 1, "--concurrency must be >= 1")
        _require(self.prefetch is None or self.prefetch >= 0, "--prefetch must be >= 0")
        _require(0 <= self.inline_under <= 1, "--inline-under must be between 0 and 1 s "
                 "(a task that long already holds the worker's loop back)")
        _require(not self.inline_under or self.pool == "thread",
                 "--inline-under is for --pool thread only")
        _require(bool(self.queues) and all(self.queues), "--queues needs at least one name")
        parse_connect(self.connect)
        return self


@dataclass(frozen=True)
class ClientConfig:
    connect: str = field(default_factory=default_connect)
    batch_size: int = 1000  # submissions sent in one SUBMIT at most
    max_unacked: int = 100_000  # submissions in flight before submit() blocks
    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 5
    query_timeout: float = 10.0  # seconds a query waits for the master's reply by default
    # At interpreter exit a live client waits this long for ACCEPTED of what it submitted.
    exit_timeout: float = field(default_factory=default_exit_timeout)
    # CurveZMQ (zq.security): this client's NAME.key_secret and the master's NAME.key,
    # or a keys folder: its client key, and its admin key for admin actions (or for
    # everything with admin=True).
    secret_key: str | None = field(default_factory=lambda: os.environ.get("ZQ_SECRET_KEY"))
    master_key: str | None = field(default_factory=lambda: os.environ.get("ZQ_MASTER_KEY"))
    keys: str | None = field(default_factory=lambda: os.environ.get("ZQ_KEYS"))
    admin: bool = False
    # Send callables no worker can look up by name (lambdas, closures, bound methods,
    # functions of __main__) by value, with cloudpickle; only --allow-code workers run them.
    ship_code: bool = False
    # A thread waiting in Future.result() for the only future open runs the client's I/O
    # loop itself meanwhile (fewer thread wake-ups per round trip; IoLoop.lead). False:
    # the I/O thread alone reads the socket, and done-callbacks always run there.
    fast_result: bool = True

    def validate(self) -> ClientConfig:
        parse_connect(self.connect)
        _require(self.batch_size >= 1, "batch_size must be >= 1")
        _require(self.max_unacked >= self.batch_size, "max_unacked must be >= batch_size")
        _require(self.query_timeout > 0, "query_timeout must be > 0")
        _require(self.exit_timeout >= 0, f"exit_timeout (ZQ_EXIT_TIMEOUT) must be >= 0, "
                                         f"not {self.exit_timeout}")
        return self
