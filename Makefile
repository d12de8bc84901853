# qvltrain: `make demo` trains the tiny model on CPU (or GPU); `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch is installed first and on its own so no other package pulls a multi-GB CUDA build onto a CPU
# machine. The default is the CPU build kept on this kind of machine's local disk; on a GPU machine
# the same version resolves to its CUDA build. Override, e.g. `make setup TORCH_SPEC="torch==2.6.0"`.
TORCH_SPEC ?= torch==2.13.0
NUM_RANKS ?= 2
# Seeds the demo's initial weights and data order; `make demo SEED=1 RUNS=runs/demo_seed1`.
SEED ?= 0
RUNS ?= runs/demo
# The demo's model family: `make demo FAMILY=qwen2_5_vl RUNS=runs/demo_qwen2_5_vl` (docs/model-families.md).
FAMILY ?= qwen2_vl
STAMP := $(VENV)/.installed

.PHONY: help setup demo data test parity bench gpu-wheels gpu-check-dry-run lint format clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install qvltrain with its pinned dependencies (idempotent)

data: setup ## Write the demo shards (handwritten digits: caption, grounding, chat, video) into data/digits
	@test -f data/digits/video/validation/validation.index.json || $(PY) -m data_recipes.digits --out data/digits

demo: data ## Train the tiny model through the three stages on 2 CPU ranks (ZeRO-3), then evaluate it
	NUM_RANKS=$(NUM_RANKS) SEED=$(SEED) FAMILY=$(FAMILY) QVL_PYTHON=$(PY) bash launch/demo.sh $(RUNS)

test: setup ## Run the test suite (CPU; GPU tests are deselected)
	$(PY) -m pytest -q --durations=15 tests

# The video-processor oracle imports torchvision, which does not import beside the CPU torch build;
# this separate venv holds torch 2.14.1 + torchvision 0.29.1 (~5.5 GB, about a minute from local wheels).
PARITY_VENV ?= .venv-parity
$(PARITY_VENV)/.installed: pyproject.toml
	@test -x $(PARITY_VENV)/bin/python || python3 -m venv $(PARITY_VENV)
	$(PARITY_VENV)/bin/pip install -q --upgrade "pip>=24"
	$(PARITY_VENV)/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PARITY_VENV)/bin/pip install -q -e ".[dev]"
	@touch $@

parity: $(PARITY_VENV)/.installed ## Oracle parity including the video processor (needs torchvision: own venv)
	$(PARITY_VENV)/bin/python -m pytest -q tests/vision tests/text tests/model/qwen2_5_vl/test_processor_parity.py

bench: setup ## Benchmarks (JSON under bench_results/, tables to paste into docs/benchmarks.md)
	$(PY) -m apps.bench.vision

gpu-wheels: setup ## Wheels the CUDA machine lacks (deepspeed, hydra, webdataset, wandb, decord...) into .gpu-wheels/
	$(PY) launch/gpu_wheels.py --out .gpu-wheels

gpu-check-dry-run: setup ## Every step of launch/gpu_check.sh on the CPU (GPU tests on CPU, tiny benchmark)
	QVL_PYTHON=$(PY) bash launch/gpu_check.sh --dry-run --out gpu_check

lint: setup ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## ruff format in place
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: ## Remove runs, demo data and caches (keeps .venv)
	rm -rf runs data/synthetic data/digits .pytest_cache
