"""Small helpers shared by the bench scripts: repeat-and-take-the-median, percentiles, a
plain text table, an optional matplotlib chart and a progress bar on stderr.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Sequence


def median_of(runs: int, fn: Callable[[], Any], progress: Progress | None = None) -> Any:
    """The median of `runs` calls of fn(); a tuple result gives a tuple of medians."""
    results = []
    for _ in range(runs):
        results.append(fn())
        if progress is not None:
            progress.step()
    if isinstance(results[0], (tuple, list)):
        return tuple(statistics.median(column) for column in zip(*results))
    return statistics.median(results)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), interpolating linearly between ranks as numpy does."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def percentiles(values: Sequence[float], ps: Sequence[float] = (50, 99)) -> tuple[float, ...]:
    ordered = sorted(values)
    return tuple(percentile(ordered, p) for p in ps)


def fmt(value: Any) -> str:
    """Numbers the way a table shows them: thousands separated, few digits after the point.
    None is a blank cell."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def share(part: float, whole: float) -> str:
    """part/whole as a percentage, or "n/a" when whole is zero: a --quick run can measure
    0 CPU ticks (10 ms each) for a whole case."""
    return f"{part / whole:.0%}" if whole else "n/a"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], file: Any = None) -> None:
    """A plain text table: text columns aligned left, numbers right (None: a blank cell)."""
    cells = [[fmt(v) for v in row] for row in rows]
    numeric = [all(row[i] is None or isinstance(row[i], (int, float))
                   and not isinstance(row[i], bool) for row in rows)
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = file or sys.stdout
    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print(line(row), file=out)


def save_chart(path: str, series: Mapping[str, Any], *, title: str = "", xlabel: str = "",
               ylabel: str = "", kind: str = "line", logx: bool = False,
               logy: bool = False) -> str | None:
    """Write a PNG chart; None (and a note on stderr) when matplotlib is not installed.

    kind "line": series maps a label to (xs, ys). kind "bar": series maps a label to a value.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: matplotlib is not installed; {path} not written "
              "(pip install matplotlib)", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        if kind == "bar":
            labels = list(series)
            bars = ax.bar(labels, [series[k] for k in labels])
            ax.bar_label(bars, labels=[fmt(series[k]) for k in labels], fontsize=8)
            ax.tick_params(axis="x", labelrotation=20)
        elif kind == "line":
            for label, (xs, ys) in series.items():
                ax.plot(xs, ys, marker="o", label=label)
            if len(series) > 1:
                ax.legend()
        else:
            raise ValueError(f"unknown chart kind {kind!r}")
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


class Progress:
    """A text progress bar on stderr, shown only once a run has taken `after` seconds.

        with Progress(total=12, label="relay") as bar:
            for ...: bar.step()
    """

    def __init__(self, total: int, label: str = "", after: float = 2.0, width: int = 30):
        self.total, self.label, self.after, self.width = max(total, 1), label, after, width
        self.done = 0
        self.start = time.monotonic()
        self.shown = False
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def step(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        now = time.monotonic()
        if now - self.start < self.after:
            return
        if not self.tty and now - self.last < 5 and self.done < self.total:
            return  # in a log file, a line every few seconds is plenty
        self.last = now
        self.shown = True
        filled = self.width * self.done // self.total
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} " \
              f"{self.label} {elapsed:.0f}s, ~{eta:.0f}s left"
        sys.stderr.write(("\r" + bar) if self.tty else bar + "\n")
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
