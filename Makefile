# vidstyle: every target sets up what it needs (a .venv) before doing its job.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RECIPES := $(wildcard pipelines/*.toml)

.PHONY: setup demo test lint batch samples figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Render the bundled sample clip with the bundled ink style into renders/.
demo: $(STAMP)
	@mkdir -p renders
	$(BIN)/vidstyle run sample_videos/pan.mp4 --style sample_videos/ink.jpg \
		-o renders/demo.mp4 --overwrite

## Run the test suite (CPU only, a few minutes).
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check vidstyle tests scripts benchmarks
	$(BIN)/mypy vidstyle

## Render every pipelines/*.toml recipe into renders/, skipping up-to-date outputs.
## RAY=local (a Ray instance here), RAY=auto (the cluster of `ray start --head`) or RAY=HOST:PORT
## renders the outputs at once on Ray workers.
batch: $(STAMP)
	$(BIN)/vidstyle batch $(RECIPES) --out-dir renders $(if $(RAY),--ray $(RAY))

## Regenerate the bundled sample media (reproducible: fixed seeds).
samples: $(STAMP)
	$(BIN)/python -m vidstyle.samples sample_videos

## Regenerate the pictures in docs/ used by the README.
figures: $(STAMP)
	$(BIN)/python scripts/make_figures.py

clean:
	rm -rf renders .pytest_cache .mypy_cache .ruff_cache
