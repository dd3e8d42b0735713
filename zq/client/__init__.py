"""The client side of zq: Client, Future and Executor (see client.py for how the parts
fit: a mailbox user threads post to, one I/O thread that owns the socket)."""

from zq.client.client import Client, no_master_error
from zq.client.executor import Executor
from zq.client.future import Future

__all__ = ["Client", "Executor", "Future", "no_master_error"]
