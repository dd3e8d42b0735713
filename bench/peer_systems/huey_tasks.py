"""The no-op task for Huey in bench/peers.py: RedisHuey at $BENCH_REDIS_URL (db 0), its
result store on, and notify_result=True, so a waiting client blocks in a BLPOP on the
task's notification key instead of polling the result hash.
Worker: huey_consumer huey_tasks.huey -k thread -w 8 (or -w 2 for --config equal)."""

import os

from huey import RedisHuey

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")

huey = RedisHuey("bench", url=f"{URL}/0", results=True, notify_result=True)


@huey.task()
def noop(x=None):
    return x
