"""What a tune study found: its trials as plain rows, the importance of each key, best.yaml,
and the best settings trained on the whole training set with several seeds (--final-seeds).

Only validation accuracy chooses; the test set is scored once, by the final runs.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli import files
from dropcli.config import Config, replace
from dropcli.experiments import Cell, Trial, spec_of, trials
from dropcli.experiments.tune import BEST_CONFIG, Search, best_config_text, config_of
from dropcli.experiments.tune_search import interrupted
from dropcli.parallel.workers import Workers
from dropcli.runs.listeners import Listener

# Optuna's trial states, as tables and best.yaml name them.
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
FINAL_DIR = "final"


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


def found(study) -> Found:
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}  # a killed worker's trial, taken up by another
    rows = [_row(trial, trial.number in retried) for trial in trials]
    complete = [row for row in rows if row.state == "complete"]
    best = max(complete, key=lambda row: row.value, default=None)
    best_trial = study.trials[best.number] if best else None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return Found(rows, best, config_of(best_trial.user_attrs) if best_trial else None, counts, _importances(study, complete))


def _row(trial, retried: bool) -> TrialRow:
    state = "interrupted" if interrupted(trial) or retried else STATES.get(trial.state.name, trial.state.name.lower())
    value = trial.value if trial.state.name == "COMPLETE" else trial.intermediate_values.get(trial.last_step)
    return TrialRow(trial.number, state, value, trial.user_attrs.get("epochs"), dict(trial.params), trial.user_attrs.get("run"))


def _importances(study, complete: list[TrialRow]) -> dict[str, float] | None:
    """Optuna's importance of each key for validation accuracy (PED-ANOVA); None before there are
    enough complete trials to say."""
    if len(complete) < 2:
        return None
    from optuna.importance import get_param_importances

    with contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError):
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
