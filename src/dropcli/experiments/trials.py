"""Training an experiment's trials, in one process or dealt over torchrun's workers.

Trials are dealt in rounds: in each round worker r trains the r-th pending trial, then every
worker's result is gathered, and rank 0 records it in `trials.jsonl` and finally writes the
results files. Rank 0's record is what makes a rerun skip finished trials, on any number of
workers, with no filesystem shared between nodes; a trial's own run directory stays on the node
that trained it.
"""

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from dropcli import data, files, runs
from dropcli.errors import DropcliError
from dropcli.experiments import (
    PLAN_FILE,
    RECORD_FILE,
    RESULTS_CSV,
    RESULTS_JSON,
    Cell,
    Trial,
    cells,
    check_dir,
    to_csv,
)
from dropcli.parallel.workers import Workers
from dropcli.runs import checkpoints
from dropcli.runs.listeners import Listener
from dropcli.runs.loop import train_run
from dropcli.runtime import check_memory
from dropcli.training.epoch import Diverged
from dropcli.training.state import memory_needed


def check_resources(trials: list[Trial], workers: Workers) -> None:
    """Fail before any training if a trial needs a device, data or memory a worker lacks."""
    workers.agreed(lambda: _check_resources(trials, workers))


def _check_resources(trials: list[Trial], workers: Workers) -> None:
    devices = {spec: workers.device(spec) for spec in dict.fromkeys(trial.config.device for trial in trials)}
    for root, name in dict.fromkeys((trial.config.data.root, trial.config.data.name) for trial in trials):
        data.find_or_fetch(root, name)
    for trial in trials:
        check_memory(memory_needed(trial.config), devices[trial.config.device], f"trial {trial.name}")


def run(spec: dict[str, Any], trials: list[Trial], directory: Path, listeners: list[Listener], workers: Workers) -> list[Cell]:
    """Train every trial not done yet; rank 0 writes the results files. Returns the cells.

    The directory must be new, empty, or hold this same plan; each node's first worker locks it
    while the job runs. A trial that diverges is recorded as such and the others go on.
    """
    with _opened(directory, spec, workers):
        record = directory / RECORD_FILE
        done = workers.broadcast(_recorded(record) if workers.is_primary else None)
        pending = [trial for trial in trials if trial.name not in done]
        datasets = Datasets(workers)
        clock = _Estimate(len(pending), workers.world_size)
        for start in range(0, len(pending), workers.world_size):
            index = start + workers.rank
            if index < len(pending):
                for listener in listeners:
                    listener.trial_started(len(trials) - len(pending) + index + 1, len(trials), clock.remaining(start))
            mine = _attempt(pending[index], datasets, directory, listeners) if index < len(pending) else None
            results = workers.gather(mine)  # the same list on every worker, so all stop alike on an error
            failed = next((r for r in results if r and "error" in r), None)
            if failed is not None:
                raise DropcliError(failed["error"], failed["exit_code"])
            for result in filter(None, results):
                done[result["name"]] = result["summary"]
                if workers.is_primary:
                    files.append_line(record, files.json_line({"name": result["name"], "summary": result["summary"]}))
        result_cells = cells(trials, done)
        if workers.is_primary:
            files.write_json(directory / RESULTS_JSON, {**spec, "cells": [dataclasses.asdict(c) for c in result_cells]})
            files.write_text(directory / RESULTS_CSV, to_csv(result_cells))
    return result_cells


class _Estimate:
    """The time left for the pending trials, from the rounds this command has trained so far."""

    def __init__(self, pending: int, world_size: int):
        self.rounds = math.ceil(pending / world_size)
        self.world_size = world_size
        self.started = time.perf_counter()

    def remaining(self, start: int) -> float | None:
        """Seconds the rounds from pending trial `start` on will take, at the pace so far; None before a round has ended."""
        done = start // self.world_size
        if done == 0:
            return None
        return (time.perf_counter() - self.started) / done * (self.rounds - done)


@contextlib.contextmanager
def _opened(directory: Path, spec: dict[str, Any], workers: Workers) -> Iterator[None]:
    """The experiment directory made on every node; on rank 0 also locked, checked and given
    its plan. Every worker learns whether that went well before any trains."""
    with contextlib.ExitStack() as stack:
        workers.agreed(lambda: _open(directory, spec, workers, stack))
        yield


def _open(directory: Path, spec: dict[str, Any], workers: Workers, stack: contextlib.ExitStack) -> None:
    if workers.local_rank == 0:
        runs.create_dir(directory, "experiment directory", exist_ok=True)
    if workers.is_primary:
        stack.enter_context(files.locked(directory, "experiment directory"))
        check_dir(directory, spec)
        files.write_json(directory / PLAN_FILE, spec)


def after_stop(directory: Path, launch: str) -> str:
    """What to tell the user of an experiment stopped by a fault or an interrupt, checked to be true."""
    if (directory / PLAN_FILE).is_file():
        how = "the same command" if launch == "dropcli" else f"the same command ({launch} ...)"
        return f"the finished trials are kept; continue with {how} and --run-dir {directory}"
    return "no trial was started and nothing is kept; run the same command again"


def _recorded(record: Path) -> dict[str, dict[str, Any]]:
    """The trials rank 0 has recorded as done: name -> summary."""
    if not record.is_file():
        return {}
    remedy = "remove that line (its trial is then trained again) and rerun"
    entries = runs.read_jsonl(record, remedy)
    if not all(isinstance(entry.get("name"), str) and isinstance(entry.get("summary"), dict) for entry in entries):
        raise DropcliError(f"{record}: a line is not a trial's record (no name and summary); {remedy}")
    return {entry["name"]: entry["summary"] for entry in entries}


def _attempt(trial: Trial, datasets: "Datasets", directory: Path, listeners: list[Listener]) -> dict[str, Any]:
    """Train one trial (or take its finished run): {"name", "summary"}, or {"error", "exit_code"}."""
    try:
        summary = _done_summary(directory / trial.name) or _train(trial, datasets, directory, listeners)
        return {"name": trial.name, "summary": summary}
    except DropcliError as error:
        return {"name": trial.name, "error": f"{trial.name}: {error}", "exit_code": error.exit_code}


class Datasets:
    """The data each trial needs, on this worker's device; the files are read once per directory."""

    def __init__(self, workers: Workers):
        self.workers = workers
        self.raw: dict[tuple[Path, str], dict] = {}
        self.last: tuple[Any, tuple[torch.device, data.Splits]] | None = None

    def get(self, config) -> tuple[torch.device, data.Splits]:
        # The seed draws the validation split, so it matters only when there is one.
        key = (config.data, config.seed if config.data.val_split > 0 else None, config.device)
        if self.last is None or self.last[0] != key:
            self.last = None  # let the previous tensors go before making new ones
            device = self.workers.device(config.device)
            directory = data.find_or_fetch(config.data.root, config.data.name)
            if (directory, config.data.name) not in self.raw:
                self.raw[directory, config.data.name] = data.read_raw(directory, config.data.name)
            raw = self.raw[directory, config.data.name]
            self.last = key, (device, data.prepare(directory, raw, config.data, config.seed, device))
        return self.last[1]


def _done_summary(run_dir: Path) -> dict[str, Any] | None:
    """The summary of a trial that needs no more training: finished, or diverged (it would again)."""
    path = run_dir / runs.SUMMARY_FILE
    if path.is_file():
        summary = runs.read_summary(path)
        if summary["status"] in ("finished", "diverged"):
            return summary
    return None


def _train(trial: Trial, datasets: Datasets, directory: Path, listeners: list[Listener]) -> dict[str, Any]:
    device, dataset = datasets.get(trial.config)
    run_dir = directory / trial.name
    last = run_dir / runs.LAST_CHECKPOINT
    # An interrupted trial continues from its checkpoint; one that never finished an epoch
    # has nothing worth keeping and starts again in place.
    resume_from = checkpoints.load(last) if last.is_file() else None
    run_dir.mkdir(exist_ok=True)
    try:
        return train_run(trial.config, dataset, device, run_dir, listeners, resume_from=resume_from).summary
    except Diverged as error:
        for listener in listeners:
            listener.notice(f"{trial.name}: {error}; the other trials go on")
        return runs.read_summary(run_dir / runs.SUMMARY_FILE)
