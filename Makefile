# Each target installs into .venv first when it is missing or pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first, pinned: pip takes both from this machine's disk.
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/drgnet synth --n 40 --size 512 --style default --seed 0 --out $(DATA)/demo-cohort --preview
	@echo "Synthetic cohort: $(DATA)/demo-cohort (images, lesion masks, grades.csv, preview.png)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/drgnet bench synth --n 500 --size 512

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
