#!/usr/bin/env bash
# Run every zq benchmark in sequence at full size; each writes bench/results/<name>.md,
# <name>.png and (here) <name>.txt. Extra arguments go to every script, e.g.
#   bench/run_all.sh --runs 5
# Run it on a machine that is otherwise idle: the numbers are only as quiet as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p bench/results
for script in throughput latency submit_rate scale payload memory security stall failover; do
    echo "=== bench/$script.py $*" >&2
    start=$(date +%s)
    "$PY" "bench/$script.py" "$@" | tee "bench/results/$script.txt"
    echo "=== bench/$script.py took $(( $(date +%s) - start )) s" >&2
done
