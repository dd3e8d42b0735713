# The two commands a newcomer needs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) examples/demo.py

# -rs: every skipped test prints why (the namespace and full-disk tests need root).
test: setup
	$(PY) -m pytest -q -p no:cacheprovider -rs

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -rs tests/unit tests/component tests/property tests/store

bench: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
