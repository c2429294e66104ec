# Every target installs what it needs into ./.venv (created on first use).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: venv test lint format benchmark bench docs tutorials ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

## Lint (ruff) and the test suite (pytest).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 -q -rs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## The main job: benchmark Captum's methods and SimpleMasking on the bundled MNIST model.
benchmark: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[benchmark]"
	$(BIN)/captum-soundness benchmark --out results $(ARGS)

## Speed benchmarks of the library's hot paths (ratios against forward/backward floors).
bench: $(STAMP)
	$(BIN)/python bench/bench_masking.py
	$(BIN)/python bench/bench_metrics.py

## Execute every tutorial notebook (outputs are written back in place).
tutorials: $(STAMP)
	$(BIN)/python scripts/run_tutorials.py

## Sphinx docs, warnings as errors.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	$(BIN)/python docs/_scripts/check_api_coverage.py

ci: test tutorials docs

clean:
	rm -rf $(VENV) docs/_build results .pytest_cache .ruff_cache
