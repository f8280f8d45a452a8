"""One training run in its own directory.

A run directory holds `config.yaml`, `metrics.jsonl` (a line per finished epoch),
`checkpoints/last.pt` and `checkpoints/best.pt`, and, once the run stops, `summary.json`
with its status: finished, interrupted or diverged.
"""

import contextlib
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
from dropcli import checkpoints, files
from dropcli.config import Config, changed_keys, load_config, to_yaml
from dropcli.data import FashionMNIST
from dropcli.errors import DropcliError
from dropcli.runtime import device_name, interrupts_deferred, signal_name
from dropcli.schedules import first_changed_epoch
from dropcli.train import ONE_PROCESS, Diverged, EpochMetrics, TrainState, compile_model, evaluate, fit, new_state
from dropcli.workers import Workers

# What --resume may change: how long to train, where, where the data now lies (it is checked
# as on every load), and the engine (both keep the same state: weights, optimizer, generators).
# Anything else would make a different run than the checkpoint's.
RESUMABLE_KEYS = ("train.epochs", "device", "data.root", "train.engine")


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    history: list[EpochMetrics]
    summary: dict[str, Any]


class Reporter:
    """What a run tells its caller as it goes. This one says nothing; report.py's shows it all."""

    def run_started(self, config: Config, run_dir: Path) -> None:
        pass

    def progress(self, epoch: int, batches_done: int, n_batches: int, loss: float | None) -> None:
        pass

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        pass

    def run_finished(self, result: RunResult) -> None:
        pass

    def notice(self, message: str) -> None:
        """Something the user should know that does not stop the run."""


def train_run(
    config: Config, data: FashionMNIST, device: torch.device, run_dir: Path, reporter: Reporter,
    resume_from: dict[str, Any] | None = None, workers: Workers = ONE_PROCESS,
) -> RunResult:  # fmt: skip
    """Train one model as `config` says, or continue the checkpoint `resume_from`, in `run_dir`.

    `run_dir` is locked while the run trains: a second process that tries to write into it
    (a second --resume, say) is refused. Under torchrun (DDP) all workers train and only rank 0
    writes the run directory.
    """
    if not workers.is_primary:
        return _train_run(config, data, device, run_dir, reporter, resume_from, workers)
    with files.locked(run_dir):
        for directory in (run_dir, run_dir / "checkpoints"):
            files.remove_temporaries(directory)  # what a writer killed mid-write left
        return _train_run(config, data, device, run_dir, reporter, resume_from, workers)


def _train_run(
    config: Config, data: FashionMNIST, device: torch.device, run_dir: Path, reporter: Reporter,
    resume_from: dict[str, Any] | None, workers: Workers,
) -> RunResult:  # fmt: skip
    state = new_state(config, device, workers)
    best = None
    if resume_from is not None:
        checkpoints.restore(state, resume_from)
        best = resume_from["best"]
    if config.train.compile:
        state.compiled, problem = compile_model(state.model, data.train.X[:2])
        if problem:
            reporter.notice(problem)
    primary = workers.is_primary
    if primary:
        _start_files(run_dir, config, state)
    monitor, saved = monitor_of(config, data), state.epoch  # saved: the epochs on disk
    board = _board(run_dir, config) if primary and config.metrics.tensorboard else None
    progress = reporter.progress if board is None else _both(reporter.progress, board.batch)
    reporter.run_started(config, run_dir)
    started = time.perf_counter()
    try:
        for metrics in fit(state, data, config, progress):
            improved = _improves(metrics, monitor, best)
            if improved:
                best = {"metric": monitor, "value": getattr(metrics, monitor), "epoch": metrics.epoch}
            _save_epoch(run_dir, state, config, metrics, best, improved)
            saved = metrics.epoch
            reporter.epoch_finished(metrics)
            if board is not None:
                board.epoch(metrics)
            if _no_longer_improving(config, best, metrics.epoch):
                break  # early stopping: the rest of fit() is never run
    except (Diverged, KeyboardInterrupt, files.WriteError) as stop:
        if primary:
            summary = _summary(config, data, device, state.history[:saved], best, time.perf_counter() - started, *_stopped(stop))
            with contextlib.suppress(files.WriteError):  # a full disk may refuse the summary too
                files.write_json(run_dir / "summary.json", summary)
        if board is not None:
            board.close()
        raise
    summary = _finished_summary(config, data, device, state, run_dir, best, time.perf_counter() - started)
    if board is not None:
        board.finish(summary)
        board.close()
    result = RunResult(run_dir, state.history, summary)
    reporter.run_finished(result)
    return result


def _save_epoch(run_dir: Path, state: TrainState, config: Config, metrics: EpochMetrics, best: dict, improved: bool) -> None:
    """The epoch's checkpoints and metrics line, written together (rank 0 writes; all gather)."""
    workers = state.workers
    worker_rngs = workers.gather(checkpoints.rng_state(state)) if workers.world_size > 1 else None
    if not workers.is_primary:
        return
    with interrupts_deferred():  # Ctrl-C waits until the epoch's files agree
        if improved:  # best.pt first: if last.pt then fails, the epoch is redone identically
            checkpoints.save(run_dir / "checkpoints" / "best.pt", state, config, best, worker_rngs)
        checkpoints.save(run_dir / "checkpoints" / "last.pt", state, config, best, worker_rngs)
        files.append_line(run_dir / "metrics.jsonl", files.json_line(dataclasses.asdict(metrics)))


def _finished_summary(
    config: Config, data: FashionMNIST, device: torch.device, state: TrainState, run_dir: Path, best: dict,
    wall_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """summary.json of a finished run, with the training set scored in eval mode (for the gap)."""
    workers = state.workers
    summary = _summary(config, data, device, state.history, best, wall_seconds, "finished")
    if config.train.early_stopping is not None:
        # What is reported is the best checkpoint, chosen on the validation set.
        summary["final"] = dataclasses.asdict(state.history[best["epoch"] - 1])
        summary["reason"] = f"early stopping: reported epoch {best['epoch']}, the best {best['metric']}; trained {state.epoch}"
        _load_best_weights(state, run_dir, workers)
    train_loss, train_acc = evaluate(state.scorer, data.train, precision=config.train.precision, workers=workers)
    summary["train_eval"] = {"loss": train_loss, "acc": train_acc}
    summary["workers"] = workers.world_size
    if workers.is_primary:
        files.write_json(run_dir / "summary.json", summary)
    return summary


def _board(run_dir: Path, config: Config):
    from dropcli.tensorboard import Board  # an optional extra: imported only when asked for

    return Board(run_dir, config)


def _both(first, second):
    def call(*args):
        first(*args)
        second(*args)

    return call


def _no_longer_improving(config: Config, best: dict[str, Any], epoch: int) -> bool:
    patience = config.train.early_stopping
    return patience is not None and epoch - best["epoch"] >= patience


def _load_best_weights(state: TrainState, run_dir: Path, workers: Workers) -> None:
    """Put checkpoints/best.pt's weights into the model, on every worker (rank 0 has the file)."""
    weights = checkpoints.load(run_dir / "checkpoints" / "best.pt")["model"] if workers.is_primary else None
    state.model.load_state_dict(workers.broadcast(weights))


def _start_files(run_dir: Path, config: Config, state: TrainState) -> None:
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    files.write_text(run_dir / "config.yaml", to_yaml(config))
    # metrics.jsonl is rewritten from the checkpoint's own history, so a kill between the
    # checkpoint and the metrics line below loses nothing.
    files.write_text(run_dir / "metrics.jsonl", "".join(files.json_line(dataclasses.asdict(m)) for m in state.history))


def _stopped(stop: BaseException) -> tuple[str, str]:
    """(status, reason) of a run that stopped early."""
    if isinstance(stop, Diverged):
        return "diverged", str(stop)
    if isinstance(stop, files.WriteError):
        return "interrupted", str(stop)
    return "interrupted", f"stopped by {signal_name(stop)}"


def _improves(metrics: EpochMetrics, monitor: str, best: dict[str, Any] | None) -> bool:
    value = getattr(metrics, monitor)
    if best is None:
        return True
    return value < best["value"] if monitor.endswith("loss") else value > best["value"]


def prepare_resume(run_dir: Path, overrides: list[str], flags: dict[str, tuple[str, Any]]) -> tuple[Config, dict[str, Any]]:
    """The config and checkpoint to continue `run_dir` with; only RESUMABLE_KEYS may change."""
    path = run_dir / "checkpoints" / "last.pt"
    if not run_dir.is_dir():
        raise DropcliError(f"--resume {run_dir}: no such run directory")
    if not path.is_file():
        raise DropcliError(f"--resume {run_dir}: no checkpoints/last.pt (the run stopped before its first epoch ended); start a new run")
    try:
        payload = checkpoints.load(path)
    except DropcliError as error:
        raise DropcliError(f"{error}; a run continues only from last.pt: train it again with dropcli train -c {run_dir / 'config.yaml'}") from None
    saved = load_config(base=payload["config"])
    config = load_config(base=payload["config"], overrides=overrides, flags=flags)
    changed = [key for key in changed_keys(saved, config) if key not in RESUMABLE_KEYS]
    if changed:
        raise DropcliError(
            f"--resume {run_dir}: cannot change {', '.join(changed)} of an existing run "
            f"(only {', '.join(RESUMABLE_KEYS)}); start a new run for other settings"
        )
    if payload["best"] and _no_longer_improving(config, payload["best"], payload["epoch"]):
        raise DropcliError(
            f"--resume {run_dir}: the run stopped early at epoch {payload['epoch']}, {config.train.early_stopping} epochs "
            f"after its best (epoch {payload['best']['epoch']}); start a new run to train it differently"
        )
    _check_schedule(run_dir, saved, config, payload["epoch"])
    if config.train.epochs <= payload["epoch"]:
        raise DropcliError(
            f"--resume {run_dir}: the run has finished {payload['epoch']} of {config.train.epochs} epochs; "
            f"to train on, raise the total, e.g. --set train.epochs={payload['epoch'] + 10}"
        )
    return config, payload


def _check_schedule(run_dir: Path, saved: Config, config: Config, done: int) -> None:
    """Refuse a new train.epochs that would have given the epochs already trained other learning
    rates: the result would be neither the planned run nor one planned for the new total."""
    old, new = saved.train.epochs, config.train.epochs
    changed = first_changed_epoch(saved.optim, old, new, done) if new != old else None
    if changed is not None:
        raise DropcliError(
            f"--resume {run_dir}: the {saved.optim.schedule} learning-rate schedule was planned for {old} epochs; "
            f"with train.epochs={new} epoch {changed}, already trained, would have had another rate, so the result would be "
            f"neither a {old}- nor a {new}-epoch run; train a new run instead: dropcli train -c {run_dir / 'config.yaml'} "
            f"--set train.epochs={new}"
        )


def monitor_of(config: Config, data: FashionMNIST) -> str:
    """The metric that picks checkpoints/best.pt."""
    if config.train.monitor != "auto":
        return config.train.monitor
    return "val_acc" if data.val is not None else "test_acc"


def _summary(
    config: Config, data: FashionMNIST, device: torch.device, history: list[EpochMetrics], best: dict[str, Any] | None,
    wall_seconds: float, status: str, reason: str | None = None,
) -> dict[str, Any]:  # fmt: skip
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
