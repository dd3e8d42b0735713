"""One measurement run of one system for bench/peers.py, inside bench/.peers-venv.

    python bench/peer_systems/measure.py SYSTEM --n N --pings P [--warmup W] [--timeout S]
        [--zq tcp://127.0.0.1:PORT]      (the Redis systems read $BENCH_REDIS_URL)

With the system's worker(s) already running: `warmup` untimed round trips (the first
one waits for the workers to come up), then (a) throughput: enqueue N no-op tasks with
the system's bulk API, then wait for every result, timed from the first enqueue to the
last result; (b) latency: P round trips one at a time (enqueue one task, wait for its
result). The last line of stdout is a JSON object: tasks_per_s, p50_s, p99_s, versions.
Every wait is bounded by --timeout (the whole run) and fails loudly past it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the run took more than {self.seconds:.0f} s")
        return left if cap is None else min(left, cap)


ENQUEUED: list[float] = []


def check(got: list, n: int, system: str) -> None:
    if got != list(range(n)):
        raise RuntimeError(f"{system}: {len(got)} results, not the {n} expected values")


def enqueued() -> None:
    """Called by bulk() once all N tasks are enqueued (not awaited yet)."""
    ENQUEUED.append(time.perf_counter())


# Each system: setup(args) -> (bulk(n, deadline), one(i, deadline) -> i, versions, close)

def setup_zq(args: argparse.Namespace) -> tuple[Callable, Callable, dict, Callable]:
    from zq_tasks import noop

    import zq

    client = zq.Client(args.zq)

    def bulk(n: int, dl: Deadline) -> None:
        if args.zq_map:  # Client.map: submitted in windows as results come back
            got = list(client.map(noop, range(n), timeout=dl.left()))
        else:  # the same shape as the peers: every task submitted, then every result
            futures = [client.submit(noop, i) for i in range(n)]
            enqueued()
            got = [f.result(timeout=dl.left()) for f in futures]
        check(got, n, "zq")

    def one(i: int, dl: Deadline) -> Any:
        return client.submit(noop, i).result(timeout=dl.left())

    return bulk, one, {"zq": _dist("zq")}, client.close


def setup_celery(args: argparse.Namespace) -> tuple[Callable, Callable, dict, Callable]:
    from celery import group
    from celery_tasks import app, noop

    def bulk(n: int, dl: Deadline) -> None:
        # group(): Celery's bulk send (one producer/connection for all N messages); the
        # GroupResult is joined natively (the Redis backend's pub/sub result consumer).
        res = group(noop.s(i) for i in range(n)).apply_async()
        enqueued()
        got = res.get(timeout=dl.left(), interval=0.005)
        check(got, n, "celery")

    def one(i: int, dl: Deadline) -> Any:
        return noop.delay(i).get(timeout=dl.left(), interval=0.005)

    return bulk, one, {"celery": _dist("celery"), "kombu": _dist("kombu")}, app.close


def setup_rq(args: argparse.Namespace) -> tuple[Callable, Callable, dict, Callable]:
    import redis
    from rq import Queue
    from rq_tasks import noop

    conn = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"] + "/0")
    queue = Queue("bench", connection=conn)

    def wait(job: Any, dl: Deadline) -> Any:
        # Job.latest_result(timeout=S) blocks in a Redis XREAD on the job's result stream
        # (whole seconds), so no client-side polling interval is involved. At most 4 s per
        # call: redis-py's default socket timeout is 5 s.
        while True:
            result = job.latest_result(timeout=max(1, int(dl.left(4))))
            if result is not None:
                break
            dl.left()  # TimeoutError once the run's time is up
        if result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"rq: job {job.id} failed: {result.exc_string}")
        return result.return_value

    def bulk(n: int, dl: Deadline) -> None:
        # enqueue_many(): RQ's bulk API, one Redis pipeline for all N jobs.
        jobs = queue.enqueue_many([Queue.prepare_data(noop, (i,)) for i in range(n)])
        enqueued()
        got = [wait(job, dl) for job in jobs]
        check(got, n, "rq")

    def one(i: int, dl: Deadline) -> Any:
        return wait(queue.enqueue(noop, i), dl)

    return bulk, one, {"rq": _dist("rq"), "redis-py": _dist("redis")}, conn.close


def setup_dramatiq(args: argparse.Namespace) -> tuple[Callable, Callable, dict, Callable]:
    import dramatiq
    from dramatiq.results import ResultTimeout
    from dramatiq_tasks import broker, noop

    def wait(message: Any, dl: Deadline) -> Any:
        # The Redis result backend blocks in a BRPOPLPUSH, in whole seconds (at least 1);
        # at most 4 s per call: redis-py's default socket timeout is 5 s.
        while True:
            try:
                return message.get_result(block=True, timeout=max(1000, int(dl.left(4)) * 1000))
            except ResultTimeout:
                dl.left()  # TimeoutError once the run's time is up

    def bulk(n: int, dl: Deadline) -> None:
        # group(...).run(): Dramatiq's bulk API (it sends the messages one by one).
        g = dramatiq.group([noop.message(i) for i in range(n)]).run()
        enqueued()
        got = [wait(m, dl) for m in g.children]
        check(got, n, "dramatiq")

    def one(i: int, dl: Deadline) -> Any:
        return wait(noop.send(i), dl)

    return bulk, one, {"dramatiq": _dist("dramatiq")}, broker.close


def setup_huey(args: argparse.Namespace) -> tuple[Callable, Callable, dict, Callable]:
    from huey.exceptions import ResultTimeout
    from huey_tasks import huey, noop

    def wait(result: Any, dl: Deadline) -> Any:
        # notify_result=True: Result.get(blocking=True) blocks in a BLPOP on the task's
        # notification key (whole seconds); at most 4 s per call (redis-py's socket timeout).
        while True:
            try:
                return result.get(blocking=True, timeout=max(1, int(dl.left(4))))
            except ResultTimeout:
                dl.left()  # TimeoutError once the run's time is up

    def bulk(n: int, dl: Deadline) -> None:
        # TaskWrapper.map(): Huey's bulk API (it enqueues the tasks one by one).
        group = noop.map(range(n))
        enqueued()
        got = [wait(r, dl) for r in group]
        check(got, n, "huey")

    def one(i: int, dl: Deadline) -> Any:
        return wait(noop(i), dl)

    return bulk, one, {"huey": _dist("huey")}, huey.storage.pool.disconnect


def setup_arq(args: argparse.Namespace) -> tuple[Callable, Callable, dict, Callable]:
    import asyncio

    from arq import create_pool
    from arq.jobs import ResultNotFound
    from arq_tasks import REDIS

    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(REDIS))

    async def wait(job: Any, dl: Deadline) -> Any:
        # arq has no result notification: Job.result() polls Redis, here every 5 ms (as
        # Celery's interval above); its default would be 0.5 s. Its poll reads the result
        # key, then the queue, outside one transaction: a job that finishes in between reads
        # as "not in queue" (ResultNotFound) though its result is there; ask again.
        while True:
            try:
                return await job.result(timeout=dl.left(), poll_delay=0.005)
            except ResultNotFound:
                dl.left()  # TimeoutError once the run's time is up

    async def bulk_async(n: int, dl: Deadline) -> None:
        # arq has no bulk enqueue: enqueue_job() each (one MULTI/EXEC transaction each).
        jobs = [await pool.enqueue_job("noop", i) for i in range(n)]
        enqueued()
        got = [await wait(job, dl) for job in jobs]
        check(got, n, "arq")

    async def one_async(i: int, dl: Deadline) -> Any:
        return await wait(await pool.enqueue_job("noop", i), dl)

    def close() -> None:
        loop.run_until_complete(pool.aclose())
        loop.close()

    return (lambda n, dl: loop.run_until_complete(bulk_async(n, dl)),
            lambda i, dl: loop.run_until_complete(one_async(i, dl)),
            {"arq": _dist("arq")}, close)


def _dist(name: str) -> str:
    from importlib.metadata import version
    return version(name)


SYSTEMS = {"zq": setup_zq, "celery": setup_celery, "rq": setup_rq, "dramatiq": setup_dramatiq,
           "huey": setup_huey, "arq": setup_arq}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--pings", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--zq", default="tcp://127.0.0.1:5555")
    parser.add_argument("--zq-map", action="store_true", help="zq throughput via Client.map")
    args = parser.parse_args()

    dl = Deadline(args.timeout)
    phase = "setup"
    try:
        bulk, one, versions, close = SYSTEMS[args.system](args)
        try:
            phase = "warm-up (the first round trip also waits for the workers to start)"
            for i in range(args.warmup):
                if one(i, dl) != i:
                    raise RuntimeError("wrong warm-up result")
            phase = f"throughput ({args.n} tasks)"
            start = time.perf_counter()
            bulk(args.n, dl)
            elapsed = time.perf_counter() - start
            phase = f"latency ({args.pings} round trips)"
            clock = time.perf_counter
            lat = []
            for i in range(args.pings):
                t0 = clock()
                value = one(i, dl)
                lat.append(clock() - t0)
                if value != i:
                    raise RuntimeError(f"wrong result {value!r} for {i}")
        finally:
            close()
    except BaseException as e:
        import traceback
        traceback.print_exc()
        print(f"measure.py: {args.system} failed during {phase}: {type(e).__name__}: {e}"
              .splitlines()[0], file=sys.stderr)
        sys.exit(1)
    lat.sort()
    print(json.dumps({
        "system": args.system, "n": args.n, "seconds": elapsed,
        "tasks_per_s": args.n / elapsed, "pings": args.pings,
        "enqueue_s": ENQUEUED[-1] - start if ENQUEUED else None,
        "p50_s": _pct(lat, 50), "p99_s": _pct(lat, 99),
        "versions": {**versions, "python": sys.version.split()[0]},
    }))


def _pct(ordered: list[float], p: float) -> float:
    rank = (len(ordered) - 1) * p / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


if __name__ == "__main__":
    main()
