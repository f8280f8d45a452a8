"""Experiments: a plan of trials, each a normal run, and their results averaged into cells.

This module plans and aggregates; trials.py trains the trials, on one process or many.

`sweep --grid model.dropout=0,0.2,0.5` names one key and its values (commas separate values; an
architecture is its widths joined by x: `--grid model.hidden=256x256,1024x1024x1024,2048`); several
grids give their Cartesian product, and `--seeds N` trains each combination (a cell) with N seeds. `compare
scratch builtin` is the same with one grid over `model.kind`. Each trial is a run directory
under the experiment directory, so running the same command again into the same directory
skips the finished trials and resumes an interrupted one.
"""

import csv
import io
import itertools
import json
import math
import random
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml

from dropcli import runs
from dropcli.config import Config, architecture, field_type, get, replace, to_dict, upgraded
from dropcli.errors import DropcliError

PLAN_FILE = "plan.json"
RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RECORD_FILE = "trials.jsonl"  # a line per trial done: its name and summary (written by rank 0)
# Trials in one experiment: more than anyone trains here, few enough to plan (and check) in seconds.
MAX_TRIALS = 2_000
# Keys a grid may not hold, and why.
NOT_GRID_KEYS = {
    "seed": "seeds are not a grid: use --seeds N (and --seed FIRST) to train every cell with N seeds, averaged in each cell",
}


@dataclass(frozen=True)
class Grid:
    key: str
    values: tuple[Any, ...]  # the values to try; empty for a range
    source: str = ""  # where the values came from, for error messages; default "--grid KEY"
    span: tuple[float, float, bool] | None = None  # (low, high, log scale): a range to sample (--sample)

    def __post_init__(self):
        object.__setattr__(self, "source", self.source or f"--grid {self.key}")


@dataclass(frozen=True)
class Trial:
    """One run of the plan: a combination of grid values and a seed."""

    values: dict[str, Any]
    seed: int
    config: Config
    name: str  # its run directory under the experiment directory


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None for a single seed

    @classmethod
    def of(cls, values: list[float]) -> "Stat | None":
        if not values:
            return None
        return cls(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Cell:
    """One combination of grid values, over the seeds that finished (failed ones are listed)."""

    values: dict[str, Any]
    seeds: int  # finished seeds: the statistics are over these
    train_loss: Stat | None  # None when no seed finished
    test_loss: Stat | None
    test_acc: Stat | None
    val_acc: Stat | None  # with data.val_split: what to choose settings by, never test_acc
    train_acc: Stat | None  # the training set in eval mode, after the last epoch
    gap: Stat | None  # train_acc - test_acc, per seed: the generalisation gap
    seconds_per_epoch: Stat | None
    samples_per_s: Stat | None
    runs: list[str]
    failed: dict[str, str]  # run name -> why it stopped (it diverged)


def parse_grid(text: str, flag: str = "--grid") -> Grid:
    """ "model.dropout=0,0.2,0.5" -> Grid("model.dropout", (0, 0.2, 0.5));
    "model.hidden=256x256,2048" -> Grid("model.hidden", ("256x256", 2048)) (parsed as config values).
    `flag` names the option in errors (tune's --space takes the same text)."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise DropcliError(f"bad {flag} {text!r}: expected KEY=V1,V2,..., e.g. {flag} model.dropout_1=0,0.2,0.5")
    if key in NOT_GRID_KEYS:
        raise DropcliError(f"bad {flag} {text!r}: {NOT_GRID_KEYS[key]}")
    if ":" in values:
        _check_numeric(text, key, flag)
        return Grid(key, (), source=f"{flag} {key}", span=_span(text, values, flag))
    try:
        parsed = tuple(architecture.command_line_value(key, value) for value in values.split(","))
    except yaml.YAMLError:
        raise DropcliError(f"bad {flag} {text!r}: each value must be a YAML scalar") from None
    return Grid(key, parsed, source=f"{flag} {key}")


def _check_numeric(text: str, key: str, flag: str) -> None:
    """A range draws real numbers: refuse it for a key that holds anything else."""
    kinds = get_args(field_type(key, f"{flag} {key}")) or (field_type(key, f"{flag} {key}"),)
    if float in kinds:
        return
    if int in kinds:
        raise DropcliError(
            f"bad {flag} {text!r}: a range draws real numbers, and {key} takes integers; give a list, e.g. {key}=64,128,256"
        )
    raise DropcliError(
        f"bad {flag} {text!r}: ranges need a numeric key, and {key} is not one; give a list of values, KEY=V1,V2,..."
    )


def _span(text: str, values: str, flag: str) -> tuple[float, float, bool]:
    """ "0.01:1:log" -> (0.01, 1.0, True)."""
    parts = values.split(":")
    try:
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ValueError
        low, high, log = float(parts[0]), float(parts[1]), len(parts) == 3
    except ValueError:
        raise DropcliError(f"bad {flag} {text!r}: a range is LOW:HIGH or LOW:HIGH:log, e.g. optim.lr=0.01:1:log") from None
    if not low < high or (log and low <= 0):
        raise DropcliError(f"bad {flag} {text!r}: a range needs LOW < HIGH (and LOW > 0 on a log scale)")
    return low, high, log


def sample(grids: list[Grid], count: int, seed: int) -> list[Grid]:
    """Random search: `count` draws of every key at once (uniform, or log-uniform in a range;
    uniform over a list), seeded, so the same command draws the same trials. Returns grids of
    the drawn values, to be zipped (not multiplied) by plan()."""
    if count > MAX_TRIALS:
        raise DropcliError(f"--sample {count}: an experiment holds at most {MAX_TRIALS:,} trials; sample fewer")
    if all(grid.span is None for grid in grids):
        points = math.prod(len(set(grid.values)) for grid in grids)
        if count > points:
            raise DropcliError(
                f"--sample {count}: the lists given hold only {points} different combinations; sample at most {points}, "
                "or drop --sample to try them all"
            )
    generator = random.Random(seed)
    drawn: dict[tuple, None] = {}  # insertion-ordered, and a fast membership test
    for _ in range(count * 100):
        drawn.setdefault(tuple(_draw(grid, generator) for grid in grids))
        if len(drawn) == count:
            return [Grid(grid.key, tuple(c[i] for c in drawn), grid.source) for i, grid in enumerate(grids)]
    raise DropcliError(
        f"--sample {count}: only {len(drawn)} different combinations were drawn in {count * 100} tries; sample fewer"
    )


def _draw(grid: Grid, generator: random.Random) -> Any:
    if grid.span is None:
        return generator.choice(grid.values)
    low, high, log = grid.span
    value = math.exp(generator.uniform(math.log(low), math.log(high))) if log else generator.uniform(low, high)
    return float(f"{value:.4g}")  # readable names; the config holds exactly this value


def trial_dirs(targets: list[Path]) -> list[Path]:
    """The run directories `targets` name, in order: an experiment directory (with its PLAN_FILE)
    gives its trials that have started, as evaluate takes it."""
    found = []
    for target in targets:
        if not (target / PLAN_FILE).is_file():
            found.append(target)
            continue
        trials = sorted(path for path in target.iterdir() if (path / runs.METRICS_FILE).is_file())
        if not trials:
            raise DropcliError(f"{target}: an experiment directory whose trials have not started; train them first")
        found += trials
    return found


def plan(config: Config, grids: list[Grid], seeds: int, zipped: bool = False) -> list[Trial]:
    """Every (cell, seed) trial with its validated config: bad keys or values fail here, up front.

    Grid values are checked and normalised as config values (".5" and "0.5" are one value, so
    naming both is refused), and every key takes effect in its trials' configs.
    """
    if any(grid.span is not None for grid in grids):
        raise DropcliError("a --grid range (LOW:HIGH) is sampled, not tried whole: add --sample N")
    keys = [grid.key for grid in grids]
    check_keys(keys, "--grid")
    count = (len(grids[0].values) if zipped and grids else math.prod(len(grid.values) for grid in grids)) * seeds
    if count > MAX_TRIALS:
        raise DropcliError(
            f"this experiment would train {count:,} trials; at most {MAX_TRIALS:,}: use fewer values or --seeds, or split it"
        )
    grids = [Grid(grid.key, _normalised(config, grid, unique=not zipped), grid.source) for grid in grids]
    short = [key.rsplit(".", 1)[-1] for key in keys]
    labels = short if len(set(short)) == len(short) else keys
    # A random search's grids hold the drawn values in order: the i-th of each is one trial.
    combinations = list(zip(*(g.values for g in grids)) if zipped else itertools.product(*(g.values for g in grids)))
    stems = ["_".join(f"{label}={_safe(value)}" for label, value in zip(labels, values)) for values in combinations]
    if len(set(stems)) < len(stems):  # values that differ only in characters a name cannot hold
        stems = [f"{stem}-{index}" for index, stem in enumerate(stems, start=1)]
    trials = []
    for combination, stem in zip(combinations, stems):
        values = dict(zip(keys, combination))
        cell_config = config
        for key, value in values.items():
            cell_config = replace(cell_config, key, value)
        for seed in range(config.seed, config.seed + seeds):
            trials.append(Trial(values, seed, replace(cell_config, "seed", seed), f"{stem}_seed{seed}"))
    return trials


def check_keys(keys: list[str], flag: str) -> None:
    """Each key varied once: not twice, and not a list (model.hidden) beside one of its places
    (model.hidden_1), since both would set the same layer."""
    if len(set(keys)) != len(keys):
        raise DropcliError(f"a {flag} key is named twice: {', '.join(keys)}")
    for key in keys:
        list_key, place = architecture.list_place(key)
        if place is not None and list_key in keys:
            raise DropcliError(f"{flag} {list_key} and {flag} {key} (a place in {list_key}) set the same list; keep one")


def _normalised(config: Config, grid: Grid, unique: bool) -> tuple[Any, ...]:
    values = tuple(_normal_value(config, grid, value) for value in grid.values)
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if unique and repeated:
        raise DropcliError(f"{grid.source} names {', '.join(repeated)} more than once; name each value once")
    return values


def _normal_value(config: Config, grid: Grid, value: Any) -> Any:
    normal = get(replace(config, grid.key, value, source=grid.source), grid.key)
    if grid.key == "model.dropout" and not isinstance(value, (list, tuple)):
        return normal[0]  # one rate for every layer, whatever the depth of the cell's net
    return normal


def _safe(value: Any) -> str:
    """A grid value as part of one directory name: no path separators or other odd characters."""
    return re.sub(r"[^\w.+-]", "_", architecture.short(value))[:40]


def spec_of(config: Config, grids: list[Grid], seeds: int, sampled: int | None = None) -> dict[str, Any]:
    spec = {"config": to_dict(config), "grids": [[g.key, list(g.values)] for g in grids], "seeds": seeds}
    return {**spec, "sampled": sampled} if sampled else spec


def check_dir(directory: Path, spec: dict[str, Any]) -> None:
    """An experiment directory holds one plan: refuse to mix another one into it."""
    path = directory / PLAN_FILE
    if not path.exists() and directory.is_dir() and any(directory.iterdir()):
        raise DropcliError(f"{directory} exists and is not an experiment directory; choose another --run-dir")
    if path.exists() and _upgraded(_read_json(path)) != spec:
        raise DropcliError(
            f"{directory} holds a different experiment (see its {PLAN_FILE}); use the same config, grids and seeds "
            "to continue it, or another --run-dir"
        )


def _upgraded(spec: Any) -> Any:
    """A plan written by an older dropcli (model.hidden_1, ..., no data.name) in today's keys."""
    if isinstance(spec, dict) and isinstance(spec.get("config"), dict):
        spec["config"] = upgraded(spec["config"])
    return spec


def cells(trials: list[Trial], summaries: dict[str, dict[str, Any]]) -> list[Cell]:
    """Group the trials' summaries by grid values: mean and standard deviation over seeds."""
    grouped: dict[tuple, list[Trial]] = {}
    for trial in trials:
        grouped.setdefault(tuple(trial.values.items()), []).append(trial)
    return [_cell(group, summaries) for group in grouped.values()]


def _cell(group: list[Trial], summaries: dict[str, dict[str, Any]]) -> Cell:
    done = [summaries[t.name] for t in group if summaries[t.name]["status"] == "finished"]

    def stat(value: Callable[[dict[str, Any]], float]) -> Stat | None:
        return Stat.of([value(s) for s in done])

    return Cell(
        values=group[0].values,
        seeds=len(done),
        train_loss=stat(lambda s: s["final"]["train_loss"]),
        test_loss=stat(lambda s: s["final"]["test_loss"]),
        test_acc=stat(lambda s: s["final"]["test_acc"]),
        val_acc=stat(lambda s: s["final"]["val_acc"]) if all(s["final"].get("val_acc") is not None for s in done) else None,
        train_acc=stat(lambda s: s["train_eval"]["acc"]),
        gap=stat(lambda s: s["train_eval"]["acc"] - s["final"]["test_acc"]),
        seconds_per_epoch=stat(lambda s: s["seconds_per_epoch"]),
        samples_per_s=stat(lambda s: s["samples_per_s"]),
        runs=[t.name for t in group],
        failed={t.name: summaries[t.name]["reason"] for t in group if summaries[t.name]["status"] != "finished"},
    )


def matrix(cells: list[Cell], keys: list[str], field: str) -> tuple[list[Any], list[Any], list[list[float | None]]]:
    """A two-key experiment as (row values, column values, grid of the mean of `field`), rows from keys[0]."""
    rows = list(dict.fromkeys(cell.values[keys[0]] for cell in cells))
    columns = list(dict.fromkeys(cell.values[keys[1]] for cell in cells))
    by_position = {(cell.values[keys[0]], cell.values[keys[1]]): getattr(cell, field) for cell in cells}
    return rows, columns, [[_mean(by_position[(row, column)]) for column in columns] for row in rows]


def _mean(stat: Stat | None) -> float | None:
    return None if stat is None else stat.mean


STAT_FIELDS = ("train_loss", "test_loss", "test_acc", "val_acc", "train_acc", "gap", "seconds_per_epoch", "samples_per_s")


def to_csv(cells: list[Cell]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = list(cells[0].values) if cells else []
    writer.writerow([*keys, "seeds", "failed", *(f"{name}{part}" for name in STAT_FIELDS for part in ("", "_std"))])
    for cell in cells:
        stats = [getattr(cell, name) for name in STAT_FIELDS]
        numbers = [number for stat in stats for number in ((stat.mean, stat.std) if stat else (None, None))]
        writer.writerow([*map(architecture.short, cell.values.values()), cell.seeds, len(cell.failed), *numbers])
    return buffer.getvalue()


def failures(cells: list[Cell]) -> dict[str, str]:
    """Every failed trial of the experiment: run name -> why."""
    return {name: reason for cell in cells for name, reason in cell.failed.items()}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DropcliError(f"{path} cannot be read ({error}); remove it and run again, or choose another --run-dir") from None
