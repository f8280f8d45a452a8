"""The configs that come with dropcli: their descriptions, and copies to edit (`config cp`)."""

from pathlib import Path

from dropcli import files
from dropcli.config import shipped_configs
from dropcli.errors import DropcliError


def description(path: Path) -> str:
    """A config file's description: its leading comment lines, joined into one paragraph."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(filter(None, lines))


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
