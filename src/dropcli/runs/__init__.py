"""Run directories: their layout and names, and reading back their config, metrics and summary.

A new run never writes into an existing directory (unique_dir, create_dir); loop.py writes a
run's files through files.py, and only --resume of that same run writes there again, rewriting
config.yaml and metrics.jsonl from its checkpoint.
"""

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli import files
from dropcli.config import Config, flatten, load_config, to_dict, yamlfile
from dropcli.errors import DropcliError

RUNS_DIR = Path("runs")

# The layout of a run directory, named here only: loop.py writes these, the rest read them.
CONFIG_FILE = "config.yaml"  # the resolved config
METRICS_FILE = "metrics.jsonl"  # a line per finished epoch
SUMMARY_FILE = "summary.json"  # once the run stops: finished, interrupted or diverged
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.pt"  # the last finished epoch, to resume from
BEST_CHECKPOINT = f"{CHECKPOINT_DIR}/best.pt"  # the best epoch by train.monitor


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def unique_dir(parent: Path, stem: str) -> Path:
    """parent/stem, or parent/stem-2, -3, ... if that is taken, created empty."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DropcliError(f"{parent} is a file, not a directory for runs; move it, or pass --run-dir") from None
    for attempt in range(1, 1000):
        path = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise DropcliError(f"could not find a free run directory name for {parent / stem}; clean up {parent}")


def create_dir(path: Path, what: str = "run directory", exist_ok: bool = False) -> Path:
    """Create the directory the user named (--run-dir); refuse one that exists, unless `exist_ok`
    (an experiment directory is continued), and one that is a file."""
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except (FileExistsError, NotADirectoryError):
        if path.is_dir():
            raise DropcliError(f"{what} {path} already exists; choose another --run-dir or remove it") from None
        article = "an" if what[0] in "aeiou" else "a"
        raise DropcliError(f"{path} is a file, not {article} {what}; choose another --run-dir") from None
    except OSError as error:  # a read-only or vanished parent: a fault of the machine (exit 1)
        raise DropcliError(f"cannot create {what} {path}: {error.strerror}", exit_code=1) from None
    return path


# What a run that never finished an epoch may hold: all of it written by the command that made it.
_NOTHING_TRAINED = {CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_DIR}


def after_stop(run_dir: Path, launch: str, made_here: bool) -> str:
    """What to tell the user of a run stopped by a fault or an interrupt, checked to be true:
    the command that continues it; or, when no epoch was saved, that nothing was trained, and
    the run directory this command made is removed so that the same command works again."""
    if not run_dir.is_dir():
        return f"{run_dir} no longer exists, so nothing is kept; run the same command again"
    if (run_dir / LAST_CHECKPOINT).is_file() and (run_dir / CONFIG_FILE).is_file():
        return f"the finished epochs are kept in {run_dir}; continue with: {launch} train --resume {run_dir}"
    names = {path.name for path in run_dir.iterdir() if not path.name.startswith(".")}
    empty_checkpoints = not (run_dir / CHECKPOINT_DIR).is_dir() or not any((run_dir / CHECKPOINT_DIR).iterdir())
    if made_here and names <= _NOTHING_TRAINED and empty_checkpoints:
        shutil.rmtree(run_dir, ignore_errors=True)
        return "nothing was trained and nothing is kept; run the same command again"
    return f"no epoch finished, so {run_dir} cannot be resumed; remove it and run the same command again"


def read_jsonl(path: Path, remedy: str = "cut short by a crash, or edited") -> list[dict[str, Any]]:
    """The records of a JSON-lines file; DropcliError naming the line that is not a record, and
    `remedy`: what to do about it."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise DropcliError(f"{path}: line {number} is not a JSON record ({remedy})")
        records.append(record)
    return records


def runs_inside(directory: Path) -> str:
    """For a directory that holds runs without being one (a tune study): what to name instead."""
    inside = sorted(path.parent for path in directory.glob(f"*/{CONFIG_FILE}")) if directory.is_dir() else []
    return f"; it holds {len(inside)} runs: name one, e.g. {inside[0]}" if inside else ""


def read_metrics(run_dir: Path, allow_empty: bool = False) -> list[dict[str, Any]]:
    """A run's per-epoch metrics; DropcliError if `run_dir` is not a run with any (`allow_empty`:
    a run that stopped in its first epoch has none)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise DropcliError(f"{run_dir} is not a run directory (no metrics.jsonl){runs_inside(run_dir)}")
    metrics = read_jsonl(path)
    if not metrics and not allow_empty:
        raise DropcliError(f"{run_dir} has no finished epoch yet")
    for number, record in enumerate(metrics, start=1):
        if not all(_metric(record, key) for key in METRIC_KEYS):
            raise DropcliError(f"{path}: line {number} lacks {', '.join(METRIC_KEYS)}; it is not a dropcli metrics line")
    return metrics


METRIC_KEYS = ("epoch", "train_loss", "test_loss", "test_acc")


def _metric(record: dict[str, Any], key: str) -> bool:
    """Whether a metrics line holds `key` as a number (the test scores may be null: a tune trial has no test set)."""
    value = record.get(key)
    return isinstance(value, (int, float)) or (key.startswith("test") and key in record and value is None)


def default_stem(config: Config) -> str:
    return f"{config.name}-{config.model.kind}-{timestamp()}"


# What `dropcli runs` calls a run: the first four are a summary.json's own status ("pruned": a
# tune trial its pruner stopped early, judged on validation accuracy).
STATUSES = ("finished", "interrupted", "diverged", "pruned", "running", "summary missing", "unreadable")


@dataclass(frozen=True)
class RunInfo:
    path: Path
    name: str
    model: str
    epochs_done: int
    epochs_planned: int
    best_val_acc: float | None  # the highest of any epoch; None without a validation split
    final_test_acc: float | None
    status: str  # one of STATUSES, "unreadable: why" or "summary missing (N epochs on disk)"
    settings: dict[str, Any]  # the run's config, flattened: {"model.kind": "scratch", ...}
    final: dict[str, Any]  # the reported epoch's metrics (the last, or the best with early stopping)


def list_runs(root: Path) -> list[RunInfo]:
    """Every run directory under `root` (experiment folders included), oldest first.

    A run whose files cannot be read is listed with the reason as its status.
    """
    return [run_info(path.parent) for path in sorted(root.rglob(CONFIG_FILE), key=_mtime)]


def run_info(run_dir: Path) -> RunInfo:
    """What `dropcli runs` shows of one run; unreadable files give a status that says why."""
    status = "running" if files.in_use(run_dir) else "interrupted"
    config, metrics, final = {}, [], {}
    try:
        config = _read_yaml_mapping(run_dir / CONFIG_FILE)
        if (run_dir / METRICS_FILE).is_file():
            metrics = read_metrics(run_dir, allow_empty=True)  # a run may diverge in its first epoch
            final = metrics[-1] if metrics else {}
        if (run_dir / SUMMARY_FILE).exists():
            summary = read_summary(run_dir / SUMMARY_FILE)
            status = summary["status"]
            final = summary["final"] if isinstance(summary.get("final"), dict) else final
        elif status != "running":
            status = _without_summary(config, len(metrics))
    except DropcliError as error:
        status = f"unreadable: {error}"
    model, train = config.get("model"), config.get("train")
    return RunInfo(
        path=run_dir,
        name=str(config.get("name", "?")),
        model=str(model.get("kind", "?")) if isinstance(model, dict) else "?",
        epochs_done=len(metrics),
        epochs_planned=train.get("epochs", 0) if isinstance(train, dict) else 0,
        # Never the highest test accuracy: picking an epoch by it selects on the test set.
        best_val_acc=max((m["val_acc"] for m in metrics if m.get("val_acc") is not None), default=None),
        final_test_acc=metrics[-1]["test_acc"] if metrics else None,
        status=status,
        settings=flatten(config),
        final=final,
    )


def _without_summary(config: dict[str, Any], epochs_done: int) -> str:
    """The status of a run not training that has no summary.json: killed outright (SIGKILL, power
    loss) before its last epoch, or one whose summary was lost after all its epochs were saved."""
    train = config.get("train")
    planned = train.get("epochs") if isinstance(train, dict) else None
    if isinstance(planned, int) and epochs_done >= planned:
        return f"summary missing ({epochs_done} epoch{'' if epochs_done == 1 else 's'} on disk)"
    return "interrupted"


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    data = yamlfile.load(read_text(path), path)
    if not isinstance(data, dict):
        raise DropcliError(f"{path} is not a config mapping")
    try:
        # An older run's keys (hidden_1, ...) read as today's (the lists); other keys are no run's config.
        return to_dict(load_config(base=data))
    except DropcliError as error:
        raise DropcliError(f"{path} is not a dropcli config ({error})") from None


def read_summary(path: Path) -> dict[str, Any]:
    """A run's summary.json; DropcliError unless it is a JSON object with a status."""
    try:
        summary = json.loads(read_text(path))
    except ValueError:
        summary = None
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        raise DropcliError(
            f"{path} is not a run summary (no JSON status); remove it, and a rerun continues the run from its checkpoint"
        )
    return summary


def data_source(checkpoint: Path) -> Path | None:
    """Where the run that saved `checkpoint` found its data (its summary's data.source), if it says."""
    summary = checkpoint.parent.parent / SUMMARY_FILE if checkpoint.parent.name == CHECKPOINT_DIR else None
    try:
        return Path(read_summary(summary)["data"]["source"]) if summary is not None and summary.is_file() else None
    except (DropcliError, KeyError, TypeError):
        return None  # an unreadable summary: the config's own search still applies


def read_text(path: Path) -> str:
    """The UTF-8 text of a file dropcli wrote; DropcliError (not a traceback) if it cannot be read or decoded."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DropcliError(f"{path} cannot be read ({getattr(error, 'strerror', None) or error})") from None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
