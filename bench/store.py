"""Store benchmark: save+commit rate per batch size and sync level, and the time and
memory to load a large store. Everything is written to a temporary directory; the
PostgreSQL store (when a server can be started here: zq.testing.pgserver, with the
server's defaults, an fsync per commit) to a throwaway server in one.

    .venv/bin/python bench/store.py [--n 1000000] [--seconds 1.0] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from typing import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zq.core.tasks import TaskRecord  # noqa: E402
from zq.store import Store, open_store  # noqa: E402
from zq.store.memory import MemoryStore  # noqa: E402
from zq.store.sqlite import SqliteStore  # noqa: E402
from zq.testing.pgserver import PgServer, PgUnavailable  # noqa: E402

PAYLOAD = bytes(range(64))  # a typical small msgpack [args, kwargs]
BATCHES = (1, 100, 1000)


CLIENT = os.urandom(8).hex()
IDS = {
    "client": lambda seq: CLIENT + str(seq),  # as zq.Client makes them: prefix + counter
    "uuid": lambda seq: uuid.uuid4().hex,  # random: the worst case for the id index
}


def records(start: int, count: int, ids: str = "client") -> Iterator[TaskRecord]:
    """Queued tasks; one in ten carries options (so its `extra` column is not NULL)."""
    now = time.time()
    make_id = IDS[ids]
    for seq in range(start, start + count):
        options = seq % 10 == 0
        yield TaskRecord(make_id(seq), "app.tasks:add", PAYLOAD, seq=seq, created=now,
                         updated=now, retries=3 if options else 0,
                         timeout=30.0 if options else None)


def save_rate(store: Store, batch: int, seconds: float, ids: str) -> tuple[float, float]:
    """(records/s spent in save()+commit(), one commit per batch, building the records
    not counted; records/s spent folding them afterwards in compact(), the SQLite
    store's deferred work; the WAL checkpoint runs in the store's own thread)."""
    done, spent = 0, 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        rows = list(records(done, batch, ids))
        start = time.perf_counter()
        store.save(rows)
        store.commit()
        spent += time.perf_counter() - start
        done += batch
    start = time.perf_counter()
    for _ in range(done + 1):  # bounded: each call folds at least one record
        if not store.compact(10_000):
            break
    folded = time.perf_counter() - start
    return done / spent, done / folded


def rate_table(tmp: str, seconds: float, ids: str, pg: PgServer | None) -> None:
    makers: dict[str, Callable[[str], Store]] = {
        "memory": lambda p: MemoryStore(),
        "sqlite normal": lambda p: SqliteStore(p, sync="normal", fold_after=10**9),
        "sqlite full": lambda p: SqliteStore(p, sync="full", fold_after=10**9),
    }
    if pg is not None:
        from zq.store.postgres import PostgresStore
        makers["postgres"] = lambda p: PostgresStore(pg.create_database(fresh_name()),
                                                     fold_after=10**9)
    print(f"save+commit rate, then fold rate, records/s ({seconds:g} s of commits per "
          f"cell, fresh store each, {ids} ids; the fold is the durable stores' deferred "
          "work, done when the master is quiet)")
    names = [f"{name} {what}" for name in makers for what in ("commit", "fold")
             if not (name == "memory" and what == "fold")]
    print(f"{'batch':>6}" + "".join(f"{name:>22}" for name in names))
    for batch in BATCHES:
        cells = []
        for i, (name, make) in enumerate(makers.items()):
            store = make(os.path.join(tmp, f"rate-{batch}-{i}.db"))
            try:
                commit, fold = save_rate(store, batch, seconds, ids)
            finally:
                store.close()
            cells += [commit] if name == "memory" else [commit, fold]
        print(f"{batch:>6}" + "".join(f"{c:>22,.0f}" for c in cells))


def fresh_name() -> str:
    return "bench_" + uuid.uuid4().hex[:12]


def fill(path: str, n: int, ids: str) -> float:
    """Commit n records in batches of 10,000 and close (which folds the journal)."""
    store = open_store(path)
    start = time.perf_counter()
    try:
        for first in range(0, n, 10_000):
            store.save(records(first, min(10_000, n - first), ids))
            store.commit()
    finally:
        store.close()
    return time.perf_counter() - start


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, in MB."""
    fields: dict[str, str] = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def load_only(path: str) -> None:
    """Run in a fresh process so that the fill does not pollute the RSS figures."""
    before, _ = rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    store = open_store(path)
    loaded = list(store.load())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    now, peak = rss_mb()
    per_record = (now - before) * 2**20 / max(len(loaded), 1)
    print(f"load {len(loaded):,} records: {elapsed:.2f} s ({cpu:.2f} s CPU); RSS {now:,.0f} MB "
          f"(+{now - before:,.0f} MB, {per_record:,.0f} B/record), peak {peak:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="records to load")
    parser.add_argument("--seconds", type=float, default=1.0, help="per rate cell")
    parser.add_argument("--ids", choices=sorted(IDS), default="client", help="task id style")
    parser.add_argument("--stores", default="sqlite,postgres",
                        help="the durable stores to fill and load (postgres where a server "
                             "can start)")
    parser.add_argument("--load-only", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_only:
        return load_only(args.load_only)
    stores = args.stores.split(",")
    with tempfile.TemporaryDirectory(prefix="zq-bench-store-") as tmp, ExitStack() as stack:
        pg = None
        if "postgres" in stores:
            try:
                pg = stack.enter_context(PgServer.start(fast=False))
            except PgUnavailable as e:
                print(f"PostgreSQL store skipped: {e}", file=sys.stderr)
        rate_table(tmp, args.seconds, args.ids, pg)
        if "sqlite" in stores:
            path = os.path.join(tmp, "load.db")
            took = fill(path, args.n, args.ids)
            size = os.path.getsize(path) / 2**20
            print(f"\nsqlite: fill {args.n:,} records in batches of 10,000: {took:.1f} s "
                  f"({args.n / took:,.0f}/s), file {size:,.0f} MB, payload {len(PAYLOAD)} B")
            subprocess.run([sys.executable, __file__, "--load-only", path], check=True)
        if pg is not None:
            url = pg.create_database(fresh_name())
            took = fill(url, args.n, args.ids)
            print(f"\npostgres: fill {args.n:,} records in batches of 10,000 (and fold them "
                  f"on close): {took:.1f} s ({args.n / took:,.0f}/s), database "
                  f"{database_mb(url):,.0f} MB, payload {len(PAYLOAD)} B")
            subprocess.run([sys.executable, __file__, "--load-only", url], check=True)


def database_mb(url: str) -> float:
    import psycopg
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20


if __name__ == "__main__":
    main()
