"""Sweeps: train every combination of a few config values, each as a normal run.

`--grid model.dropout_1=0,0.2,0.5` names one key and its values; several grids give their
Cartesian product. Each cell and seed is a run directory under the sweep directory, so a sweep
run again into the same directory skips the finished cells and resumes an interrupted one.
"""

import csv
import dataclasses
import io
import itertools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from dropcli import checkpoints, runs
from dropcli.config import Config, replace, to_dict
from dropcli.data import FashionMNIST
from dropcli.errors import DropcliError
from dropcli.experiments import RunCallbacks, train_run

SPEC_FILE = "sweep-spec.json"


@dataclass(frozen=True)
class Grid:
    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Cell:
    """One combination of grid values, averaged over its seeds."""

    values: dict[str, Any]
    seeds: int
    test_acc: float
    test_acc_std: float | None
    train_acc: float  # the training set in eval mode, after the last epoch
    gap: float  # train_acc - test_acc: the generalisation gap
    runs: list[str]


@dataclass(frozen=True)
class PlannedRun:
    values: dict[str, Any]
    seed: int
    config: Config
    name: str


def parse_grid(text: str) -> Grid:
    """"model.dropout_1=0,0.2,0.5" -> Grid("model.dropout_1", (0, 0.2, 0.5))."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise DropcliError(f"bad --grid {text!r}: expected KEY=V1,V2,..., e.g. --grid model.dropout_1=0,0.2,0.5")
    try:
        parsed = tuple(yaml.safe_load(value) for value in values.split(","))
    except yaml.YAMLError:
        raise DropcliError(f"bad --grid {text!r}: each value must be a YAML scalar") from None
    return Grid(key.strip(), parsed)


def plan(config: Config, grids: list[Grid], seeds: int) -> list[PlannedRun]:
    """Every (cell, seed) run with its validated config: bad keys or values fail here, up front."""
    keys = [grid.key for grid in grids]
    if len(set(keys)) != len(keys):
        raise DropcliError(f"a --grid key is named twice: {', '.join(keys)}")
    short = [key.rsplit(".", 1)[-1] for key in keys]
    labels = short if len(set(short)) == len(short) else keys
    planned = []
    for combination in itertools.product(*(grid.values for grid in grids)):
        values = dict(zip(keys, combination))
        cell_config = config
        for key, value in values.items():
            cell_config = replace(cell_config, key, value)
        for seed in range(config.seed, config.seed + seeds):
            name = "_".join(f"{label}={value}" for label, value in zip(labels, combination)) + f"_seed{seed}"
            planned.append(PlannedRun(values, seed, replace(cell_config, "seed", seed), name))
    return planned


def check_spec(sweep_dir: Path, spec: dict[str, Any]) -> None:
    """A sweep directory holds one sweep: refuse to mix another one into it."""
    path = sweep_dir / SPEC_FILE
    if not path.exists() and sweep_dir.is_dir() and any(sweep_dir.iterdir()):
        raise DropcliError(f"{sweep_dir} exists and is not a sweep directory; choose another --run-dir")
    if path.exists() and json.loads(path.read_text()) != spec:
        raise DropcliError(
            f"{sweep_dir} holds a different sweep (see its {SPEC_FILE}); use the same config, grids and seeds "
            "to continue it, or another --run-dir"
        )


def spec_of(config: Config, grids: list[Grid], seeds: int) -> dict[str, Any]:
    return {"config": to_dict(config), "grids": [[g.key, list(g.values)] for g in grids], "seeds": seeds}


def run_sweep(
    spec: dict[str, Any], planned: list[PlannedRun], data: FashionMNIST, device: torch.device,
    sweep_dir: Path, callbacks: RunCallbacks,
) -> list[Cell]:  # fmt: skip
    """Train every planned run not finished yet; write sweep.json and sweep.csv."""
    check_spec(sweep_dir, spec)
    runs.write_json_atomic(sweep_dir / SPEC_FILE, spec)
    summaries = {}
    for run in planned:
        summaries[run.name] = _finished_summary(sweep_dir / run.name) or _train(run, data, device, sweep_dir, callbacks)
    cells = _cells(planned, summaries)
    runs.write_json_atomic(sweep_dir / "sweep.json", {**spec, "cells": [dataclasses.asdict(c) for c in cells]})
    runs.write_text_atomic(sweep_dir / "sweep.csv", to_csv(cells))
    return cells


def matrix(cells: list[Cell], keys: list[str], field: str) -> tuple[list[Any], list[Any], list[list[float]]]:
    """A two-key sweep as (row values, column values, grid of `field`), rows from keys[0]."""
    rows = list(dict.fromkeys(cell.values[keys[0]] for cell in cells))
    columns = list(dict.fromkeys(cell.values[keys[1]] for cell in cells))
    by_position = {(cell.values[keys[0]], cell.values[keys[1]]): getattr(cell, field) for cell in cells}
    return rows, columns, [[by_position[(row, column)] for column in columns] for row in rows]


def to_csv(cells: list[Cell]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    keys = list(cells[0].values) if cells else []
    writer.writerow([*keys, "seeds", "test_acc", "test_acc_std", "train_acc", "gap"])
    for cell in cells:
        writer.writerow([*cell.values.values(), cell.seeds, cell.test_acc, cell.test_acc_std, cell.train_acc, cell.gap])
    return buffer.getvalue()


def _finished_summary(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "summary.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        if summary["status"] == "finished":
            return summary
    return None


def _train(run: PlannedRun, data: FashionMNIST, device: torch.device, sweep_dir: Path, callbacks: RunCallbacks) -> dict[str, Any]:
    run_dir = sweep_dir / run.name
    last = run_dir / "checkpoints" / "last.pt"
    # An interrupted cell continues from its checkpoint; one that never finished an epoch
    # has nothing worth keeping and starts again in place.
    resume_from = checkpoints.load(last) if last.is_file() else None
    run_dir.mkdir(exist_ok=True)
    return train_run(run.config, data, device, run_dir, callbacks, resume_from=resume_from).summary


def _cells(planned: list[PlannedRun], summaries: dict[str, dict[str, Any]]) -> list[Cell]:
    grouped: dict[tuple, list[PlannedRun]] = {}
    for run in planned:
        grouped.setdefault(tuple(run.values.items()), []).append(run)
    cells = []
    for group in grouped.values():
        tests = [summaries[run.name]["final"]["test_acc"] for run in group]
        trains = [summaries[run.name]["train_eval"]["acc"] for run in group]
        cells.append(
            Cell(
                values=group[0].values,
                seeds=len(group),
                test_acc=statistics.mean(tests),
                test_acc_std=statistics.stdev(tests) if len(tests) > 1 else None,
                train_acc=statistics.mean(trains),
                gap=statistics.mean(trains) - statistics.mean(tests),
                runs=[run.name for run in group],
            )
        )
    return cells
