# Quick start: `make demo` runs taskbot on this machine; `make test` runs the test suite.
# Both install into .venv from the lock files (exact versions, hashes checked); `make lock`
# re-resolves them from the ranges in pyproject.toml, on purpose, as its own commit.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
UV_VERSION = 0.13.9
# `make lock UPGRADE=` only adds what pyproject.toml gained, keeping every other pin
UPGRADE ?= --upgrade
TEST_WORKERS ?= 4

.PHONY: demo test test-container base-images lint bench bench-smoke lock clean

$(BIN)/.installed: requirements-dev.lock pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "need Python 3.11+ with venv (Debian: apt-get install python3-venv)"; exit 1; }
	@# uv (pinned) installs the lock in seconds where pip takes minutes; the hashes are checked the same way
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/taskbot demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The tests mostly wait (on workers, timers, servers), so four run at once even on two cores (pytest-xdist);
# `make test TEST_WORKERS=0` runs them one by one.
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS)

# The image built and run under Docker Compose (a Docker daemon; minutes, so not in `make test`).
# Without Docker Hub, `make base-images` first (docs/deployment.md, "Building without Docker Hub").
test-container: $(BIN)/.installed
	$(BIN)/pytest -m container -s tests/integration/test_container.py

base-images:
	scripts/local-base-images.sh

bench: $(BIN)/.installed
	$(BIN)/python -m bench

bench-smoke: $(BIN)/.installed
	$(BIN)/python -m bench --smoke

# Upgrade every pinned version within pyproject.toml's ranges; run `make test` before committing.
# requirements.lock is what the container installs (no test tools), at the same versions.
lock:
	@$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile -q $(UPGRADE) --generate-hashes --python-version 3.11 --extra test --extra bench \
		pyproject.toml -o requirements-dev.lock
	$(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 --constraint requirements-dev.lock \
		pyproject.toml -o requirements.lock
	@rm -f $(BIN)/.installed

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
