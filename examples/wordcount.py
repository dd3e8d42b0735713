"""Map-reduce with a chord: the most frequent words of some files. One task counts each
file's words (the map), in parallel on the workers; a callback merges the counts (the
reduce). The master holds the callback until every count has succeeded and hands it the
list of counts, which it never decodes.

    python examples/wordcount.py [FILE...] [--top 10] [--connect tcp://host:5555]

Without files it counts the words of the project's docs/*.md. Without --connect it
starts its own cluster (zq local); with it, the workers must run `--app workflow_tasks`
with examples/ on PYTHONPATH, e.g.
`PYTHONPATH=examples zq local --app workflow_tasks --store memory`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # zq itself

import workflow_tasks as t  # noqa: E402
from local_cluster import HERE, cluster  # noqa: E402

import zq  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help="text files (default: docs/*.md)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--connect", help="a running cluster (default: start one)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    a = parser.parse_args()
    files = a.files or sorted(str(p) for p in (HERE.parent / "docs").glob("*.md"))
    paths = [str(Path(f).resolve()) for f in files]  # the workers open them
    with cluster(a.connect) as client:
        flow = zq.chord(zq.group(t.count_words.s(p) for p in paths), t.merge_counts.s(a.top))
        top = client.submit(flow).result(timeout=120)
    if a.json:
        print(json.dumps(top))
        return
    print(f"the {len(top)} most frequent words of {len(paths)} files:")
    for word, n in top:
        print(f"{n:8,}  {word}")


if __name__ == "__main__":
    main()
