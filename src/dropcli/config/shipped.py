"""The configs that come with dropcli: their descriptions, and copies to edit (`config cp`)."""

from pathlib import Path

from dropcli import files
from dropcli.errors import DropcliError

SHIPPED_DIR = Path(__file__).parent.parent / "configs"  # package data: the repository's configs/


def shipped_configs() -> dict[str, Path]:
    """The configs that come with dropcli, by name: default, smoke, long, ..."""
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"), key=lambda path: path.stem)}  # best before best-any


def resolve_path(text: Path | str) -> Path:
    """A config argument as a file: a path that exists, else a shipped config's name."""
    path = Path(text)
    if path.exists() or "/" in str(text) or path.suffix in (".yaml", ".yml"):
        return path  # a path means a file, found or not
    shipped = shipped_configs()
    if str(text) not in shipped:
        raise DropcliError(
            f"no config file or shipped config named {str(text)!r}; shipped: {', '.join(shipped)} (see dropcli config list), "
            "or give a path to a YAML file"
        )
    return shipped[str(text)]


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
