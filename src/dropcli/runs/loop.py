"""One training run, fresh or resumed, written into its run directory: the epoch loop.

Each epoch: train and evaluate (training/epoch.py), decide the best epoch and early stopping, write the
checkpoints and the metrics line, tell the listeners. The directory's files are named in runs/__init__.py.
"""

import contextlib
import dataclasses
import datetime
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

import dropcli
from dropcli import files, runs
from dropcli.config import Config, replace, to_yaml
from dropcli.config.vocabulary import higher_is_better
from dropcli.data import Splits
from dropcli.parallel.workers import ONE_PROCESS, Workers
from dropcli.runs import checkpoints
from dropcli.runs.listeners import Listener, StopRun
from dropcli.runtime import device_name, interrupts_deferred, signal_name
from dropcli.training import averaging
from dropcli.training.epoch import Diverged, evaluate, run_epoch
from dropcli.training.precision import Choice, choose_precision
from dropcli.training.records import EpochMetrics, RunResult, TrainState
from dropcli.training.state import compile_model, new_state
from dropcli.training.stats import recording


def train_run(
    config: Config,
    data: Splits,
    device: torch.device,
    run_dir: Path,
    listeners: Sequence[Listener] = (),
    resume_from: dict[str, Any] | None = None,
    workers: Workers = ONE_PROCESS,
) -> RunResult:
    """Train one model as `config` says, or continue the checkpoint `resume_from`, in `run_dir`.

    `run_dir` is locked while the run trains: a second process that tries to write into it
    (a second --resume, say) is refused. Under torchrun (DDP) all workers train and only rank 0
    writes the run directory and has listeners. train.precision "auto" is resolved here (see
    training/precision.py): the run's config.yaml and checkpoints hold the precision used, and
    summary.json's "precision" says what was asked, what was used and why.
    """
    config, precision = _resolved_precision(config, device, resume_from, workers)
    with _held(run_dir, workers):
        state, best = _start(config, data, device, resume_from, workers, listeners)
        writer = RunFiles(run_dir, workers, config, state)
        listeners = [*listeners, *_optional_listeners(config, run_dir, workers)]  # opened once nothing before the loop can fail
        monitor, summary, started = monitor_of(config, data), None, time.perf_counter()
        for listener in listeners:
            listener.run_started(config, run_dir)
        try:
            with recording(state.model, config.metrics.activation_stats) as stats:
                for epoch in range(state.epoch + 1, config.train.epochs + 1):
                    metrics = run_epoch(state, data, config, epoch, _progress(listeners), stats)
                    state.history.append(metrics)
                    improved = _improves(metrics, monitor, best)
                    if improved:
                        best = {"metric": monitor, "value": getattr(metrics, monitor), "epoch": epoch}
                    writer.save_epoch(state, best, improved)
                    _tell_epoch(listeners, metrics)
                    if stops_early(config, best, epoch):
                        break  # early stopping: the remaining epochs are never trained
            summary = _finished_summary(config, data, device, state, writer, best, time.perf_counter() - started, precision)
        except (Diverged, KeyboardInterrupt, files.WriteError, StopRun) as stop:
            kept = state.history[: writer.saved]
            summary = _summary(config, data, device, kept, best, time.perf_counter() - started, *_stopped(stop))
            summary["precision"] = dataclasses.asdict(precision)
            with contextlib.suppress(files.WriteError):  # a full disk may refuse the summary too
                writer.write_summary(summary)
            raise
        finally:
            result = RunResult(run_dir, state.history[: writer.saved], summary)
            for listener in listeners:
                listener.run_finished(result)
    return result


def _resolved_precision(
    config: Config, device: torch.device, resume_from: dict[str, Any] | None, workers: Workers
) -> tuple[Config, Choice]:
    """`config` with train.precision as the run uses it, and the choice (asked, used, why).
    Under torchrun rank 0 chooses for all: workers timing apart could choose apart."""
    resumed = resume_from["config"]["train"]["precision"] if resume_from is not None else None
    choice = workers.on_primary(lambda: choose_precision(config, device, resumed))
    return replace(config, "train.precision", choice.used), choice


def _start(
    config: Config,
    data: Splits,
    device: torch.device,
    resume_from: dict[str, Any] | None,
    workers: Workers,
    listeners: Sequence[Listener],
) -> tuple[TrainState, dict[str, Any] | None]:
    """The state to train (fresh, or the checkpoint's) and the best epoch so far."""
    state = new_state(config, device, workers)
    if resume_from is not None:
        checkpoints.restore(state, resume_from)
    if config.train.compile:
        compiled, problem = compile_model(state.model, data.train.X[:2])
        state.use_compiled(compiled)
        for listener in listeners if problem else ():
            listener.notice(problem)
    return state, _kept_best(resume_from, monitor_of(config, data))


def _kept_best(resume_from: dict[str, Any] | None, monitor: str | None) -> dict[str, Any] | None:
    """The resumed checkpoint's best epoch, unless it was chosen by another metric: a run saved
    before the best epoch was chosen on validation only may hold one chosen by test accuracy."""
    best = None if resume_from is None else resume_from["best"]
    return best if best is not None and best["metric"] == monitor else None


def _optional_listeners(config: Config, run_dir: Path, workers: Workers) -> list[Listener]:
    if not (config.metrics.tensorboard and workers.is_primary):
        return []
    from dropcli.runs.tensorboard import Board  # an optional extra: imported only when asked for

    return [Board(run_dir, config)]


def _tell_epoch(listeners: Sequence[Listener], metrics: EpochMetrics) -> None:
    """Every listener hears the saved epoch; then a StopRun one of them raised (tune's pruner) ends the run."""
    stop = None
    for listener in listeners:
        try:
            listener.epoch_finished(metrics)
        except StopRun as raised:
            stop = stop or raised
    if stop is not None:
        raise stop


def _progress(listeners: Sequence[Listener]) -> Callable[[int, int, int, float | None], None]:
    def tell(epoch: int, batches_done: int, n_batches: int, loss: float | None) -> None:
        for listener in listeners:
            listener.batch_progress(epoch, batches_done, n_batches, loss)

    return tell


def _improves(metrics: EpochMetrics, monitor: str | None, best: dict[str, Any] | None) -> bool:
    if monitor is None:
        return False  # no validation split: no epoch is "best", none is chosen by its test score
    value = getattr(metrics, monitor)
    if best is None:
        return True
    return value > best["value"] if higher_is_better(monitor) else value < best["value"]


def stops_early(config: Config, best: dict[str, Any], epoch: int) -> bool:
    """train.early_stopping: whether `epoch` is that many epochs past the best one."""
    patience = config.train.early_stopping
    return patience is not None and epoch - best["epoch"] >= patience


def monitor_of(config: Config, data: Splits) -> str | None:
    """The validation metric that picks checkpoints/best.pt; None without a validation split (no
    best.pt: picking an epoch by its test score would select on the test set)."""
    if data.val is None:
        return None
    return "val_acc" if config.train.monitor == "auto" else config.train.monitor


@contextlib.contextmanager
def _held(run_dir: Path, workers: Workers) -> Iterator[None]:
    """Rank 0 locks `run_dir` for the run, and first removes what a writer killed mid-write left."""
    if not workers.is_primary:
        yield
        return
    with files.locked(run_dir):
        for directory in (run_dir, run_dir / runs.CHECKPOINT_DIR):
            files.remove_temporaries(directory)
        yield


class RunFiles:
    """A run's files as training goes: rank 0 writes them; every worker takes part in gathering
    what they hold (each worker's mask generator). `saved` is the number of epochs on disk."""

    def __init__(self, run_dir: Path, workers: Workers, config: Config, state: TrainState):
        self.run_dir, self.workers, self.config = run_dir, workers, config
        self.saved = state.epoch
        if workers.is_primary:
            (run_dir / runs.CHECKPOINT_DIR).mkdir(exist_ok=True)
            files.write_text(run_dir / runs.CONFIG_FILE, to_yaml(config))
            # metrics.jsonl is rewritten from the checkpoint's own history, so a kill between the
            # checkpoint and the metrics line of an epoch loses nothing.
            files.write_text(run_dir / runs.METRICS_FILE, "".join(_json_line(m) for m in state.history))

    def save_epoch(self, state: TrainState, best: dict[str, Any], improved: bool) -> None:
        """The last epoch's checkpoints and metrics line, written together."""
        worker_rngs = self.workers.gather(checkpoints.rng_state(state)) if self.workers.world_size > 1 else None
        if self.workers.is_primary:
            with interrupts_deferred():  # Ctrl-C waits until the epoch's files agree
                if improved:  # best.pt first: if last.pt then fails, the epoch is redone identically
                    checkpoints.save(self.run_dir / runs.BEST_CHECKPOINT, state, self.config, best, worker_rngs)
                checkpoints.save(self.run_dir / runs.LAST_CHECKPOINT, state, self.config, best, worker_rngs)
                files.append_line(self.run_dir / runs.METRICS_FILE, _json_line(state.history[-1]))
                self.saved = state.epoch  # before a deferred Ctrl-C is raised: the epoch is on disk
        else:
            self.saved = state.epoch

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.workers.is_primary:
            files.write_json(self.run_dir / runs.SUMMARY_FILE, summary)

    def best_weights(self) -> dict[str, torch.Tensor]:
        """checkpoints/best.pt's weights, on every worker (rank 0 has the file)."""
        weights = checkpoints.load(self.run_dir / runs.BEST_CHECKPOINT)["model"] if self.workers.is_primary else None
        return self.workers.broadcast(weights)


def _json_line(metrics: EpochMetrics) -> str:
    return files.json_line(_record(metrics))


def _record(metrics: EpochMetrics) -> dict[str, Any]:
    """An epoch as metrics.jsonl and summary.json write it: flip_acc only with metrics.flip_average,
    so other runs' records are as before."""
    record = dataclasses.asdict(metrics)
    if record["flip_acc"] is None:
        del record["flip_acc"]
    return record


def _finished_summary(
    config: Config,
    data: Splits,
    device: torch.device,
    state: TrainState,
    writer: RunFiles,
    best: dict[str, Any],
    wall_seconds: float,
    precision: Choice,
) -> dict[str, Any]:
    """summary.json of a finished run, with the training set scored in eval mode (for the gap)."""
    summary = _summary(config, data, device, state.history, best, wall_seconds, "finished")
    summary["precision"] = dataclasses.asdict(precision)
    if config.train.early_stopping is not None:
        # What is reported is the best checkpoint, chosen on the validation set.
        summary["final"] = _record(state.history[best["epoch"] - 1])
        summary["reason"] = f"early stopping: reported epoch {best['epoch']}, the best {best['metric']}; trained {state.epoch}"
        averaging.model_of_run(state).load_state_dict(writer.best_weights())
    scored = averaging.scoring_module(state)
    train_loss, train_acc = evaluate(scored, data.train, precision=config.train.precision, workers=state.workers)
    summary["train_eval"] = {"loss": train_loss, "acc": train_acc}
    summary["workers"] = state.workers.world_size
    writer.write_summary(summary)
    return summary


def _selection(config: Config, data: Splits) -> str:
    """How the run's best epoch (checkpoints/best.pt) is chosen, in words, for summary.json."""
    monitor = monitor_of(config, data)
    if monitor is None:
        return "none: no validation split, so no best epoch (choosing one by test accuracy would select on the test set)"
    return f"by {monitor}, on the validation set"


def _stopped(stop: BaseException) -> tuple[str, str]:
    """(status, reason) of a run that stopped early."""
    if isinstance(stop, Diverged):
        return "diverged", str(stop)
    if isinstance(stop, files.WriteError):
        return "interrupted", str(stop)
    if isinstance(stop, StopRun):  # a listener ended the run after a saved epoch (tune's pruner)
        return stop.status, str(stop)
    return "interrupted", f"stopped by {signal_name(stop)}"


def _summary(
    config: Config,
    data: Splits,
    device: torch.device,
    history: list[EpochMetrics],
    best: dict[str, Any] | None,
    wall_seconds: float,
    status: str,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "name": config.name,
        "model": config.model.kind,
        "seed": config.seed,
        "epochs": len(history),
        "epochs_planned": config.train.epochs,
        "final": _record(history[-1]) if history else None,
        "best": best,
        "selection": _selection(config, data),
        "seconds": sum(m.seconds for m in history),  # the epochs themselves
        "wall_seconds": wall_seconds,  # this session of the run, set-up included
        "seconds_per_epoch": statistics.mean(m.seconds for m in history) if history else None,
        "samples_per_s": statistics.mean(m.samples_per_s for m in history) if history else None,
        "device": str(device),
        "device_name": device_name(device),
        "data": {
            "source": str(data.source),
            "train": len(data.train),
            "test": len(data.test) if data.test is not None else 0,
            "val": len(data.val) if data.val is not None else 0,
        },
        "versions": {"dropcli": dropcli.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "stopped_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
