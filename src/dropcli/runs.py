"""Run directories: `config.yaml`, `metrics.jsonl` and `summary.json`, never overwritten.

Whole files are written to a temporary name and then renamed, so a crash leaves either no file
or a complete one. `metrics.jsonl` grows one complete line per finished epoch.
"""

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def locked(directory: Path, what: str = "run directory") -> Iterator[None]:
    """Hold an exclusive OS lock on `directory` while one process writes into it.

    The lock is flock(2) on the directory itself: no lock file to clean up, and the kernel
    drops it when the process ends in any way, so a crashed run never leaves a stale lock.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as error:
        raise DropcliError(f"cannot open {what} {directory}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DropcliError(
                f"{what} {directory} is in use by another dropcli process; wait for it to finish, or stop it first"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_text_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
        temporary = Path(file.name)
        try:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomic(path: Path, obj: Any) -> None:
    # allow_nan=False: strict JSON that any reader takes; a NaN here is a bug, not a value.
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def jsonl_line(record: Any) -> str:
    return json.dumps(record, allow_nan=False) + "\n"


def append_jsonl(path: Path, record: Any) -> None:
    # One write() of one whole line, so a kill between epochs leaves only complete lines.
    with open(path, "a") as file:
        file.write(jsonl_line(record))


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
