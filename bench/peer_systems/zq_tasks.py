"""The no-op task for zq in bench/peers.py (worker: --app zq_tasks, PYTHONPATH=bench/peers)."""

import zq


@zq.task
def noop(x=None):
    return x
