"""The no-op task for Celery in bench/peers.py: Redis broker (db 0) and Redis result
backend (db 1) at $BENCH_REDIS_URL. Worker: celery -A celery_tasks worker -P prefork -c 2."""

import os

from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")

app = Celery("celery_tasks", broker=f"{URL}/0", backend=f"{URL}/1")
app.conf.update(
    broker_connection_retry_on_startup=True,  # silences a Celery 5.3+ deprecation warning
    result_expires=3600,
    worker_hijack_root_logger=False,
)


@app.task
def noop(x=None):
    return x
