"""Run directories: their names, and reading back `config.yaml`, `metrics.jsonl` and `summary.json`.

A run directory is never overwritten; files.py writes into it.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dropcli.config import Config
from dropcli.errors import DropcliError

RUNS_DIR = Path("runs")


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def unique_dir(parent: Path, stem: str) -> Path:
    """parent/stem, or parent/stem-2, -3, ... if that is taken, created empty."""
    parent.mkdir(parents=True, exist_ok=True)
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
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """A run's per-epoch metrics; DropcliError if `run_dir` is not a run with any."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise DropcliError(f"{run_dir} is not a run directory (no metrics.jsonl)")
    metrics = read_jsonl(path)
    if not metrics:
        raise DropcliError(f"{run_dir} has no finished epoch yet")
    return metrics


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
    status: str  # finished, interrupted or diverged


def list_runs(root: Path) -> list[RunInfo]:
    """Every run directory under `root` (comparison folders included), oldest first."""
    infos = []
    for config_path in sorted(root.rglob("config.yaml"), key=lambda p: p.stat().st_mtime):
        run_dir = config_path.parent
        config = yaml.safe_load(config_path.read_text()) or {}
        metrics = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
        summary_path = run_dir / "summary.json"
        # A run killed outright (SIGKILL, power loss) leaves no summary.
        status = json.loads(summary_path.read_text())["status"] if summary_path.exists() else "interrupted"
        infos.append(
            RunInfo(
                path=run_dir,
                name=config.get("name", "?"),
                model=config.get("model", {}).get("kind", "?"),
                epochs_done=len(metrics),
                epochs_planned=config.get("train", {}).get("epochs", 0),
                best_test_acc=max((m["test_acc"] for m in metrics), default=None),
                final_test_acc=metrics[-1]["test_acc"] if metrics else None,
                status=status,
            )
        )
    return infos
