# Two commands set everything up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: train test test-fast lint data smoke bench bench-dropout bench-sweep bench-eval bench-bootstrap bench-tune bench-tune-storage profile mutate bench-precision study-uncertainty study-uncertainty-tiny notebook clean

train: data
	$(BIN)/dropcli train --config configs/default.yaml

test: data
	$(BIN)/python -m pytest

# The edit loop: everything but the end-to-end tests (processes, torchrun, signals, the wheel).
test-fast: data
	$(BIN)/python -m pytest -m "not system"

# Style and the house's layers (pyproject.toml: [tool.ruff], [tool.importlinter]).
lint: $(INSTALLED)
	$(BIN)/ruff check src tests benchmarks mutation
	$(BIN)/ruff format --check src tests benchmarks mutation
	$(BIN)/lint-imports

# A CI-sized run of both commands on the real data.
smoke: data
	$(BIN)/dropcli train --config configs/smoke.yaml
	$(BIN)/dropcli compare scratch builtin --config configs/smoke.yaml

# docs/notebook.ipynb run in full on the real data, saved with its outputs to runs/notebook.ipynb
# (the committed notebook keeps none; the test suite runs it at smoke size).
notebook: data
	mkdir -p runs
	$(BIN)/python -c "import nbclient, nbformat; nb = nbformat.read('docs/notebook.ipynb', as_version=4); \
	nbclient.NotebookClient(nb, timeout=3600, kernel_name='python3', resources={'metadata': {'path': '.'}}).execute(); \
	nbformat.write(nb, 'runs/notebook.ipynb')"
	@echo "wrote runs/notebook.ipynb"

bench: data
	$(BIN)/python benchmarks/training.py
	$(BIN)/python -m benchmarks.precision

# The fused engine in fp32 and bf16 against each precision's roofline, per net size.
bench-precision: data
	$(BIN)/python -m benchmarks.precision

bench-sweep: data
	$(BIN)/python benchmarks/sweep.py

# Search strategies (samplers, pruners, grace) replayed through Optuna on a committed table of learning curves.
bench-tune: data
	$(BIN)/python benchmarks/tune.py --figure docs/figures/tune-anytime.png

# Trials per hour with 1 and 2 workers on one PostgreSQL study; the database's cost per trial against a journal file.
bench-tune-storage: data
	$(BIN)/python benchmarks/tune_storage.py

# evaluate --mc-samples 50 over 13 rotations of the test set, against plain forward passes.
bench-eval: data
	$(BIN)/python benchmarks/evaluation.py

# The bootstrap arithmetic of one study row (1,000 resamples of 10,000 images): float32 in chunks vs float64 at once.
bench-bootstrap: $(INSTALLED)
	$(BIN)/python -m benchmarks.bootstrap

# The uncertainty study, round 2 (docs/uncertainty.md): every run and evaluation of its plan, hours
# of CPU; a rerun skips what is done. The tiny version checks the machinery in minutes, into /tmp.
study-uncertainty: data
	nice $(BIN)/python -m benchmarks.uncertainty_plan docs/studies/uncertainty/plan.yaml

study-uncertainty-tiny: data
	$(BIN)/python -m benchmarks.uncertainty_plan docs/studies/uncertainty/plan-tiny.yaml \
	  --set data.train_limit=3000 --set data.test_limit=500 --set train.epochs=2

bench-dropout: $(INSTALLED)
	$(BIN)/python benchmarks/dropout.py

# make profile ENGINE=fused profiles the fused engine's epoch.
ENGINE ?= autograd
profile: data
	$(BIN)/python -m benchmarks.epoch_profile --engine $(ENGINE)

# Mutation testing (cosmic-ray, the `mutate` extra) of the modules whose bugs give wrong numbers, each
# against its tests (mutation/modules.py); report in mutation-report/. Every mutant of every module
# takes days on two cores: make mutate SAMPLE=10 tests 10 per module, drawn with SEED; MODULES=a.py,b.py;
# RETEST=1 tests again the mutants of mutation-report/'s sessions that were not killed; RESUME=1 goes on
# with a stopped run, testing the drawn mutants not yet tested (docs/testing.md).
SAMPLE ?=
SEED ?= 0
MODULES ?=
RETEST ?=
RESUME ?=
mutate: data
	$(BIN)/python -c "import cosmic_ray, coverage" 2> /dev/null || $(BIN)/python -m pip install --quiet -e '.[test,plot,mutate]'
	nice $(BIN)/python -m mutation.run --seed $(SEED) $(if $(SAMPLE),--sample $(SAMPLE)) $(if $(MODULES),--modules $(MODULES)) $(if $(RETEST),--retest) $(if $(RESUME),--resume)

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
