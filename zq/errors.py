"""The zq error tree: one root, ZqError, and a branch per kind of failure."""

from __future__ import annotations


class ZqError(Exception):
    """Root of every error zq raises."""


class ConfigError(ZqError, ValueError):
    """A configuration value is invalid (a flag, an option, a schedule file)."""


class ProtocolError(ZqError):
    """A peer sent bytes that are not a valid zq message (malformed, unknown, too big)."""


class SerializationError(ZqError, TypeError):
    """A value cannot travel: msgpack cannot encode it (arguments or a result)."""


class StoreError(ZqError):
    """The task store failed: an I/O error, a full disk, a locked or damaged file."""


class StoreUnavailable(StoreError):
    """The store cannot write now (a full disk, an I/O error, a lock held too long) but
    kept what was pending: the same call may be retried and lose nothing."""


class StoreDamaged(StoreError):
    """The store's file is damaged (truncated, corrupt, not SQLite): zq changes nothing
    in it and stops; the message names the file and the way out."""


class ConnectionLost(ZqError):
    """The master could not be reached in time."""


class TransportError(ZqError):
    """A socket failed to send or receive (a ZeroMQ error, translated by zq.transport)."""


class PeerCongested(TransportError):
    """The peer's queue is full (it does not read fast enough): nothing was sent. Keep
    the message and try again later."""


class PeerGone(TransportError):
    """The peer is no longer connected (a ROUTER cannot route to it): nothing was sent."""


class AccessRefused(ZqError):
    """The master refused this peer's connection for good: without keys it admits only
    peers on its own host, with keys only the public keys in its folders (and each key in
    one role). The message says which, and what to do."""


class Rejected(ZqError):
    """The master refused a submission or a request, with its reason."""


class TaskError(ZqError):
    """A task failed remotely; carries the remote type name, message and traceback."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


class TaskTimeout(TaskError):
    """A task ran past its time limit."""


class WorkerLost(TaskError):
    """The worker running a task died and no attempt was left."""


class UnknownTask(TaskError):
    """The task name is not in any --app module of the worker."""


class DependencyFailed(TaskError):
    """A task whose arguments take another task's result (a future given as an
    argument) did not run: that input failed for good. `input` is the input's task id;
    the input's own error is the exception's __cause__."""

    input: str | None = None


class RemoteTraceback(ZqError):
    """Used as the __cause__ of a re-raised built-in exception: the remote traceback."""

    def __init__(self, traceback: str) -> None:
        super().__init__(traceback)
        self.traceback = traceback

    def __str__(self) -> str:
        return "\n" + self.traceback


class LeaseLost(StoreError):
    """Another master took the store's lease (a standby that took over): this master
    must stop serving at once. Nothing of the failed commit was written."""
