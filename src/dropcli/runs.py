"""Run directories: their names, and reading back `config.yaml`, `metrics.jsonl` and `summary.json`.

A run directory is never overwritten; files.py writes into it.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dropcli import files
from dropcli.config import Config, flatten, upgraded
from dropcli.errors import DropcliError

RUNS_DIR = Path("runs")


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


def create_dir(path: Path) -> Path:
    """Create the run directory the user named; refuse one that already exists."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise DropcliError(f"run directory {path} already exists; choose another --run-dir or remove it") from None
    except OSError as error:
        raise DropcliError(f"cannot create run directory {path}: {error.strerror}") from None
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; DropcliError naming the line that is not a record."""
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise DropcliError(f"{path}: line {number} is not a JSON record (cut short by a crash, or edited)")
        records.append(record)
    return records


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """A run's per-epoch metrics; DropcliError if `run_dir` is not a run with any."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise DropcliError(f"{run_dir} is not a run directory (no metrics.jsonl)")
    metrics = read_jsonl(path)
    if not metrics:
        raise DropcliError(f"{run_dir} has no finished epoch yet")
    for number, record in enumerate(metrics, start=1):
        if not all(isinstance(record.get(key), (int, float)) for key in METRIC_KEYS):
            raise DropcliError(f"{path}: line {number} lacks {', '.join(METRIC_KEYS)}; it is not a dropcli metrics line")
    return metrics


METRIC_KEYS = ("epoch", "train_loss", "test_loss", "test_acc")


def default_stem(config: Config) -> str:
    return f"{config.name}-{config.model.kind}-{timestamp()}"


@dataclass(frozen=True)
class RunInfo:
    path: Path
    name: str
    model: str
    epochs_done: int
    epochs_planned: int
    best_test_acc: float | None
    final_test_acc: float | None
    status: str  # finished, interrupted, diverged, running, or "unreadable: why"
    settings: dict[str, Any]  # the run's config, flattened: {"model.kind": "scratch", ...}
    final: dict[str, Any]  # the reported epoch's metrics (the last, or the best with early stopping)


def list_runs(root: Path) -> list[RunInfo]:
    """Every run directory under `root` (experiment folders included), oldest first.

    A run whose files cannot be read is listed with the reason as its status.
    """
    return [run_info(path.parent) for path in sorted(root.rglob("config.yaml"), key=_mtime)]


def run_info(run_dir: Path) -> RunInfo:
    """What `dropcli runs` shows of one run; unreadable files give a status that says why."""
    # No summary yet: a run still training, or one killed outright (SIGKILL, power loss).
    status = "running" if files.in_use(run_dir) else "interrupted"
    config, metrics, final = {}, [], {}
    try:
        config = _read_yaml_mapping(run_dir / "config.yaml")
        config = upgraded(config)  # an older run's keys (hidden_1, ...) as today's (the lists)
        if (run_dir / "metrics.jsonl").is_file():
            metrics = read_metrics(run_dir)
            final = metrics[-1]
        if (run_dir / "summary.json").exists():
            summary = read_summary(run_dir / "summary.json")
            status = summary["status"]
            final = summary["final"] if isinstance(summary.get("final"), dict) else final
    except DropcliError as error:
        status = f"unreadable: {error}"
    model, train = config.get("model"), config.get("train")
    return RunInfo(
        path=run_dir,
        name=str(config.get("name", "?")),
        model=str(model.get("kind", "?")) if isinstance(model, dict) else "?",
        epochs_done=len(metrics),
        epochs_planned=train.get("epochs", 0) if isinstance(train, dict) else 0,
        best_test_acc=max((m["test_acc"] for m in metrics), default=None),
        final_test_acc=metrics[-1]["test_acc"] if metrics else None,
        status=status,
        settings=flatten(config),
        final=final,
    )


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError:
        raise DropcliError(f"{path} is not valid YAML") from None
    if not isinstance(data, dict):
        raise DropcliError(f"{path} is not a config mapping")
    return data


def read_summary(path: Path) -> dict[str, Any]:
    """A run's summary.json; DropcliError unless it is a JSON object with a status."""
    try:
        summary = json.loads(_read_text(path))
    except ValueError:
        summary = None
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        raise DropcliError(f"{path} is not a run summary (no JSON status); remove it, and a rerun continues the run from its checkpoint")
    return summary


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DropcliError(f"{path} cannot be read ({getattr(error, 'strerror', None) or error})") from None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
