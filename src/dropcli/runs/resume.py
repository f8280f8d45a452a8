"""--resume: the config and checkpoint a run continues from, and what it may not change."""

from pathlib import Path
from typing import Any

from dropcli import runs
from dropcli.config import Config, changed_keys, load_config
from dropcli.errors import DropcliError
from dropcli.runs import checkpoints
from dropcli.runs.loop import stops_early
from dropcli.runtime import count_text
from dropcli.training import averaging
from dropcli.training.schedules import first_changed_epoch

# What --resume may change: how long to train, where, where the data now lies (it is checked
# as on every load), and the engine (both keep the same state: weights, optimizer, generators).
# Anything else would make a different run than the checkpoint's.
RESUMABLE_KEYS = ("train.epochs", "device", "data.root", "train.engine")


def prepare_resume(run_dir: Path, overrides: list[str], flags: dict[str, tuple[str, Any]]) -> tuple[Config, dict[str, Any]]:
    """The config and checkpoint to continue `run_dir` with; only RESUMABLE_KEYS may change."""
    path = run_dir / runs.LAST_CHECKPOINT
    if run_dir.is_file():
        raise DropcliError(f"--resume {run_dir}: a file; --resume takes the run's directory, e.g. --resume {_run_of(run_dir)}")
    if not run_dir.is_dir():
        raise DropcliError(f"--resume {run_dir}: no such run directory")
    if not path.is_file():
        if not (run_dir / runs.CONFIG_FILE).is_file():
            raise DropcliError(
                f"--resume {run_dir}: not a run directory (no {runs.CONFIG_FILE}); an experiment continues when its command "
                "is run again, one of its trials with --resume DIR/TRIAL"
            )
        raise DropcliError(
            f"--resume {run_dir}: no {runs.LAST_CHECKPOINT} (the run stopped before its first epoch ended); start a new run"
        )
    try:
        payload = checkpoints.load(path)
    except DropcliError as error:
        raise DropcliError(
            f"{error}; a run continues only from last.pt: train it again with dropcli train -c {run_dir / runs.CONFIG_FILE}"
        ) from None
    saved = load_config(base=payload["config"])
    config = load_config(base=payload["config"], overrides=overrides, flags=flags)
    changed = [key for key in changed_keys(saved, config) if key not in RESUMABLE_KEYS]
    if changed:
        raise DropcliError(
            f"--resume {run_dir}: cannot change {', '.join(changed)} of an existing run "
            f"(only {', '.join(RESUMABLE_KEYS)}); start a new run for other settings"
        )
    if payload["best"] and stops_early(config, payload["best"], payload["epoch"]):
        raise DropcliError(
            f"--resume {run_dir}: the run stopped early at epoch {payload['epoch']}, {count_text(config.train.early_stopping, 'epoch')} "
            f"after its best (epoch {payload['best']['epoch']}); start a new run to train it differently"
        )
    _check_schedule(run_dir, saved, config, payload["epoch"])
    _check_average(run_dir, saved, config, payload["epoch"])
    if config.train.epochs <= payload["epoch"]:
        done = (
            f"finished all {count_text(payload['epoch'], 'epoch')}"
            if config.train.epochs == payload["epoch"]
            else f"already trained {count_text(payload['epoch'], 'epoch')}, more than train.epochs {config.train.epochs}"
        )
        raise DropcliError(
            f"--resume {run_dir}: the run has {done}; to train on, raise the total, e.g. --set train.epochs={payload['epoch'] + 10}"
        )
    return config, payload


def _run_of(path: Path) -> Path:
    """The run directory a checkpoint file lies in (RUN/checkpoints/last.pt -> RUN)."""
    return path.parent.parent if path.parent.name == runs.CHECKPOINT_DIR else path.parent


def _check_average(run_dir: Path, saved: Config, config: Config, done: int) -> None:
    """Refuse a new train.epochs that moves swa's first averaged epoch (the last quarter's start)
    to or before an epoch already trained: the average would have held other epochs."""
    old, new = averaging.swa_start(saved), averaging.swa_start(config)
    if saved.train.average == "swa" and old != new and min(old, new) <= done:
        raise DropcliError(
            f"--resume {run_dir}: train.average=swa averages from epoch {old} of {saved.train.epochs}; with "
            f"train.epochs={config.train.epochs} it would start at epoch {new}, and epoch {min(old, new)} is already trained; "
            f"train a new run instead, or fix the start with train.swa_start"
        )


def _check_schedule(run_dir: Path, saved: Config, config: Config, done: int) -> None:
    """Refuse a new train.epochs that would have given the epochs already trained other learning
    rates: the result would be neither the planned run nor one planned for the new total."""
    old, new = saved.train.epochs, config.train.epochs
    changed = first_changed_epoch(saved.optim, old, new, done) if new != old else None
    if changed is not None:
        raise DropcliError(
            f"--resume {run_dir}: the {saved.optim.schedule} learning-rate schedule was planned for {old} epochs; "
            f"with train.epochs={new} epoch {changed}, already trained, would have had another rate, so the result would be "
            f"neither a {old}- nor a {new}-epoch run; train a new run instead: dropcli train -c {run_dir / runs.CONFIG_FILE} "
            f"--set train.epochs={new}"
        )
