"""An ETL pipeline as a chain: extract a CSV of orders, transform it (drop malformed rows,
price each order), load it into SQLite. Each step is a task; each result is the first
argument of the next, passed through the master without it decoding anything, and the
whole chain is submitted at once.

    python examples/etl.py [ORDERS.csv] [--db orders.db] [--connect tcp://host:5555]

Without a CSV it writes a small sample next to the database. Without --connect it starts
its own cluster (zq local); with it, the workers must run `--app workflow_tasks` with
examples/ on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # zq itself

import workflow_tasks as t  # noqa: E402
from local_cluster import cluster  # noqa: E402

import zq  # noqa: E402

SAMPLE = [("o1", " alice ", "3", "2.50"), ("o2", "BOB", "1", "10"),
          ("o3", "carol", "two", "4.00"), ("o4", "alice", "2", "1.25")]


def write_sample(path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "customer", "quantity", "unit_price"])
        w.writerows(SAMPLE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="?", help="orders: id,customer,quantity,unit_price")
    parser.add_argument("--db", help="the SQLite file to load (default: a temporary one)")
    parser.add_argument("--connect", help="a running cluster (default: start one)")
    a = parser.parse_args()
    # the sample and the database go to a folder of their own unless given (it is kept:
    # the database is the result)
    folder = None if a.csv and a.db else Path(tempfile.mkdtemp(prefix="zq-etl-"))
    db = Path(a.db).resolve() if a.db else folder / "orders.db"  # type: ignore[operator]
    source = Path(a.csv).resolve() if a.csv else folder / "orders.csv"  # type: ignore[operator]
    if not a.csv:
        write_sample(source)
    with cluster(a.connect) as client:
        flow = zq.chain(t.extract.s(str(source)), t.transform.s(), t.load.s(str(db)))
        loaded = client.submit(flow).result(timeout=120)
    print(json.dumps({**loaded, "db": str(db)}))


if __name__ == "__main__":
    main()
