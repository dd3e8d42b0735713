"""The tasks of bench/workflows.py for Celery: Redis broker (db 0) and Redis result
backend (db 1) at $BENCH_REDIS_URL, as celery_tasks.py. The same three as
zq_flow_tasks.py. Worker: celery -A celery_flow_tasks worker -P prefork -c 2."""

import os

from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")

app = Celery("celery_flow_tasks", broker=f"{URL}/0", backend=f"{URL}/1")
app.conf.update(
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    worker_hijack_root_logger=False,
)


@app.task
def ident(x):
    return x


@app.task
def total(values):
    return sum(values)


@app.task
def inc(x):
    return x + 1
