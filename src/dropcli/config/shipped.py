"""The configs that come with dropcli: their descriptions, and copies to edit (`config cp`)."""

from pathlib import Path

from dropcli import files
from dropcli.config import shipped_configs
from dropcli.errors import DropcliError


def summary(path: Path) -> str:
    """A config file's one-line summary: its first comment line."""
    first = path.read_text(encoding="utf-8").partition("\n")[0]
    return first.lstrip("#").strip() if first.startswith("#") else ""


def copy_shipped(name: str, target: Path, force: bool = False) -> Path:
    """Copy the shipped config `name` to `target` (a file, or a directory to put NAME.yaml in),
    comments and all; refuse to overwrite a file unless `force`. Returns the file written."""
    shipped = shipped_configs()
    if name not in shipped:
        raise DropcliError(f"no shipped config named {name!r}; shipped: {', '.join(shipped)} (see dropcli config list)")
    path = target / f"{name}.yaml" if target.is_dir() else target
    if path.exists() and not force:
        raise DropcliError(f"{path} exists; choose another file, or add --force to overwrite it")
    if path.exists() and not path.is_file():
        raise DropcliError(f"{path} is not a regular file; choose another name")
    if not path.parent.is_dir():
        raise DropcliError(f"cannot write {path}: no directory {path.parent}")
    files.write_text(path, shipped[name].read_text(encoding="utf-8"))
    return path
