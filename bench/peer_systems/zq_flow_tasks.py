"""The tasks of bench/workflows.py for zq (worker: --app zq_flow_tasks, PYTHONPATH=
bench/peer_systems): a chord's members and callback, a chain's step. The same three as
celery_flow_tasks.py."""

import zq


@zq.task
def ident(x):
    return x


@zq.task
def total(values):
    return sum(values)


@zq.task
def inc(x):
    return x + 1
