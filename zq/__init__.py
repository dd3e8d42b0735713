"""zq: a zero-broker distributed task queue for Python over ZeroMQ."""

from zq.errors import (
    ConfigError, ConnectionLost, ProtocolError, Rejected, SerializationError, TaskError,
    TaskTimeout, UnknownTask, WorkerLost, ZqError,
)
from zq.registry import task

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "ConnectionLost", "ProtocolError", "Rejected", "SerializationError",
    "TaskError", "TaskTimeout", "UnknownTask", "WorkerLost", "ZqError", "task",
]
