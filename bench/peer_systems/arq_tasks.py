"""The no-op task for arq in bench/peers.py: Redis at $BENCH_REDIS_URL (db 0).
Worker: arq arq_tasks.WorkerSettings --custom-log-dict arq_tasks.WARNINGS_ONLY (max_jobs at
its default, 10), or
arq arq_tasks.TwoAtATime for --config equal.

poll_delay is lowered from arq's default 0.5 s to 10 ms in both: arq's worker reads its
queue by polling, and at 0.5 s the wait for the next poll, not arq's own cost, would be
most of every round trip (the generous choice for the peer)."""

import os

from arq.connections import RedisSettings

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS = RedisSettings.from_dsn(f"{URL}/0")

# `arq --custom-log-dict arq_tasks.WARNINGS_ONLY`: arq's own default logs each job at INFO
WARNINGS_ONLY = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"arq": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["arq"], "level": "WARNING"}},
}


async def noop(ctx, x=None):
    return x


class WorkerSettings:
    functions = [noop]
    redis_settings = REDIS
    poll_delay = 0.01


class TwoAtATime:  # arq reads a settings class's own attributes only, not inherited ones
    functions = [noop]
    redis_settings = REDIS
    poll_delay = 0.01
    max_jobs = 2
