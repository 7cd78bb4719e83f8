# The one entry point: every target bootstraps .venv from nothing (Python 3.11+ only).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test test-slow reliability demo bench screenshots docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Byte-compile first: the tests start many durable processes, and where
# PYTHONDONTWRITEBYTECODE is set each of them would compile every module again.
test: lint
	$(BIN)/python -m compileall -q durable tui
	$(BIN)/pytest

# Long crash campaigns (more seeds, bigger flows); not part of `make test`.
test-slow: $(STAMP)
	$(BIN)/pytest -m slow

# The reliability campaign, both tiers (RELIABILITY.md 5.9): the PR tier also runs in
# `make test`; the nightly tier (more kills, more crash images, a 10 minute soak) only here.
# REL_SEED=N replays a randomized test; REL_ARTIFACTS=DIR keeps what a failure leaves.
reliability: $(STAMP)
	$(BIN)/python -m compileall -q durable tui
	$(BIN)/pytest -m "reliability or nightly" tests/reliability

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# About 7 minutes on 2 cores (bench/README.md says what each script measures).
bench: $(STAMP)
	$(BIN)/python bench/checkpoint.py
	$(BIN)/python bench/mapping.py
	$(BIN)/python bench/group_commit.py
	$(BIN)/python bench/executors.py
	$(BIN)/python bench/scheduling.py

# The README's pictures of the terminal UI (SVG), from a seeded database on a fixed clock.
screenshots: $(STAMP)
	$(BIN)/python -m tui.screenshots docs/img

# docs/cli.md, generated from the CLI itself (tests/cli/test_reference.py fails when stale).
docs: $(STAMP)
	$(BIN)/python -m durable.cli.reference docs/cli.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
