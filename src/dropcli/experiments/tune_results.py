"""What a tune study found: its trials as plain rows, the importance of each key, best.yaml,
and the best settings trained on the whole training set with several seeds (--final-seeds).

Only validation accuracy chooses; the test set is scored once, by the final runs.
"""

import contextlib
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli import files
from dropcli.config import Config, replace
from dropcli.experiments import Cell, Trial, spec_of, trials
from dropcli.experiments.tune import BEST_CONFIG, Search, best_config_text, config_of
from dropcli.experiments.tune_pruning import RungAgreement, rung_agreement
from dropcli.experiments.tune_search import interrupted, trained_epochs
from dropcli.parallel.workers import Workers
from dropcli.runs.listeners import Listener

# Optuna's trial states, as tables and best.yaml name them.
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
FINAL_DIR = "final"
# Below this many complete trials the importance of each key is noise (a few trials split by a
# fitted model): it is withheld, and tune says so.
MIN_TRIALS_FOR_IMPORTANCE = 8


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, pruned, failed, interrupted (continued by a later trial), running, waiting
    value: float | None  # the final validation accuracy; a pruned trial's last reported one
    epochs: int | None  # epochs its run trained
    values: dict[str, Any]  # Optuna's values of the space's keys (a list value as its label)
    run: str | None  # its run directory, under the study directory


@dataclass(frozen=True)
class Found:
    rows: list[TrialRow]  # by trial number
    best: TrialRow | None  # the complete trial with the highest validation accuracy
    best_config: Config | None
    counts: dict[str, int]  # state -> trials
    importances: dict[str, float] | None  # key -> share of the variation explained; None with too few trials
    rungs: list[RungAgreement] = dataclasses.field(default_factory=list)  # how well each rung predicted the final value
    epochs_trained: int = 0  # the study's compute: every trial's epochs, a continued run's counted once


def found(study, rung_epochs: Sequence[int] = ()) -> Found:
    rows = [_row(trial) for trial in study.get_trials(deepcopy=False)]
    complete = [row for row in rows if row.state == "complete"]
    best = max(complete, key=lambda row: row.value, default=None)
    best_trial = study.trials[best.number] if best else None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    rungs = rung_agreement([t.intermediate_values for t in done], [t.value for t in done], list(rung_epochs))
    return Found(
        rows,
        best,
        config_of(best_trial.user_attrs) if best_trial else None,
        counts,
        _importances(study, complete),
        rungs,
        sum(trained_epochs(t) for t in trials),
    )


def _row(trial) -> TrialRow:
    state = "interrupted" if interrupted(trial) else STATES.get(trial.state.name, trial.state.name.lower())
    value = trial.value if trial.state.name == "COMPLETE" else trial.intermediate_values.get(trial.last_step)
    return TrialRow(trial.number, state, value, trial.user_attrs.get("epochs"), dict(trial.params), trial.user_attrs.get("run"))


def _importances(study, complete: list[TrialRow]) -> dict[str, float] | None:
    """Optuna's importance of each key for validation accuracy (PED-ANOVA); None before there are
    MIN_TRIALS_FOR_IMPORTANCE complete trials."""
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    from optuna.importance import get_param_importances

    # Optuna warns when too few trials tell the keys apart ("importances will be equal"): the
    # figure says how many trials the importance rests on instead.
    with contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dict(get_param_importances(study))
    return None


def write_best(search: Search, result: Found) -> Path | None:
    """best.yaml in the study directory: the best settings as a config that `dropcli train -c` takes."""
    if result.best is None:
        return None
    best = {"number": result.best.number, "value": result.best.value, "epochs": result.best.epochs, "run": result.best.run}
    path = search.directory / BEST_CONFIG
    search.directory.mkdir(parents=True, exist_ok=True)
    files.write_text(path, best_config_text(search, result.best_config, best, result.counts))
    return path


def train_final(search: Search, config: Config, listeners: list[Listener], workers: Workers) -> Cell:
    """The best settings on the whole training set (no validation split), seeds seed ... seed+N-1,
    each scored on the test set once it has trained: a normal experiment under final/, continued when rerun."""
    final = replace(replace(config, "data.val_split", 0.0), "name", f"{search.study}-best")
    seeds = search.final_seeds
    planned = [Trial({}, seed, replace(final, "seed", seed), f"seed{seed}") for seed in range(final.seed, final.seed + seeds)]
    trials.check_resources(planned, workers)
    return trials.run(spec_of(final, [], seeds), planned, search.directory / FINAL_DIR, listeners, workers)[0]
