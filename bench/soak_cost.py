"""The master's cost over a soak, side by side: CPU% of a core and RSS per interval of
the runs' sample files (bench/soak.py --samples FILE), as a Markdown table, and each
run's summary (soak.cost_summary). Used to publish the dashboard's cost on the master:

    python bench/soak.py --local --minutes 30 --seed S --dashboard --samples with.csv &
    python bench/soak.py --local --minutes 30 --seed S --samples without.csv &
    python bench/soak_cost.py with.csv without.csv [--minutes 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak import cost_summary  # noqa: E402

Row = tuple[float, int, float, int, float, int]


def load(path: Path) -> list[Row]:
    with path.open() as f:
        return [(float(r["time"]), int(r["master_pid"]), float(r["master_cpu_s"]),
                 int(r["master_rss_kb"]), float(r["dashboard_cpu_s"]),
                 int(r["dashboard_rss_kb"])) for r in csv.DictReader(f)]


def per_interval(rows: list[Row], seconds: float) -> list[tuple[float, float]]:
    """(CPU% of a core, median RSS MB) of the master over each interval from the start
    (an interval that spans two master processes counts the later one only)."""
    out, t0 = [], rows[0][0]
    k = 0
    while True:
        part = [r for r in rows if t0 + k * seconds <= r[0] < t0 + (k + 1) * seconds]
        if len(part) < 2:
            return out
        same = [r for r in part if r[1] == part[-1][1]]
        cpu = (100.0 * (same[-1][2] - same[0][2]) / (same[-1][0] - same[0][0])
               if len(same) > 1 and same[-1][0] > same[0][0] else float("nan"))
        out.append((cpu, statistics.median(r[3] for r in part) / 1024))
        k += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--minutes", type=float, default=5.0, help="the table's interval")
    a = parser.parse_args()
    runs = {f.stem: load(f) for f in a.files}
    for name, rows in runs.items():
        print(f"{name}: {json.dumps(cost_summary(rows))}")
    columns = {name: per_interval(rows, a.minutes * 60) for name, rows in runs.items()}
    n = max(len(c) for c in columns.values())
    print()
    print("| minutes | " + " | ".join(f"{name}: master CPU % · RSS MB" for name in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for k in range(n):
        cells = [f"{c[k][0]:.1f} · {c[k][1]:.1f}" if k < len(c) else "" for c in
                 columns.values()]
        print(f"| {k * a.minutes:g}-{(k + 1) * a.minutes:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
