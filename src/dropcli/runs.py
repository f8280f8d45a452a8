"""Run directories: `config.yaml`, `metrics.jsonl` and `summary.json`, never overwritten.

Whole files are written to a temporary name and then renamed, so a crash leaves either no file
or a complete one. `metrics.jsonl` grows one complete line per finished epoch.
"""

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

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


def check_unused(path: Path | None) -> None:
    """Refuse a run directory that already exists, before any work is done for it."""
    if path is not None and path.exists():
        raise DropcliError(f"run directory {path} already exists; choose another --run-dir or remove it")


def create_dir(path: Path) -> Path:
    """Create the run directory the user named; refuse one that already exists."""
    check_unused(path)
    try:
        path.mkdir(parents=True)
    except FileExistsError:  # made by someone else since the check
        check_unused(path)
    except OSError as error:
        raise DropcliError(f"cannot create run directory {path}: {error.strerror}") from None
    return path


def write_text_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(file.name, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: Path, record: Any) -> None:
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def default_stem(config: Config) -> str:
    return f"{config.name}-{config.model.kind}-{timestamp()}"
