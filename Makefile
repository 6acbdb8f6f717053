# The study's two commands:  `make study` (set up, run the default profile, write the report)
# and `make test` (set up, run the test suite). Both create .venv/ on first use.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
# torch and torchvision pinned together for reproducibility (torchvision must match its torch);
# `make study TORCH="torch torchvision"` takes the newest releases instead.
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin

.PHONY: setup study test test-fast report clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH) -e ".[test]"
	touch $@

setup: $(BIN)/.installed

study: setup
	$(BIN)/bsnb run $(PROFILE)

report: setup
	$(BIN)/bsnb report $(PROFILE)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# the fast tier, for someone editing a module: everything but the notebooks and sweeps (about a minute on 2 cores)
test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf reports/*/ .pytest_cache
