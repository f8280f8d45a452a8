"""Warm start: known configs (`--enqueue best`, a plan's `enqueue:` list) as a study's first trials.

Each config gives the space's keys their values in it; the other keys are the base config's, as in
every trial. A value the space cannot draw (a net not in its list, a rate outside its range) is
refused before anything is written: the search could never return to it. Each config is put in
the study once, however often the command is rerun (the trial keeps the name it was given).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.config import Config, architecture, get, load_config
from dropcli.errors import DropcliError, first_line
from dropcli.experiments import Grid

ENQUEUED_ATTR = "enqueued"  # the trial's user attribute: the config it was given as


@dataclass(frozen=True)
class Known:
    """A known config as a trial: its name as given, and the space's values in it (Optuna's params)."""

    name: str
    params: dict[str, Any]


def resolve(given: list[str] | None, entry: Any, plan: Path | None, space: list[Grid]) -> tuple[Known, ...]:
    """The configs to enqueue: --enqueue's (FILE or a shipped config's name) if given, else the plan's
    `enqueue:` list (files relative to the plan), each read and checked against the space."""
    if given:
        return tuple(_known(text, text, space, "--enqueue") for text in given)
    if entry is None:
        return ()
    if not isinstance(entry, list) or not all(isinstance(item, str) and item for item in entry):
        raise DropcliError(f"{plan}: enqueue must be a list of config files or shipped names, e.g. [best, paper]")
    return tuple(_known(item, _beside(plan, item), space, f"{plan}: enqueue") for item in entry)


def _beside(plan: Path, entry: str) -> Path | str:
    beside = plan.parent / entry
    return beside if beside.is_file() else entry


def _known(name: str, where: Path | str, space: list[Grid], source: str) -> Known:
    try:
        config = load_config(where)
    except DropcliError as error:
        raise DropcliError(f"{source} {name}: {first_line(error)}") from None
    return Known(name, {grid.key: _param(config, grid, name, source) for grid in space})


def _param(config: Config, grid: Grid, name: str, source: str) -> Any:
    """The config's value of a space key as the trial's Optuna param; refused where the space cannot draw it."""
    try:
        value = get(config, grid.key)
    except IndexError:
        raise DropcliError(
            f"{source} {name}: its net {architecture.short(config.model.hidden)} has no layer for {grid.key}; "
            "enqueue configs whose nets the space's keys fit"
        ) from None
    if grid.span is not None:
        low, high, _ = grid.span
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise DropcliError(
                f"{source} {name}: {grid.key}={value:g} is outside the space's range {low:g}:{high:g}; widen the range to include it"
            )
        return float(value)
    labels = [_label(v) for v in grid.values]
    if grid.key == "model.dropout" and len(set(value)) == 1:
        value = value[0]  # one rate for every layer, as the space holds it
    if _label(value) not in labels:
        raise DropcliError(
            f"{source} {name}: {grid.key}={_label(value)} is not among the space's values ({', '.join(map(str, labels))}); add it"
        )
    return _label(value)


def _label(value: Any) -> Any:
    return architecture.short(value) if isinstance(value, (list, tuple)) else value


def enqueue(study, known: tuple[Known, ...]) -> None:
    """Each known config not yet in the study becomes a waiting trial, in the order given: the next asked for."""
    present = {t.user_attrs.get(ENQUEUED_ATTR) for t in study.get_trials(deepcopy=False)}
    for item in known:
        if item.name not in present:
            study.enqueue_trial(item.params, user_attrs={ENQUEUED_ATTR: item.name})
