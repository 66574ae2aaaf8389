# Quick start: `make demo` runs taskbot on this machine; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint bench bench-smoke clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "need Python 3.11+ with venv (Debian: apt-get install python3-venv)"; exit 1; }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/taskbot demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python -m bench

bench-smoke: $(BIN)/.installed
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
