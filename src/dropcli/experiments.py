"""A training run, and a comparison of several, each kept in its own run directory."""

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
from dropcli import runs
from dropcli.config import Config, check_models, replace, to_yaml
from dropcli.data import FashionMNIST
from dropcli.models import build_model
from dropcli.runtime import device_name, seed_everything
from dropcli.train import Callbacks, EpochMetrics, fit


class RunCallbacks(Callbacks):
    """Training callbacks plus the start and end of each run."""

    def on_run_start(self, config: Config, run_dir: Path) -> None:
        pass

    def on_run_end(self, result: "RunResult") -> None:
        pass


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
    seconds_per_epoch: Stat
    samples_per_s: Stat


def train_run(config: Config, data: FashionMNIST, device: torch.device, run_dir: Path, callbacks: RunCallbacks) -> RunResult:
    """Train one model as `config` says, writing config, per-epoch metrics and summary to `run_dir`."""
    runs.write_text_atomic(run_dir / "config.yaml", to_yaml(config))
    callbacks.on_run_start(config, run_dir)
    seed_everything(config.seed)
    model = build_model(config.model).to(device)
    started = time.perf_counter()
    history = fit(model, data, config, _MetricsFile(run_dir / "metrics.jsonl", callbacks))
    summary = _summary(config, data, device, history, wall_seconds=time.perf_counter() - started)
    runs.write_json_atomic(run_dir / "summary.json", summary)
    result = RunResult(run_dir, history, summary)
    callbacks.on_run_end(result)
    return result


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
            "config": dataclasses.asdict(config),
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
        seconds_per_epoch=Stat.of([r.summary["seconds_per_epoch"] for r in results]),
        samples_per_s=Stat.of([r.summary["samples_per_s"] for r in results]),
    )


def _summary(
    config: Config, data: FashionMNIST, device: torch.device, history: list[EpochMetrics], wall_seconds: float
) -> dict[str, Any]:
    final = history[-1]
    best = max(history, key=lambda m: m.test_acc)
    return {
        "status": "finished",
        "name": config.name,
        "model": config.model.kind,
        "seed": config.seed,
        "epochs": len(history),
        "final": dataclasses.asdict(final),
        "best_test_acc": best.test_acc,
        "best_epoch": best.epoch,
        "seconds": sum(m.seconds for m in history),  # the epochs themselves
        "wall_seconds": wall_seconds,  # also the one-off set-up (optimizer, first kernels)
        "seconds_per_epoch": statistics.mean(m.seconds for m in history),
        "samples_per_s": statistics.mean(m.samples_per_s for m in history),
        "device": str(device),
        "device_name": device_name(device),
        "data": {"source": str(data.source), "train": len(data.train), "test": len(data.test),
                 "val": len(data.val) if data.val is not None else 0},
        "versions": {"dropcli": dropcli.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


class _MetricsFile(Callbacks):
    """Appends each finished epoch to metrics.jsonl, then passes every call on."""

    def __init__(self, path: Path, inner: Callbacks):
        self.path = path
        self.inner = inner

    def on_epoch_start(self, epoch: int, n_batches: int) -> None:
        self.inner.on_epoch_start(epoch, n_batches)

    def on_progress(self, batches_done: int, loss: float) -> None:
        self.inner.on_progress(batches_done, loss)

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        runs.append_jsonl(self.path, dataclasses.asdict(metrics))
        self.inner.on_epoch_end(metrics)
