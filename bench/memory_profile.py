"""Where a queued task's memory and a restart's seconds go: the profile behind issue 18's
targets (1,000,000 queued tasks in at most 300 MB of master RSS; a restart of a
1,000,000-task SQLite store in at most 3 s), measured in this process on the pure core
and the store, without sockets, so each part has its own number.

- Memory: N no-op submissions go into a MasterCore as the codec hands them over (a
  fresh id str and payload bytes per entry); tracemalloc attributes the bytes per task
  to the line that allocated them.
- Restart: N records saved and committed to a SQLite store, which is closed (folding
  its journal); a fresh store on that file then loads them (`load()`), and a fresh core
  restores them (`recovery.restore`), each timed alone, wall and CPU.

    .venv/bin/python bench/memory_profile.py [--n 1000000] [--parts memory,restart]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import msgpack  # noqa: E402

from zq.core import recovery  # noqa: E402
from zq.core.master_core import MasterCore  # noqa: E402
from zq.core.tasks import OPTIONAL  # noqa: E402
from zq.store.sqlite import SqliteStore  # noqa: E402

ARGS = msgpack.packb([[0], {}])
NAME = "bench.tasks:noop"
BATCH = 1000  # entries per SUBMIT, as zq.Client's map sends them
SHOWN = 8  # allocation sites listed


def fresh_core() -> MasterCore:
    core = MasterCore(master_id="profile")
    core.advance(0.0, time.time())
    return core


def submit_all(core: MasterCore, n: int) -> None:
    prefix = os.urandom(4).hex()
    for k in range(0, n, BATCH):
        # as decoded from the wire: a new str id and a new bytes payload per entry
        entries = [(f"{prefix}{i:09x}", NAME, bytes(bytearray(ARGS)), {})
                   for i in range(k, min(k + BATCH, n))]
        core.on_submit(b"client", entries)
        core.flush()


def memory(n: int) -> None:
    core = fresh_core()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    submit_all(core, n)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    diffs = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in diffs)
    print(f"memory: {n:,} queued no-op tasks, {total / n:.0f} bytes a task in Python "
          f"objects ({total / 2**20:.0f} MiB; RSS adds the allocator's slack)")
    print(f"{'bytes/task':>10} {'objects/task':>12}  allocated at")
    for d in diffs[:SHOWN]:
        frame = d.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"{d.size_diff / n:10.1f} {d.count_diff / n:12.2f}  {where}")
    t = next(iter(core.tasks.values()))
    print(f"a TaskRecord is {sys.getsizeof(t)} bytes ({len(t.__slots__)} slots; its "
          f"{len(OPTIONAL)} optional fields read from the class: {type(t).__name__}); its "
          f"id {sys.getsizeof(t.id)}, its payload {sys.getsizeof(t.payload)}, its seq "
          f"{sys.getsizeof(t.seq)}")


def restart(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "zq.db")
        core = fresh_core()
        submit_all(core, n)
        store = SqliteStore(path)
        records = list(core.tasks.values())
        for k in range(0, n, 10_000):
            store.save(records[k:k + 10_000])
            store.commit()
        del core, records
        store.close()  # folds the journal, as a graceful stop does
        gc.collect()
        size = os.path.getsize(path)

        wall, cpu = time.perf_counter(), time.process_time()
        store = SqliteStore(path)
        loaded = list(store.load())
        load_wall, load_cpu = time.perf_counter() - wall, time.process_time() - cpu

        core = fresh_core()
        wall, cpu = time.perf_counter(), time.process_time()
        restored = recovery.restore(core, loaded)
        restore_wall, restore_cpu = time.perf_counter() - wall, time.process_time() - cpu
        store.close()
    print(f"restart: {restored:,} tasks from a {size / 2**20:.0f} MiB SQLite file")
    print(f"  open + load(): {load_wall:.2f} s ({load_cpu:.2f} s CPU): rows read, "
          "records built, sorted by seq")
    print(f"  restore():     {restore_wall:.2f} s ({restore_cpu:.2f} s CPU): the core's "
          "indexes (tasks, ready queues, counts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="tasks")
    parser.add_argument("--parts", default="memory,restart",
                        help="which profiles: memory, restart, or both")
    parser.add_argument("--quick", action="store_true", help="20,000 tasks (the smoke test)")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.n
    parts = args.parts.split(",")
    if "memory" in parts:
        memory(n)
    if "restart" in parts:
        restart(n)


if __name__ == "__main__":
    main()
