# Image Tagger — the two commands of the quick start, and a few helpers.
#   make demo   set up .venv, run the main job on the sample images, print where results are
#   make test   set up .venv, run the whole test suite (says which test classes it skipped)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.itagger-installed
export ITAGGER_DEMO_HOME ?= $(CURDIR)/.itagger-demo

.PHONY: setup demo test test-fast lint bench clean-demo lock

$(STAMP): pyproject.toml VERSION constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	ITAGGER_HOME=$(ITAGGER_DEMO_HOME) ITAGGER_DATABASE_URL= ITAGGER_STORE= \
	  $(BIN)/itagger batch demo

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not notebooks and not browser and not hub and not stack and not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check itagger_lib tests benchmarks
	$(BIN)/mypy itagger_lib

bench: setup
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/science.py

clean-demo:
	rm -rf $(ITAGGER_DEMO_HOME)

# Re-resolve constraints.txt from pyproject.toml for the images' Python (Debian bookworm: 3.11.2).
lock: setup
	$(BIN)/python -m pip install -q uv
	{ sed -n '/^#/p' constraints.txt; $(BIN)/uv pip compile pyproject.toml --extra test --extra hub \
	  --extra dask --python-version 3.11.2 --no-header --no-annotate -q; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
