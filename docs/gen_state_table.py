"""Write docs/TASKS.md's state table from zq.core.states.EDGES (`make docs`)."""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zq.core import states  # noqa: E402

TASKS_MD = ROOT / "docs" / "TASKS.md"


def main() -> None:
    doc = TASKS_MD.read_text()
    new = states.with_table(doc)
    if new != doc:
        TASKS_MD.write_text(new)
        print(f"{TASKS_MD.relative_to(ROOT)}: state table updated")


if __name__ == "__main__":
    main()
