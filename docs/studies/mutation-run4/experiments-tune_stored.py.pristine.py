"""A study read back from its storage alone: `tune --summary --run-dir DIR` (or `--storage`)
needs neither the plan nor the command that began it, since the study keeps its config and
space (tune.SPEC_ATTR) and, from this version on, its pruner, sampler and trials (HOW_ATTR)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dropcli.config import load_config, unflatten
from dropcli.errors import DropcliError
from dropcli.experiments import Grid, tune_objectives
from dropcli.experiments.tune import (
    HOW_ATTR,
    JOURNAL,
    SPEC_ATTR,
    Search,
    checked_space,
    open_storage,
    optuna_module,
    upgraded_spec,
)
from dropcli.experiments.tune_pruning import Pruning

NOT_RECORDED = "not recorded"  # a study begun before dropcli kept its pruner and sampler


def stored_search(overrides: list[str], flags: dict, given: dict[str, Any], notice: Callable[[str], None]) -> Search:
    """The search a study in storage was run with. `given` is tune's command line, as for
    tune.resolve: its storage, study and run_dir say where the study is. `notice` hears of a cut
    record set aside (tune_journal.py)."""
    directory = given["run_dir"]
    storage = given["storage"] or (str(directory / JOURNAL) if directory is not None else None)
    if storage is None:
        raise DropcliError(
            "--summary reads the study from its storage: name it with --run-dir DIR (its study.journal) or --storage, "
            "or give the --plan (or -c and --space) the study began with"
        )
    if "://" not in storage and not Path(storage).is_file():
        raise DropcliError(f"--summary: there is no study in {storage}; name the study directory with --run-dir DIR")
    optuna = optuna_module()
    opened = open_storage(optuna, storage, notice)
    name = _study_name(optuna, opened, storage, given["study"])
    attrs = optuna.load_study(study_name=name, storage=opened).user_attrs
    spec = upgraded_spec(attrs.get(SPEC_ATTR))
    if not isinstance(spec, dict) or "space" not in spec:
        raise DropcliError(f"study {name!r} in {storage} was not made by dropcli tune; give its --plan or -c and --space")
    config = load_config(base=unflatten(spec["config"]), overrides=overrides, flags=flags)
    how = attrs.get(HOW_ATTR) or {}
    objectives = tuple(spec.get("objectives", ["accuracy"]))
    if given.get("pick") is not None:
        tune_objectives.parse_pick(given["pick"], objectives)
    return Search(
        config=config,
        space=checked_space(config, [_grid(key, values) for key, values in spec["space"].items()]),
        trials=how.get("trials", 0),
        timeout=None,
        pruner=how.get("pruner", NOT_RECORDED),
        sampler=how.get("sampler", NOT_RECORDED),
        storage=storage,
        study=name,
        directory=directory if directory is not None else Path("runs") / f"tune-{name}",  # as tune.resolve's default
        final_seeds=0,
        objectives=objectives,
        pick=given.get("pick"),
        pruning=_pruning(how),
    )


def _pruning(how: dict[str, Any]) -> Pruning:
    """The pruner's settings as stored; a study run before they were kept judged from epoch 1 with
    reduction 3 (min_resource 1; the median pruner without warm-up)."""
    if "reduction" not in how:
        return Pruning(grace=1)
    return Pruning(grace=how.get("grace"), reduction=how["reduction"], bootstrap=how.get("bootstrap", 0))


def _study_name(optuna, storage, where: str, name: str | None) -> str:
    names = optuna.get_all_study_names(storage)
    if name is not None and name not in names:
        raise DropcliError(f"--study {name}: no such study in {where}; it holds {', '.join(names) or 'none'}")
    if name is None and len(names) != 1:
        listed = f"studies {', '.join(names)}" if names else "no study"
        raise DropcliError(f"--summary: {where} holds {listed}; name one with --study NAME")
    return name or names[0]


def _grid(key: str, stored: list) -> Grid:
    """A space entry as spec_of stores it: [low, high, log] for a range, else the values."""
    if len(stored) == 3 and isinstance(stored[2], bool) and not isinstance(stored[0], bool):
        return Grid(key, (), source=f"--space {key}", span=(float(stored[0]), float(stored[1]), stored[2]))
    return Grid(key, tuple(stored), source=f"--space {key}")
