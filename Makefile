# Two commands set everything up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: train test test-fast lint data smoke bench bench-dropout bench-sweep bench-eval bench-tune bench-tune-storage profile clean

train: data
	$(BIN)/dropcli train --config configs/default.yaml

test: data
	$(BIN)/python -m pytest

# The edit loop: everything but the end-to-end tests (processes, torchrun, signals, the wheel).
test-fast: data
	$(BIN)/python -m pytest -m "not system"

# Style and the house's layers (pyproject.toml: [tool.ruff], [tool.importlinter]).
lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

# A CI-sized run of both commands on the real data.
smoke: data
	$(BIN)/dropcli train --config configs/smoke.yaml
	$(BIN)/dropcli compare scratch builtin --config configs/smoke.yaml

bench: data
	$(BIN)/python benchmarks/training.py

bench-sweep: data
	$(BIN)/python benchmarks/sweep.py

# Epochs that tune (TPE + ASHA pruning) and random search without pruning need to reach one validation accuracy.
bench-tune: data
	$(BIN)/python benchmarks/tune.py

# Trials per hour with 1 and 2 workers on one PostgreSQL study; the database's cost per trial against a journal file.
bench-tune-storage: data
	$(BIN)/python benchmarks/tune_storage.py

# evaluate --mc-samples 50 over 13 rotations of the test set, against plain forward passes.
bench-eval: data
	$(BIN)/python benchmarks/evaluation.py

bench-dropout: $(INSTALLED)
	$(BIN)/python benchmarks/dropout.py

# make profile ENGINE=fused profiles the fused engine's epoch.
ENGINE ?= autograd
profile: data
	$(BIN)/python -m benchmarks.epoch_profile --engine $(ENGINE)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $@

# Fashion-MNIST: use a copy already here; else, as root on Debian/Ubuntu, the
# dataset-fashion-mnist package; else download it (needs internet).
data: $(INSTALLED)
	@if ! $(BIN)/dropcli data info > /dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    echo "Installing Debian's dataset-fashion-mnist package"; \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist > /dev/null; \
	  fi; \
	  $(BIN)/dropcli data fetch; \
	fi

clean:
	rm -rf $(VENV) runs bench.json
