"""A training run, and a comparison of several, each kept in its own run directory.

A run directory holds `config.yaml`, `metrics.jsonl` (a line per finished epoch),
`checkpoints/last.pt` and `checkpoints/best.pt`, and, once the run stops, `summary.json`
with its status: finished, interrupted or diverged.
"""

import dataclasses
import datetime
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import dropcli
from dropcli import checkpoints, runs
from dropcli.config import Config, changed_keys, check_models, load_config, replace, to_dict, to_yaml
from dropcli.data import FashionMNIST
from dropcli.errors import DropcliError
from dropcli.runtime import device_name
from dropcli.train import Callbacks, Diverged, EpochMetrics, TrainState, compile_model, evaluate, fit, new_state

# What --resume may change: how long to train, and where. Anything else would make a
# different run than the one the checkpoint belongs to.
RESUMABLE_KEYS = ("train.epochs", "device")


class RunCallbacks(Callbacks):
    """Training callbacks plus the start and end of each run."""

    def on_run_start(self, config: Config, run_dir: Path) -> None:
        pass

    def on_run_end(self, result: "RunResult") -> None:
        pass

    def on_notice(self, message: str) -> None:
        """Something the user should know that does not stop the run."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    history: list[EpochMetrics]
    summary: dict[str, Any]


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None for a single seed

    @classmethod
    def of(cls, values: list[float]) -> "Stat":
        return cls(statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class CompareRow:
    model: str
    seeds: int
    train_loss: Stat
    test_loss: Stat
    test_acc: Stat
    train_acc: Stat  # the training set in eval mode after the last epoch
    gap: Stat  # train_acc - test_acc, per seed
    seconds_per_epoch: Stat
    samples_per_s: Stat


def train_run(
    config: Config, data: FashionMNIST, device: torch.device, run_dir: Path, callbacks: RunCallbacks,
    resume_from: dict[str, Any] | None = None,
) -> RunResult:  # fmt: skip
    """Train one model as `config` says, or continue the checkpoint `resume_from`, in `run_dir`."""
    state = new_state(config, device)
    if resume_from is not None:
        checkpoints.restore(state, resume_from)
    if config.train.compile:
        state.compiled, problem = compile_model(state.model, data.train.X[:2])
        if problem:
            callbacks.on_notice(problem)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    runs.write_text_atomic(run_dir / "config.yaml", to_yaml(config))
    # From the checkpoint's own history: a kill between checkpoint and metrics line loses nothing.
    runs.write_text_atomic(run_dir / "metrics.jsonl", "".join(runs.jsonl_line(dataclasses.asdict(m)) for m in state.history))
    run_files = _RunFiles(run_dir, config, state, monitor_of(config, data), callbacks, resume_from)
    callbacks.on_run_start(config, run_dir)
    started = time.perf_counter()
    try:
        fit(state, data, config, run_files)
    except (Diverged, KeyboardInterrupt) as stop:
        status, reason = ("diverged", str(stop)) if isinstance(stop, Diverged) else ("interrupted", "stopped by Ctrl-C (SIGINT)")
        summary = _summary(config, data, device, state, run_files.best, time.perf_counter() - started, status, reason)
        runs.write_json_atomic(run_dir / "summary.json", summary)
        raise
    summary = _summary(config, data, device, state, run_files.best, time.perf_counter() - started, "finished")
    # The training set in eval mode: with the test numbers, the generalisation gap.
    train_loss, train_acc = evaluate(state.runner, data.train, precision=config.train.precision)
    summary["train_eval"] = {"loss": train_loss, "acc": train_acc}
    runs.write_json_atomic(run_dir / "summary.json", summary)
    result = RunResult(run_dir, state.history, summary)
    callbacks.on_run_end(result)
    return result


def prepare_resume(run_dir: Path, overrides: list[str], flags: dict[str, tuple[str, Any]]) -> tuple[Config, dict[str, Any]]:
    """The config and checkpoint to continue `run_dir` with; only RESUMABLE_KEYS may change."""
    path = run_dir / "checkpoints" / "last.pt"
    if not run_dir.is_dir():
        raise DropcliError(f"--resume {run_dir}: no such run directory")
    if not path.is_file():
        raise DropcliError(f"--resume {run_dir}: no checkpoints/last.pt (the run stopped before its first epoch ended); start a new run")
    payload = checkpoints.load(path)
    saved = load_config(base=payload["config"])
    config = load_config(base=payload["config"], overrides=overrides, flags=flags)
    changed = [key for key in changed_keys(saved, config) if key not in RESUMABLE_KEYS]
    if changed:
        raise DropcliError(
            f"--resume {run_dir}: cannot change {', '.join(changed)} of an existing run "
            f"(only {' and '.join(RESUMABLE_KEYS)}); start a new run for other settings"
        )
    if config.train.epochs <= payload["epoch"]:
        raise DropcliError(
            f"--resume {run_dir}: the run has finished {payload['epoch']} of {config.train.epochs} epochs; "
            f"to train on, raise the total, e.g. --set train.epochs={payload['epoch'] + 10}"
        )
    return config, payload


def monitor_of(config: Config, data: FashionMNIST) -> str:
    """The metric that picks checkpoints/best.pt."""
    if config.train.monitor != "auto":
        return config.train.monitor
    return "val_acc" if data.val is not None else "test_acc"


def compare(
    config: Config, models: list[str], seeds: int, data: FashionMNIST, device: torch.device,
    compare_dir: Path, callbacks: RunCallbacks,
) -> list[CompareRow]:  # fmt: skip
    """Train each model on the same config, seeds and data order; write `compare.json`."""
    check_models(models)
    configs = {model: replace(config, "model.kind", model) for model in models}
    results: dict[str, list[RunResult]] = {model: [] for model in models}
    for seed in range(config.seed, config.seed + seeds):
        for model in models:
            run_config = replace(configs[model], "seed", seed)
            run_dir = runs.create_dir(compare_dir / f"{model}-seed{seed}")
            results[model].append(train_run(run_config, data, device, run_dir, callbacks))
    rows = [_compare_row(model, model_results) for model, model_results in results.items()]
    runs.write_json_atomic(
        compare_dir / "compare.json",
        {
            "config": to_dict(config),
            "models": models,
            "seeds": list(range(config.seed, config.seed + seeds)),
            "rows": [dataclasses.asdict(row) for row in rows],
            "runs": {model: [r.run_dir.name for r in rs] for model, rs in results.items()},
        },
    )
    return rows


def _compare_row(model: str, results: list[RunResult]) -> CompareRow:
    finals = [result.history[-1] for result in results]
    return CompareRow(
        model=model,
        seeds=len(results),
        train_loss=Stat.of([m.train_loss for m in finals]),
        test_loss=Stat.of([m.test_loss for m in finals]),
        test_acc=Stat.of([m.test_acc for m in finals]),
        train_acc=Stat.of([r.summary["train_eval"]["acc"] for r in results]),
        gap=Stat.of([r.summary["train_eval"]["acc"] - m.test_acc for r, m in zip(results, finals)]),
        seconds_per_epoch=Stat.of([r.summary["seconds_per_epoch"] for r in results]),
        samples_per_s=Stat.of([r.summary["samples_per_s"] for r in results]),
    )


def _summary(
    config: Config, data: FashionMNIST, device: torch.device, state: TrainState, best: dict[str, Any] | None,
    wall_seconds: float, status: str, reason: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    history = state.history
    return {
        "status": status,
        "reason": reason,
        "name": config.name,
        "model": config.model.kind,
        "seed": config.seed,
        "epochs": len(history),
        "epochs_planned": config.train.epochs,
        "final": dataclasses.asdict(history[-1]) if history else None,
        "best": best,
        "seconds": sum(m.seconds for m in history),  # the epochs themselves
        "wall_seconds": wall_seconds,  # this session of the run, set-up included
        "seconds_per_epoch": statistics.mean(m.seconds for m in history) if history else None,
        "samples_per_s": statistics.mean(m.samples_per_s for m in history) if history else None,
        "device": str(device),
        "device_name": device_name(device),
        "data": {"source": str(data.source), "train": len(data.train), "test": len(data.test),
                 "val": len(data.val) if data.val is not None else 0},
        "versions": {"dropcli": dropcli.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "stopped_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


class _RunFiles(Callbacks):
    """After each epoch: checkpoints (last, and best when it improves), then the metrics line."""

    def __init__(self, run_dir: Path, config: Config, state: TrainState, monitor: str, inner: Callbacks, resumed: dict | None):
        self.run_dir, self.config, self.state, self.monitor, self.inner = run_dir, config, state, monitor, inner
        self.best: dict[str, Any] | None = resumed["best"] if resumed else None

    def on_epoch_start(self, epoch: int, n_batches: int) -> None:
        self.inner.on_epoch_start(epoch, n_batches)

    def on_progress(self, batches_done: int, loss: float) -> None:
        self.inner.on_progress(batches_done, loss)

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        value = getattr(metrics, self.monitor)
        improved = self.best is None or (value < self.best["value"] if self.monitor.endswith("loss") else value > self.best["value"])
        if improved:
            self.best = {"metric": self.monitor, "value": value, "epoch": metrics.epoch}
        folder = self.run_dir / "checkpoints"
        checkpoints.save(folder / "last.pt", self.state, self.config, self.best)
        if improved:
            checkpoints.save(folder / "best.pt", self.state, self.config, self.best)
        runs.append_jsonl(self.run_dir / "metrics.jsonl", dataclasses.asdict(metrics))
        self.inner.on_epoch_end(metrics)
