# Everything the project needs is installed by `make install` (run by the
# other targets): a virtual environment in .venv holding exactly the versions
# in requirements.lock (every package pinned, with hashes), the package itself
# on top, including the Temporal CLI and the time-skipping test server.
# `make lock` re-resolves the lock after pyproject.toml changes (docs/operating.md).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
LOCKED := $(VENV)/.locked
STAMP  := $(VENV)/.installed
# pip-compile's options; the lock names no index or local path, so it is the same on every machine.
PIP_COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--all-extras --all-build-deps --no-emit-index-url --no-emit-find-links --no-emit-trusted-host

.PHONY: install lock demo test lint format worker histories soak bench bench-docs clean

# A new lock gets a new environment: nothing that an older lock installed stays behind.
$(LOCKED): $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	touch $@

# The package itself, offline: every dependency pyproject.toml names must already be
# installed from the lock, so a dependency added without `make lock` fails here.
$(STAMP): $(LOCKED) pyproject.toml
	$(BIN)/python -m pip install --quiet --no-index --no-build-isolation -e '.[dev,bench]' \
		|| { echo "make: $(LOCK) lacks what pyproject.toml asks for: run make lock" >&2; exit 1; }
	touch $@

install: $(STAMP)  ## .venv with exactly the versions in requirements.lock

# Pins already in the lock are kept unless pyproject.toml rules them out or LOCK_ARGS
# upgrades them; the file is replaced only if the resolution changed.
lock: $(LOCKED)  ## re-resolve requirements.lock from pyproject.toml, then install it: make lock [LOCK_ARGS=--upgrade-package=ruff]
	cp $(LOCK) $(VENV)/lock.new
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_COMPILE) $(LOCK_ARGS) --output-file $(VENV)/lock.new pyproject.toml
	cmp -s $(VENV)/lock.new $(LOCK) && rm $(VENV)/lock.new || mv $(VENV)/lock.new $(LOCK)
	$(MAKE) install

demo: install  ## run the four transfers on the embedded dev server and a fresh SQLite ledger
	$(BIN)/python starter.py demo

test: install  ## the whole test suite, offline
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install  ## ruff (lint + format check), mypy --strict, and the import layering (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

soak: install  ## the bank soak test: make soak SOAK_ARGS="--transfers 2000 --seed 7 --ledger-url ..."
	$(BIN)/python -m tests.soak.bank $(SOAK_ARGS)

bench: install  ## the benchmark (docs/performance.md): make bench BENCH_ARGS="--transfers 10000 --only transfer"
	$(BIN)/python -m bench --json bench-report.json $(BENCH_ARGS)

bench-docs: install  ## docs/performance.md's figures, from the bench-report.json of the last `make bench`
	$(BIN)/python -m bench.report bench-report.json --page docs/performance.md

histories: install  ## re-record tests/histories/*.json on a fresh dev server (docs/changing-workflows.md)
	$(BIN)/python -m tests.histories.record

worker: install  ## a worker with the embedded dev server
	$(BIN)/python worker.py --dev

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache *.egg-info
