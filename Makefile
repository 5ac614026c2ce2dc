# `make help` lists the targets. Every target creates or reuses the virtual environment .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SPACE ?= search_spaces/cifar10_seed_cnn.yaml
TRIALS ?=
TIMEOUT ?=
DATA ?=
STORAGE ?=
TRACKING_URI ?=
STUDY ?=
SEED ?=
WORKERS ?= 2
# TensorFlow threads per worker [default: the machine's cores split evenly among the workers].
THREADS ?=
PORT ?=
DASHBOARD_PORT ?=
TOP_K ?=
FORMAT ?=
CONFIG ?=
SEEDS ?=
EPOCHS ?=
FULL ?=
PYTEST_ARGS ?=
BUDGET ?= 1200
# make bench-load: the worker counts, one arm each, and each worker's minutes (its --timeout).
LOAD_WORKERS ?= 1,2,8
LOAD_MINUTES ?= 3
CIFAR_ARCHIVE := ../shared/data/cifar10-jpeg.tar.gz
PEERS_DATA := $(if $(wildcard $(CIFAR_ARCHIVE)),$(CIFAR_ARCHIVE),cifar10)

common_opts = $(if $(STORAGE),--storage '$(STORAGE)') $(if $(TRACKING_URI),--tracking-uri '$(TRACKING_URI)')
run_opts = $(if $(TRIALS),--trials $(TRIALS)) $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(DATA),--data '$(DATA)') \
	$(if $(STUDY),--study '$(STUDY)') $(common_opts)

.PHONY: help tune workers test test-fast lint bench bench-peers bench-variants bench-speed bench-rewrite bench-overhead bench-precision bench-gpu bench-load ui dashboard export report train compare prove venv
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: SPACE TRIALS TIMEOUT DATA STORAGE TRACKING_URI STUDY SEED WORKERS THREADS PORT DASHBOARD_PORT TOP_K FORMAT CONFIG SEEDS EPOCHS FULL BUDGET LOAD_WORKERS LOAD_MINUTES"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tune needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,bench]'
	touch $(STAMP)

venv: $(STAMP) ## create or update the virtual environment only

tune: $(STAMP) ## run (or resume) the study in SPACE [TRIALS= TIMEOUT= DATA= STORAGE= STUDY= SEED=]
	$(BIN)/tune run '$(SPACE)' $(run_opts) $(if $(SEED),--seed $(SEED))

workers: $(STAMP) ## run WORKERS processes of the same study in parallel (seeds SEED+0, SEED+1, ...), each with its share of the cores [THREADS=] and its own GPU when there are enough
	@mkdir -p mlruns; seed=$${SEED:-0}; for i in $$(seq 0 $$(($(WORKERS) - 1))); do \
	  ( env=$$($(BIN)/python -m tune.runtime.devices $$i $(WORKERS) $(THREADS)) && eval "$$env" && echo "$$env" && \
	    exec $(BIN)/tune run '$(SPACE)' $(run_opts) --seed $$((seed + i)) ) > mlruns/worker-$$i.log 2>&1 & \
	done; echo "$(WORKERS) workers started, logs (each begins with its threads and GPU) in mlruns/worker-*.log"; wait

# The tests run in TEST_WORKERS pytest-xdist processes (0: in this one), a test file to each, with
# their temporary files (studies' SQLite and journal writes) on a RAM disk where the machine has one.
test: $(STAMP) ## the test suite (synthetic data, real runs, the benchmarks on tiny budgets) [TEST_WORKERS=2]
	TMPDIR=$$(test -w /dev/shm && echo /dev/shm || echo "$${TMPDIR:-/tmp}") \
	  $(BIN)/python -m pytest -m "not slow" -n $(or $(TEST_WORKERS),2) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit tests only, under a minute: the edit-test loop [TEST_WORKERS=2]
	TMPDIR=$$(test -w /dev/shm && echo /dev/shm || echo "$${TMPDIR:-/tmp}") \
	  $(BIN)/python -m pytest -m "not slow and not integration" -n $(or $(TEST_WORKERS),2) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (style, imports, bugs) and mypy (types) over the package, benchmarks and tests
	$(BIN)/ruff check tune benchmarks tests
	$(BIN)/mypy

bench: $(STAMP) ## real-data checks and benchmarks; results in mlruns/bench/results.json
	$(BIN)/python -m pytest -m slow -s $(PYTEST_ARGS)

bench-peers: $(STAMP) ## race tune, KerasTuner Hyperband, Optuna TPE + median and random search, BUDGET s each [DATA=; SEEDS=1,2,3: a race per sampler seed and a summary]; results in mlruns/bench/peers/
	$(BIN)/python -m benchmarks.peers race --budget $(BUDGET) $(if $(SEEDS),--seeds $(SEEDS)) --data '$(or $(DATA),$(PEERS_DATA))'

bench-variants: $(STAMP) ## tune plain vs regime-aware sampling vs early regime pruning, SEEDS (default 1,2,3) x BUDGET s, on the race's task, timed to its Hyperband best [DATA=]; mlruns/bench/variants/
	$(BIN)/python -m benchmarks.variants --budget $(BUDGET) $(if $(SEEDS),--seeds $(SEEDS)) --data '$(or $(DATA),$(PEERS_DATA))'

bench-speed: $(STAMP) ## seed CNN images/s: the seed scripts' way vs tune's trial path, augmentation off/on, vs the matmul peak [DATA=]; mlruns/bench/speed/
	$(BIN)/python -m benchmarks.speed run --data '$(or $(DATA),$(PEERS_DATA))' --epochs 6

bench-rewrite: $(STAMP) ## seed CNN images/s through the rewrite path vs the built-in builder it replaced, side by side [DATA=]; mlruns/bench/rewrite_speed/ (docs/results/cpu_speed/rewrite)
	$(BIN)/python -m benchmarks.rewrite_speed --data '$(or $(DATA),$(PEERS_DATA))'

bench-overhead: $(STAMP) ## share of a study's wall time outside fit; 1 worker x 2 threads vs 2 x 1 [DATA=]; mlruns/bench/overhead/
	$(BIN)/python -m benchmarks.overhead --data '$(or $(DATA),$(PEERS_DATA))'

bench-precision: $(STAMP) ## the same study in float32 and precision auto: accuracy and regime trial for trial [DATA=]; mlruns/bench/precision/
	$(BIN)/python -m benchmarks.precision --data '$(or $(DATA),$(PEERS_DATA))'

bench-gpu: $(STAMP) ## on a GPU machine: a real trial uses the GPU, seed CNN images/s in float32 and auto at batch 64 and 256; mlruns/bench/gpu/
	$(BIN)/python -m benchmarks.gpu

bench-load: $(STAMP) ## load test: LOAD_WORKERS (1,2,8) tune run workers on one study, PostgreSQL on 127.0.0.1 and one MLflow server, LOAD_MINUTES (3) each: every trial stored and tracked once, clean logs, trials/min; mlruns/bench/load/
	$(BIN)/python -m benchmarks.load --workers '$(LOAD_WORKERS)' --minutes $(LOAD_MINUTES)

train: $(STAMP) ## retrain CONFIG (an export) on the whole training set, test once, register [SEEDS= EPOCHS= DATA= FULL=1]
	$(BIN)/tune train '$(or $(CONFIG),mlruns/exports/$(notdir $(basename $(SPACE)))-best.yaml)' $(if $(SEEDS),--seeds $(SEEDS)) \
	  $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(FULL),--full) $(if $(DATA),--data '$(DATA)') $(if $(TRACKING_URI),--tracking-uri '$(TRACKING_URI)')

compare: $(STAMP) ## seed 000's model vs the best config of STUDY (or SPACE's study), both retrained and tested [SEEDS= EPOCHS= DATA=]
	$(BIN)/tune compare '$(or $(STUDY),$(SPACE))' $(if $(SEEDS),--seeds $(SEEDS)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	  $(if $(DATA),--data '$(DATA)') $(common_opts)

prove: $(STAMP) ## the study in SPACE within its budget, then seed 000's model vs its best config over SEEDS (3) seeds; rerun to resume [TRIALS= TIMEOUT= EPOCHS= DATA= STUDY=]
	$(BIN)/tune prove '$(SPACE)' $(run_opts) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(EPOCHS),--epochs $(EPOCHS))

ui: $(STAMP) ## the MLflow UI on 127.0.0.1 [PORT=]; prints each study's runs page
	$(BIN)/tune ui $(if $(PORT),--port $(PORT)) $(if $(TRACKING_URI),--tracking-uri '$(TRACKING_URI)')

dashboard: $(STAMP) ## optuna-dashboard on the study storage, on 127.0.0.1 [DASHBOARD_PORT= STORAGE=]
	$(BIN)/tune dashboard $(if $(DASHBOARD_PORT),--port $(DASHBOARD_PORT)) $(if $(STORAGE),--storage '$(STORAGE)')

export: $(STAMP) ## the best trial (or TOP_K best) of STUDY (or SPACE's study) as fixed configs [FORMAT=yaml|json]
	$(BIN)/tune export '$(or $(STUDY),$(SPACE))' $(if $(TOP_K),--top-k $(TOP_K)) $(if $(FORMAT),--format $(FORMAT)) $(common_opts)

report: $(STAMP) ## diagnose every trial of STUDY (or SPACE's study): regimes, effects, plots
	$(BIN)/tune report '$(or $(STUDY),$(SPACE))' $(common_opts)
