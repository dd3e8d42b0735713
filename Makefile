# The two commands a newcomer needs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo lint test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,web]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) examples/demo.py

# ruff (lint and import order) and mypy (strict on zq/core); settings in pyproject.toml.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

# Lint first, then the suite. The suite runs even when lint fails (a style slip must not
# hide a test result), and `make test` fails if either did.
# -rs: every skipped test prints why (the namespace and full-disk tests need root).
# -n 2: two test processes (pytest-xdist); most tests wait on real masters and workers,
# so two at a time halve the suite's time on 2 cores. --durations: the slowest, to watch
# the 15-minute budget.
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -rs -n 2 --dist worksteal
test: setup
	@lint=0; $(MAKE) --no-print-directory lint || lint=$$?; \
	$(PYTEST) --durations=15 || exit $$?; \
	if [ $$lint -ne 0 ]; then echo "make test: the suite passed but lint failed (see above)" >&2; exit $$lint; fi

test-fast: setup
	$(PYTEST) tests/unit tests/component tests/property tests/store

bench: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

.PHONY: docs
# docs/TASKS.md's state table, from zq.core.states (tests/unit/test_state_table.py checks it).
docs: setup
	$(PY) docs/gen_state_table.py
