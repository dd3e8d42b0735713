"""Tasks of the workflow examples (wordcount.py, etl.py), run by `--app workflow_tasks`
with this folder on PYTHONPATH. Ordinary functions with @zq.task, so `.s()` names a
call of each without running it."""

from __future__ import annotations

import csv
import re
import sqlite3
from collections import Counter

import zq

WORD = re.compile(r"[a-z][a-z']+")


# --- map-reduce: a word count over files, as a chord ----------------------------------------

@zq.task
def count_words(path: str) -> dict[str, int]:
    """Map: the words of one file and how often each occurs."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return dict(Counter(WORD.findall(f.read().lower())))


@zq.task
def merge_counts(counts: list[dict[str, int]], top: int = 10) -> list[tuple[str, int]]:
    """Reduce: the chord's callback, given every file's counts, in order."""
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


# --- ETL: extract, transform, load, as a chain ----------------------------------------------

@zq.task
def extract(path: str) -> list[dict[str, str]]:
    """Read a CSV of orders (id, customer, quantity, unit_price)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@zq.task
def transform(rows: list[dict[str, str]]) -> list[tuple[str, str, float]]:
    """Drop malformed rows, name customers consistently, price each order."""
    out = []
    for r in rows:
        try:
            total = int(r["quantity"]) * float(r["unit_price"])
        except (KeyError, TypeError, ValueError):
            continue  # a malformed row: left out
        out.append((r["id"], r["customer"].strip().title(), round(total, 2)))
    return out


@zq.task
def load(rows: list[tuple[str, str, float]], db_path: str) -> dict[str, float]:
    """Write the orders to SQLite (replacing what was there); the loaded totals."""
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders "
                   "(id TEXT PRIMARY KEY, customer TEXT, total REAL)")
        db.executemany("INSERT OR REPLACE INTO orders VALUES (?, ?, ?)", rows)
    return {"rows": len(rows), "total": round(sum(r[2] for r in rows), 2)}
