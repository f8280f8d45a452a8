"""What a tune study found: its trials as plain rows, the importance of each key, best.yaml,
and the best settings trained on the whole training set with several seeds (--final-seeds).

Only validation accuracy chooses; the test set is scored once, by the final runs.
"""

import contextlib
import dataclasses
import json
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli import files, runs
from dropcli.config import Config, replace, to_yaml
from dropcli.experiments import RESULTS_JSON, Cell, Stat, Trial, spec_of, trials, tune_objectives
from dropcli.experiments.trials import Datasets
from dropcli.experiments.tune import BEST_CONFIG, Search, config_of, space_text
from dropcli.experiments.tune_pruning import RungAgreement, rung_agreement
from dropcli.experiments.tune_search import interrupted, trained_epochs
from dropcli.experiments.tune_storage import shown
from dropcli.parallel.workers import Workers
from dropcli.runs import checkpoints
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
    scores: dict[str, float] | None = None  # a finished trial's accuracy, nll, ece, aece on validation
    objective_values: list[float] | None = None  # a complete trial's values, one per objective (value is the first)
    trained: int = 0  # epochs the trial trained itself (a continued run's earlier ones belong to the trial before)


@dataclass(frozen=True)
class Found:
    rows: list[TrialRow]  # by trial number
    best: TrialRow | None  # the complete trial with the highest validation accuracy
    best_config: Config | None
    counts: dict[str, int]  # state -> trials
    importances: dict[str, float] | None  # key -> share of the variation explained; None with too few trials
    rungs: list[RungAgreement] = dataclasses.field(default_factory=list)  # how well each rung predicted the final value
    epochs_trained: int = 0  # the study's compute: every trial's epochs, a continued run's counted once
    front: list[TrialRow] | None = None  # with several objectives: the Pareto front's trials, by number
    picked: str | None = None  # with several objectives: the rule that chose `best` on the front
    objectives: tuple[str, ...] = ("accuracy",)  # what the trials were scored by; value is the first


def found(study, rung_epochs: Sequence[int] = (), search: Search | None = None) -> Found:
    """The study's trials as rows, its best trial (by the first objective's direction, or the
    point of the Pareto front that --pick names), and the importance of each key."""
    objectives = search.objectives if search is not None else ("accuracy",)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}  # a killed worker's trial, taken up by another
    rows = [_row(trial, trial.number in retried) for trial in trials]
    complete = [row for row in rows if row.state == "complete"]
    front, picked = None, None
    if len(objectives) > 1:
        points = tune_objectives.front([(row.number, row.objective_values) for row in complete], objectives)
        front = [row for row in complete if row.number in {number for number, _ in points}]
        pick = tune_objectives.parse_pick(search.pick, objectives)
        chosen = tune_objectives.picked(points, objectives, pick)
        best = next((row for row in complete if chosen and row.number == chosen[0]), None)
        picked = (pick or tune_objectives.Pick()).text(objectives)
    else:
        sign = 1 if tune_objectives.DIRECTIONS[objectives[0]] == "maximize" else -1
        best = max(complete, key=lambda row: sign * row.value, default=None)
    best_trial = study.trials[best.number] if best else None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    best_config = config_of(best_trial.user_attrs) if best_trial else None
    done = [t for t in trials if t.state.name == "COMPLETE"]
    rungs = rung_agreement([t.intermediate_values for t in done], [t.values[0] for t in done], list(rung_epochs))
    return Found(
        rows,
        best,
        best_config,
        counts,
        _importances(study, complete),
        rungs,
        sum(trained_epochs(t) for t in trials),
        front,
        picked,
        objectives,
    )


def _row(trial, retried: bool) -> TrialRow:
    state = "interrupted" if interrupted(trial) or retried else STATES.get(trial.state.name, trial.state.name.lower())
    complete = trial.state.name == "COMPLETE"
    value = trial.values[0] if complete else trial.intermediate_values.get(trial.last_step)
    return TrialRow(
        trial.number,
        state,
        value,
        trial.user_attrs.get("epochs"),
        dict(trial.params),
        trial.user_attrs.get("run"),
        trial.user_attrs.get(tune_objectives.SCORES_ATTR),
        list(trial.values) if complete else None,
        trained_epochs(trial),
    )


def anytime(rows: list[TrialRow], objective: str = "accuracy") -> list[tuple[int, float]]:
    """The search's anytime curve: after each trial, in the order the trials began, the epochs the
    study had trained by then and the best complete trial's value so far (points from the first
    complete trial on). What a search is worth is the best it finds for the compute it spends."""
    spent, best, points = 0, None, []
    for row in sorted(rows, key=lambda row: row.number):
        spent += row.trained
        if row.state == "complete" and (best is None or tune_objectives.better(objective, row.value, best)):
            best = row.value
        if best is not None:
            points.append((spent, best))
    return points


def _importances(study, complete: list[TrialRow]) -> dict[str, float] | None:
    """Optuna's importance of each key for validation accuracy (PED-ANOVA); None before there are
    MIN_TRIALS_FOR_IMPORTANCE complete trials."""
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    from optuna.importance import get_param_importances

    # Optuna warns when too few trials tell the keys apart ("importances will be equal"): the
    # figure says how many trials the importance rests on instead. Of the first objective, where
    # there are several: PED-ANOVA ranks keys by how they reach low values of a target it is
    # given (and warns so too), hence the sign of a maximised one.
    with contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sign = -1 if study.directions[0].name == "MAXIMIZE" else 1
        target = (lambda trial: sign * trial.values[0]) if len(study.directions) > 1 else None
        return dict(get_param_importances(study, target=target))
    return None


def write_best(search: Search, result: Found) -> Path | None:
    """best.yaml in the study directory: the best settings as a config that `dropcli train -c` takes."""
    if result.best is None:
        return None
    best = {"number": result.best.number, "value": result.best.value, "epochs": result.best.epochs, "run": result.best.run}
    best["values"] = result.best.objective_values
    if result.picked is not None:
        best["picked"] = result.picked
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


def kept_final(search: Search) -> Cell | None:
    """The final seeds' result as the last session left it (final/results.json), for --summary."""
    path = search.directory / FINAL_DIR / RESULTS_JSON
    if not path.is_file():
        return None
    cell = json.loads(path.read_text())["cells"][0]
    plain = ("values", "seeds", "runs", "failed")
    return Cell(**{key: value if key in plain or value is None else Stat(**value) for key, value in cell.items()})


def final_scores(
    search: Search, config: Config, scorer, workers: Workers, seeds: int | None = None
) -> dict[str, tuple[float, float | None]]:
    """Every objective's score of the final seeds' models on the test set: mean and standard
    deviation over the seeds (None for one seed)."""
    final = replace(config, "data.val_split", 0.0)
    device, data = Datasets(workers).get(final)
    per_seed = []
    for seed in range(final.seed, final.seed + (seeds or search.final_seeds)):
        payload = checkpoints.load(search.directory / FINAL_DIR / f"seed{seed}" / runs.LAST_CHECKPOINT)
        per_seed.append(scorer(checkpoints.load_model(payload, device), data.test.X, data.test.y))
    return mean_and_spread(per_seed)


def mean_and_spread(per_seed: list[dict[str, float]]) -> dict[str, tuple[float, float | None]]:
    """Each objective's mean over the seeds' scores and their standard deviation (None for one seed)."""
    return {
        name: (
            statistics.mean(s[name] for s in per_seed),
            statistics.stdev(s[name] for s in per_seed) if len(per_seed) > 1 else None,
        )
        for name in tune_objectives.DIRECTIONS
    }


def best_config_text(search: Search, config: Config, best: dict[str, Any], counts: dict[str, int]) -> str:
    """best.yaml: the best trial's settings, trained on the whole training set, with how they were found."""
    from dropcli.runtime import count_text  # runtime imports torch; tune --help must not

    final = replace(replace(config, "data.val_split", 0.0), "name", f"{search.study}-best")
    states = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
    header = [
        f"# The best settings dropcli tune found in study {search.study!r} ({shown(search.storage)}),",
        f"# chosen on validation {' and '.join(search.objectives)} only; the test set was never used to choose.",
        f"# Space: {space_text(search.space)}",
        f"# Trials: {sum(counts.values())} ({states}); pruner: {search.pruner_text}; sampler: {search.sampler}",
        f"# Best: trial {best['number']}, validation {_values_text(search.objectives, best)} after {count_text(best['epochs'], 'epoch')} "
        f"(data.val_split {search.config.data.val_split:g}; its run: {best['run']})",
        *(
            [f"# A point of the Pareto front of {', '.join(search.objectives)}, picked as {best['picked']}"]
            if "picked" in best
            else []
        ),
        "# This file trains on the whole training set (data.val_split 0): dropcli train -c THIS_FILE",
    ]
    return "\n".join(header) + "\n" + to_yaml(final)


def _values_text(objectives: tuple[str, ...], best: dict[str, Any]) -> str:
    values = best.get("values") or [best["value"]]
    return ", ".join(f"{name} {value:.4f}" for name, value in zip(objectives, values))
