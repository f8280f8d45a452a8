"""Search for good settings with Optuna: what to search, the study, and what it found.

`dropcli tune --space KEY=LOW:HIGH[:log] --space KEY=V1,V2 --trials N` takes the keys and value
forms of `sweep --grid`; Optuna's sampler picks each trial's values, and each epoch's validation
accuracy goes to Optuna's pruner, which may stop a trial that looks poor (search.py trains them).
Settings are chosen on the validation split only (data.val_split > 0), never on the test set.
The study lives in an Optuna storage: a journal file in the study directory unless --storage
names another (a file, or an RDB URL that several processes or machines share), so the same
command continues it. Optuna is an optional extra, imported only here: dropcli[tune].
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.config import Config, architecture, flatten, load_config, replace, to_dict, unflatten, upgraded
from dropcli.errors import DropcliError
from dropcli.experiments import Grid, parse_grid, sweep_plan, tune_enqueue, tune_objectives, tune_pruning
from dropcli.experiments.search_space import checked_space
from dropcli.experiments.tune_enqueue import Known
from dropcli.experiments.tune_pruning import Pruning
from dropcli.experiments.tune_storage import JOURNAL, database_errors, open_storage, shown

PLAN_KEYS = (
    "config",
    "space",
    "trials",
    "timeout",
    "pruner",
    "sampler",
    "storage",
    "study",
    "final_seeds",
    "enqueue",
    "objective",
    "pick",
)
PRUNERS = ("median", "asha", "hyperband", "none")
SAMPLERS = ("tpe", "random", "grid")
SPEC_ATTR = "dropcli"  # what a study must keep: config and space (spec_of)
HOW_ATTR = "dropcli_search"  # its pruner, sampler and trials as last run, which may change
BEST_CONFIG = "best.yaml"
# Keys the search may not vary, and why.
NOT_SPACE_KEYS = {
    "seed": "the seed is not a setting to tune; --final-seeds N trains the best settings with N seeds",
    "data.val_split": "the validation split is what trials are compared on, so every trial must hold out the same one",
}
# What may differ between the sessions of one study: where and how fast it trains.
SESSION_KEYS = ("device", "data.root", "train.engine")


@dataclass(frozen=True)
class Search:
    """A search as the command line and the plan file describe it."""

    config: Config
    space: list[Grid]
    trials: int  # the study's total: a rerun trains only what is missing
    timeout: float | None  # seconds this command searches; a trial running then stops and is continued later
    pruner: str
    sampler: str
    storage: str  # an RDB URL, or a journal file's path
    study: str
    directory: Path  # the trials' run directories, best.yaml, final/
    final_seeds: int
    pruning: Pruning = Pruning()  # the pruner's grace period, reduction factor and bootstrap count
    enqueue: tuple[Known, ...] = ()  # known configs, the study's first trials (tune_enqueue)
    objectives: tuple[str, ...] = ("accuracy",)  # on the validation split; several make a Pareto front
    pick: str | None = None  # which point of the front best.yaml takes (tune_objectives.parse_pick)

    @property
    def max_epochs(self) -> int:
        return tune_pruning.max_epochs(self.config, self.space)

    @property
    def pruner_text(self) -> str:
        """The pruner with its settings: asha (grace 16 epochs, reduction 3)."""
        return self.pruning.text(self.pruner, self.config, self.max_epochs)


def optuna_module():
    """Optuna, or one line saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise DropcliError("tune needs Optuna: pip install 'dropcli[tune]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search reports itself
    return optuna


def resolve(plan: Path | None, config_path: Path | None, overrides: list[str], flags: dict, given: dict[str, Any]) -> Search:
    """The search to run: the plan file (if any) with the command line over it. `given` holds the
    command line's space (a list of KEY=... texts), trials, timeout, pruner, sampler, storage,
    study, final_seeds and run_dir (None where not given). Every check happens here, before
    anything is written."""
    raw = sweep_plan.read(plan, PLAN_KEYS) if plan is not None else {}
    config = sweep_plan.plan_config(plan, raw, config_path, overrides, flags)
    if config.data.val_split <= 0:
        raise DropcliError(
            "tune chooses settings on a validation split, never on the test set, and this config has none; "
            "add --set data.val_split=0.1 (or data: {val_split: 0.1} in the config)"
        )
    from_plan = sweep_plan.plan_grids(plan, _checked_section(plan, raw.get("space")), "space")
    space = sweep_plan.merged_grids(from_plan, [parse_space(text) for text in given["space"] or []], "--space")
    space_grids = checked_space(config, space)
    trials = given["trials"] or sweep_plan.count(plan, raw, "trials")
    if trials is None:
        raise DropcliError("tune needs a number of trials: --trials N (or trials: N in the plan file)")
    objectives = tune_objectives.parse(
        given.get("objective") or raw.get("objective"), "--objective" if given.get("objective") else f"{plan}: objective"
    )
    sampler = _choice("sampler", given["sampler"] or raw.get("sampler", "tpe"), SAMPLERS, plan)
    _check_grid_sampler(sampler, space_grids, trials)
    study = str(given["study"] or raw.get("study") or config.name)
    if not study or "/" in study or study.startswith("."):
        raise DropcliError(f"--study {study!r}: a study name is one path component, e.g. --study lr-search")
    directory = given["run_dir"] or Path("runs") / f"tune-{study}"
    entry = tune_objectives.pruner_for(objectives, given["pruner"] or raw.get("pruner"))
    pruner, pruning = tune_pruning.resolve(
        entry, given, plan, config, space_grids, lambda name: _choice("pruner", name, PRUNERS, plan)
    )
    return Search(
        config=config,
        space=space_grids,
        trials=trials,
        timeout=_timeout(given["timeout"] if given["timeout"] is not None else raw.get("timeout"), plan),
        pruner=pruner,
        sampler=sampler,
        storage=_storage(given["storage"], raw.get("storage"), plan, directory),
        study=study,
        directory=directory,
        final_seeds=given["final_seeds"] or sweep_plan.count(plan, raw, "final_seeds") or 0,
        objectives=objectives,
        pick=_pick(given.get("pick") or raw.get("pick"), objectives),
        pruning=pruning,
        enqueue=tune_enqueue.resolve(given.get("enqueue"), raw.get("enqueue"), plan, space_grids),
    )


def _pick(text: Any, objectives: tuple[str, ...]) -> str | None:
    if text is not None:
        tune_objectives.parse_pick(str(text), objectives)  # checked now, applied to the front at the end
    return None if text is None else str(text)


def parse_space(text: str) -> Grid:
    """--space KEY=LOW:HIGH[:log] or KEY=V1,V2,...: a grid, as sweep's --grid reads it."""
    key = text.partition("=")[0].strip()
    if key in NOT_SPACE_KEYS:
        raise DropcliError(f"bad --space {text!r}: {NOT_SPACE_KEYS[key]}")
    return parse_grid(text, "--space")


def _checked_section(plan: Path | None, section: Any) -> Any:
    for key in section or {}:
        if key in NOT_SPACE_KEYS:
            raise DropcliError(f"{plan}: space {key}: {NOT_SPACE_KEYS[key]}")
    return section


def _choice(what: str, value: Any, choices: tuple[str, ...], plan: Path | None) -> str:
    if value not in choices:
        where = f"{plan}: {what}" if plan is not None else f"--{what}"
        raise DropcliError(f"{where} {value!r}: choose one of {', '.join(choices)}")
    return value


def _check_grid_sampler(sampler: str, space: list[Grid], trials: int) -> None:
    if sampler != "grid":
        return
    ranged = [grid.key for grid in space if grid.span is not None]
    if ranged:
        raise DropcliError(f"--sampler grid tries lists of values, and {', '.join(ranged)} is a range; give values V1,V2,...")
    points = math.prod(len(grid.values) for grid in space)
    if trials > points:
        raise DropcliError(f"--trials {trials}: the grid has only {points} points; ask for at most {points} trials")


def _timeout(value: Any, plan: Path | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DropcliError(f"{plan}: timeout must be a number of seconds above 0, got {value!r}")
    return float(value)


def _storage(flag: str | None, entry: Any, plan: Path | None, directory: Path) -> str:
    """An RDB URL as given; a file as its path (a plan's relative to the plan file); default the study directory's journal."""
    if flag is not None:
        return flag
    if entry is None:
        return str(directory / JOURNAL)
    if not isinstance(entry, str) or not entry:
        raise DropcliError(f"{plan}: storage must be a journal file's path or an RDB URL, got {entry!r}")
    return entry if "://" in entry else str(plan.parent / entry)


def open_study(search: Search, sampler, pruner, notice: Callable[[str], None] | None = None, storage=None):
    """The study in its storage (opened here unless given), made on first use; refused if it was
    made for another search, before anything is written to the storage. `notice` hears of a cut
    journal record set aside."""
    optuna = optuna_module()
    storage = storage if storage is not None else open_storage(optuna, search.storage, notice)
    directions = [tune_objectives.DIRECTIONS[name] for name in search.objectives]
    with database_errors(search.storage):
        stored = _stored_directions(optuna, storage, search.study)
        if stored not in (None, directions):
            raise DropcliError(
                f"study {search.study!r} in {shown(search.storage)} scores other objectives than --objective {','.join(search.objectives)}; "
                "give the objectives it began with to continue it, or name a new --study"
            )
        if stored is not None:
            # Loaded, not created: Optuna's create_study(load_if_exists=True) first appends a
            # create-study record, which a refused rerun must not leave in the journal.
            study = optuna.load_study(study_name=search.study, storage=storage, sampler=sampler, pruner=pruner)
        else:
            study = optuna.create_study(
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                study_name=search.study,
                load_if_exists=True,
                directions=directions,
            )
        _check_spec(search, study)
        how = {"pruner": search.pruner, "sampler": search.sampler, "trials": search.trials, **search.pruning.stored()}
        if sampler is not None and study.user_attrs.get(HOW_ATTR) != how:  # for --summary alone (tune_stored.py)
            study.set_user_attr(HOW_ATTR, how)
    return study


def _stored_directions(optuna, storage, name: str) -> list[str] | None:
    """The directions of the study `name` already in the storage; None for a new one."""
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == name:
            return [direction.name.lower() for direction in summary.directions]
    return None


def _check_spec(search: Search, study) -> None:
    spec = spec_of(search)
    found = study.user_attrs.get(SPEC_ATTR)
    if found is None:
        study.set_user_attr(SPEC_ATTR, spec)
    elif upgraded_spec(found) != spec:
        raise DropcliError(
            f"study {search.study!r} in {shown(search.storage)} was started with another config or space; "
            "run it with the same ones to continue it, or name a new --study"
        )


def spec_of(search: Search) -> dict[str, Any]:
    """What one study must keep: the base config (less where it trains) and the space."""
    config = {key: value for key, value in flatten(to_dict(search.config)).items() if key not in SESSION_KEYS}
    space = {grid.key: list(grid.span) if grid.span else [_plain(v) for v in grid.values] for grid in search.space}
    spec = {"config": _plain(config), "space": space}
    if search.objectives != ("accuracy",):  # a study begun before --objective has none, and scores accuracy
        spec["objectives"] = list(search.objectives)
    return spec


def upgraded_spec(spec: Any) -> Any:
    """A spec stored by an older dropcli in today's keys: a config key added since then counts at
    its default, so a new key does not end a study begun before it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        return spec
    config = flatten(upgraded(unflatten(spec["config"])))
    return {**spec, "config": _plain({key: value for key, value in config.items() if key not in SESSION_KEYS})}


def _plain(value: Any) -> Any:
    """JSON's view of a value (tuples as lists), so a spec read back from the storage compares equal."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def label(value: Any) -> Any:
    """A list value as Optuna's categorical choices hold it: text such as 1024x1024; scalars as they are."""
    return architecture.short(value) if isinstance(value, (list, tuple)) else value


def trial_config(search: Search, trial) -> tuple[Config, dict[str, Any]]:
    """The config of an Optuna trial, and the values it drew, key by key in the space's order."""
    config, values = search.config, {}
    for grid in search.space:
        if grid.span is not None:
            low, high, log = grid.span
            value = trial.suggest_float(grid.key, low, high, log=log)
        else:
            by_label = {label(v): v for v in grid.values}
            value = by_label[trial.suggest_categorical(grid.key, list(by_label))]
        values[grid.key] = value
        config = replace(config, grid.key, value, source=f"trial {trial.number}: {grid.key}")
    return config, values


def space_text(space: list[Grid]) -> str:
    """The space as --space would give it: optim.lr=0.01:1:log model.hidden=256x256,2048."""
    parts = []
    for grid in space:
        if grid.span is not None:
            low, high, log = grid.span
            parts.append(f"{grid.key}={low:g}:{high:g}{':log' if log else ''}")
        else:
            parts.append(f"{grid.key}={','.join(architecture.short(v) for v in grid.values)}")
    return " ".join(parts)


def config_of(attrs: dict[str, Any]) -> Config:
    """A trial's config, as search.py stored it with the trial."""
    return load_config(base=attrs["config"])
