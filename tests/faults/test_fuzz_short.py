"""A 20-second run of the live fuzzer (bench/fuzz.py): random, mutated, forged, replayed
and oversized messages from both roles against a real master (SQLite store) while a
real client runs tasks through real workers. It passes when the master is alive, its
RSS stays under the bound, and every real task has exactly one result, its own."""

from __future__ import annotations

from tests.faults.runner import run_script

SEED = 20261202  # printed by the run; a failure is reproduced with --seed


def test_twenty_seconds_of_fuzz_break_nothing():
    done = run_script("fuzz.py", "--minutes", str(20 / 60), "--seed", str(SEED), timeout=300)
    print(done.stdout[-8000:], done.stderr[-4000:])
    assert done.returncode == 0, "the fuzzer found a violation (see its output above)"
