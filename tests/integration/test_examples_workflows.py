"""The workflow examples run end to end (issue 17): examples/wordcount.py (map-reduce
with a chord) and examples/etl.py (a chain), each starting its own cluster (zq local:
a master and two workers, real processes) and stopping it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZQ_")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                          capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=240)  # a bound against a hang only
    assert done.returncode == 0, done.stderr
    return done


def test_wordcount_counts_every_file_with_a_chord(tmp_path: Path):
    (tmp_path / "a.txt").write_text("The cat and the dog. The end!")
    (tmp_path / "b.txt").write_text("A dog, a cat; dog days.")
    (tmp_path / "c.txt").write_text("")
    done = example("wordcount.py", "a.txt", "b.txt", "c.txt", "--top", "3", "--json",
                   cwd=tmp_path)
    assert json.loads(done.stdout) == [["dog", 3], ["the", 3], ["cat", 2]]


def test_etl_loads_the_transformed_rows_with_a_chain(tmp_path: Path):
    source = tmp_path / "orders.csv"
    source.write_text("id,customer,quantity,unit_price\n"
                      "x1, dana ,4,0.5\nx2,EVE,1,3\nx3,bad,,1\n")
    db = tmp_path / "out.db"
    done = example("etl.py", str(source), "--db", str(db), cwd=tmp_path)
    assert json.loads(done.stdout) == {"rows": 2, "total": 5.0, "db": str(db)}
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, customer, total FROM orders ORDER BY id").fetchall()
    assert rows == [("x1", "Dana", 2.0), ("x2", "Eve", 3.0)]
