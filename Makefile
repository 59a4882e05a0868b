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
	# A stale drgnet.egg-info in the checkout would shadow the new entry points (commands added since).
	rm -rf drgnet.egg-info
	$(BIN)/python -m pip install --quiet -e '.[dev,scale]'
	@touch $(STAMP)

demo: $(STAMP)
	# The shipped base model (models/drgnet-base), no training; `drgnet demo --retrain` trains the small demo model.
	$(BIN)/drgnet demo --data-dir $(DATA)
	# Seeds the review app (idempotent: a second run reuses everything), then serves it on http://localhost:8501.
	$(BIN)/drgnet app --data-dir $(DATA) --seed-demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

test: lint
	$(BIN)/python -m pytest -q

BENCH_DEVICE ?= cpu
bench: $(STAMP)
	$(BIN)/drgnet bench synth --set n=500 --set size=512
	# Real photographs: ../shared (DRGNET_SHARED_DIR) and scripts/fetch_real_samples.sh (DRGNET_SAMPLES_DIR).
	$(BIN)/drgnet bench realism --set synthetic_counts=16,48 --set repeats=10
	$(BIN)/drgnet bench speed --set size=512 --set batches=1,8
	$(BIN)/drgnet bench tiles --set model.input_size=512 --set model.lesion_fov_px=1024
	# CPU-sized budget (about 40 minutes on 2 cores); docs/benchmarks.md has the larger GPU run.
	$(BIN)/drgnet bench quality --set n=300 --set image_size=384 --set input_size=224 --set train.epochs=4 \
		--set train.max_steps_per_epoch=25 --set train.batch_size=8 --device $(BENCH_DEVICE)
	$(BIN)/drgnet bench transfer --set n_source=300 --set n_target_pool=100 --set n_target_test=100 \
		--set image_size=320 --set input_size=192 --set source.epochs=5 --set source.max_steps_per_epoch=30 \
		--set adapt.steps=40 --device $(BENCH_DEVICE)
	# Real photographs in training: leave-one-out over the four IDRiD photographs of ../shared (skipped without it).
	$(BIN)/drgnet bench real --set train.epochs=3 --set train.max_steps_per_epoch=30 --device $(BENCH_DEVICE)
	$(BIN)/drgnet bench feedback --device $(BENCH_DEVICE)
	$(BIN)/drgnet bench review
	# Screening with --db with the small demo model (trained here; PostgreSQL too when DRGNET_TEST_POSTGRES_URL is set).
	$(BIN)/drgnet demo --retrain --data-dir $(DATA)
	$(BIN)/drgnet bench screen-db --checkpoint $(DATA)/demo-model/best $(if $(DRGNET_TEST_POSTGRES_URL),--postgres-url $(DRGNET_TEST_POSTGRES_URL))
	# The shipped base model against the small demo model on the real photographs of ../shared (DRGNET_SHARED_DIR).
	$(BIN)/drgnet bench real-model --checkpoint models/drgnet-base --checkpoint $(DATA)/demo-model/best

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
