"""zq: a zero-broker distributed task queue for Python over ZeroMQ."""

from zq.canvas import GroupFuture, ResultOf, Signature, chain, chord, group, result_of, sig
from zq.client import Client, Executor, Future
from zq.client.progress import progress
from zq.config import ClientConfig
from zq.context import current_task
from zq.errors import (
    AccessRefused,
    ConfigError,
    ConnectionLost,
    DependencyFailed,
    ProtocolError,
    Rejected,
    SerializationError,
    StoreError,
    TaskError,
    TaskTimeout,
    UnknownTask,
    WorkerLost,
    ZqError,
)
from zq.registry import task

__version__ = "0.1.0"

__all__ = [
    "Client", "ClientConfig", "Executor", "Future",
    "AccessRefused", "ConfigError", "ConnectionLost", "DependencyFailed", "ProtocolError",
    "Rejected",
    "SerializationError", "StoreError",
    "TaskError", "TaskTimeout", "UnknownTask", "WorkerLost", "ZqError", "current_task", "progress",
    "task", "sig", "chain", "group", "chord", "Signature", "GroupFuture", "result_of", "ResultOf",
]
