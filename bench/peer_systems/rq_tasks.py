"""The no-op task for RQ in bench/peers.py (workers: rq worker, PYTHONPATH=bench/peers)."""


def noop(x=None):
    return x
