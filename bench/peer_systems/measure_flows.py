"""One measurement of one workflow through one system, for bench/workflows.py.

    python bench/peer_systems/measure_flows.py SYSTEM WORKLOAD --n N [--timeout S]
        [--zq tcp://127.0.0.1:PORT]        (Celery reads $BENCH_REDIS_URL)

SYSTEM is zq or celery, WORKLOAD chord (N members ident(i), then total(list)) or chain
(N steps: inc(0), then inc(previous) N-1 times). With the workers already running: one
untimed warm-up task (it also waits for the workers to come up), then the workflow built,
submitted as a whole and its final result awaited, timed from building it to that result.
The last line of stdout is a JSON object: seconds, tasks, versions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable


def expected(workload: str, n: int) -> int:
    return n * (n - 1) // 2 if workload == "chord" else n


def run_zq(workload: str, n: int, endpoint: str, timeout: float) -> tuple[float, Any, dict]:
    from importlib.metadata import version

    import zq_flow_tasks as t

    import zq
    with zq.Client(endpoint) as client:
        client.submit(t.ident, 0).result(timeout=timeout)  # warm-up: the worker is up
        start = time.perf_counter()
        if workload == "chord":
            flow: Any = zq.chord(zq.group(t.ident.s(i) for i in range(n)), t.total.s())
        else:
            flow = zq.chain(t.inc.s(0), *(t.inc.s() for _ in range(n - 1)))
        got = client.submit(flow).result(timeout=timeout)
        seconds = time.perf_counter() - start
    return seconds, got, {"zq": version("zq") if _has("zq") else "tree"}


def run_celery(workload: str, n: int, endpoint: str, timeout: float
               ) -> tuple[float, Any, dict]:
    from importlib.metadata import version

    import celery_flow_tasks as t
    from celery import chain, chord
    t.ident.delay(0).get(timeout=timeout)  # warm-up: the worker is up
    start = time.perf_counter()
    if workload == "chord":
        res = chord(t.ident.s(i) for i in range(n))(t.total.s())
    else:
        res = chain(t.inc.s(0), *(t.inc.s() for _ in range(n - 1))).apply_async()
    # follow_parents=False: by default get() checks every parent's state at each
    # interval (a GET per header task of a chord, per earlier step of a chain), which
    # made a chord of 2,000 take 136 s instead of 10 s here (quadratic). A member's
    # failure still reaches the callback (ChordError), a step's the next step.
    got = res.get(timeout=timeout, interval=0.005, follow_parents=False)
    seconds = time.perf_counter() - start
    t.app.close()
    return seconds, got, {"celery": version("celery"), "kombu": version("kombu")}


def _has(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version
    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


SYSTEMS: dict[str, Callable[..., tuple[float, Any, dict]]] = {"zq": run_zq,
                                                              "celery": run_celery}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("workload", choices=["chord", "chain"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--zq", default="tcp://127.0.0.1:5555")
    a = parser.parse_args()
    try:
        seconds, got, versions = SYSTEMS[a.system](a.workload, a.n, a.zq, a.timeout)
        if got != expected(a.workload, a.n):
            raise RuntimeError(f"wrong result {got!r}, expected {expected(a.workload, a.n)}")
    except BaseException as e:
        import traceback
        traceback.print_exc()
        print(f"measure.py: {a.system} {a.workload} failed: {type(e).__name__}: {e}"
              .splitlines()[0], file=sys.stderr)
        sys.exit(1)
    # a chord runs n members and its callback; a chain, n steps
    tasks = a.n + 1 if a.workload == "chord" else a.n
    print(json.dumps({"seconds": seconds, "tasks": tasks, "versions": versions}))


if __name__ == "__main__":
    main()
