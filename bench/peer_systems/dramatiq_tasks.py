"""The no-op task for Dramatiq in bench/peers.py: Redis broker and the Results middleware
with the Redis backend, both at $BENCH_REDIS_URL (db 0).
Worker: dramatiq dramatiq_tasks --processes 1 --threads 2."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")

broker = RedisBroker(url=f"{URL}/0")
broker.add_middleware(Results(backend=RedisBackend(url=f"{URL}/0")))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def noop(x=None):
    return x
