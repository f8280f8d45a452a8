"""A study kept in a file: `dropcli sweep --plan study.yaml`.

The file holds what `sweep`'s flags say, so a study can be kept in git and rerun:

    config: smoke                      # a config file, a shipped config's name, or a mapping of keys
    grid:
      model.dropout_1: [0, 0.2, 0.5]   # a list of values
      optim.lr: "0.01:1:log"           # or a range LOW:HIGH[:log], for random search
    seeds: 3                           # train each cell with seeds 0, 1, 2 (from the config's seed)
    sample: 10                         # optional: random search, 10 draws

Flags given on the command line override the file: `-c` replaces its config (and `--set` and the
other config flags apply on top of either), `--grid KEY=...` replaces that key's values (or adds
the key), `--seeds` and `--sample` replace its numbers.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.config import Config, load_config, read_yaml
from dropcli.errors import DropcliError
from dropcli.experiments import Grid, parse_grid

STUDY_KEYS = ("config", "grid", "seeds", "sample")


@dataclass(frozen=True)
class PlanFile:
    config: Config
    grids: list[Grid]
    seeds: int
    sample: int | None


def resolve(
    plan: Path | None,
    config_path: Path | list[Path] | None,
    overrides: list[str],
    flags: dict[str, tuple[str, Any]],
    grid_texts: list[str],
    seeds: int | None,
    sample: int | None,
) -> PlanFile:
    """The sweep to run: the plan file (if any) with the command line's flags over it."""
    raw = _read(plan) if plan is not None else {}
    config_entry = raw.get("config")
    if config_path or config_entry is None:
        config = load_config(config_path, overrides, flags)
    elif isinstance(config_entry, dict):
        config = load_config(None, overrides, flags, base=config_entry)
    else:
        config = load_config(_config_path(plan, config_entry), overrides, flags)
    grids = {grid.key: grid for grid in _grids(plan, raw.get("grid"))}
    for text in grid_texts:
        grid = parse_grid(text)
        grids[grid.key] = grid
    if not grids:
        raise DropcliError("sweep needs grids: --grid KEY=V1,V2,... (repeatable), or --plan FILE with a grid: section")
    return PlanFile(config, list(grids.values()), seeds or _count(plan, raw, "seeds") or 1, sample or _count(plan, raw, "sample"))


def _read(plan: Path) -> dict[str, Any]:
    if not plan.is_file():
        raise DropcliError(
            f"--plan {plan}: no such file; a study file is YAML with config, grid, seeds and sample (see docs/runs.md)"
        )
    raw = read_yaml(plan)
    unknown = [key for key in raw if key not in STUDY_KEYS]
    if unknown:
        raise DropcliError(f"{plan}: unknown key {unknown[0]!r} in a study file; its keys are {', '.join(STUDY_KEYS)}")
    return raw


def _config_path(plan: Path, entry: Any) -> Path | str:
    """A config named in the plan: a path relative to the plan file, else as -c takes it."""
    if not isinstance(entry, str):
        raise DropcliError(f"{plan}: config must be a file, a shipped config's name or a mapping of keys, got {entry!r}")
    beside = plan.parent / entry
    return beside if beside.is_file() else entry


def _grids(plan: Path | None, section: Any) -> list[Grid]:
    if section is None:
        return []
    if not isinstance(section, dict) or not section:
        raise DropcliError(
            f"{plan}: grid must map config keys to a list of values or a range, e.g. grid: {{model.dropout_1: [0, 0.5]}}"
        )
    grids = []
    for key, values in section.items():
        source = f"{plan} grid {key}"
        if isinstance(values, list):
            if not values:
                raise DropcliError(f"{source}: the list of values is empty")
            grid = parse_grid(f"{key}=0")  # the key's checks (seed is no grid key), then the real values
            grid = Grid(grid.key, tuple(values))
        elif isinstance(values, str):
            grid = parse_grid(f"{key}={values}")
        else:
            # One value is no grid: most likely a list whose brackets were lost.
            raise DropcliError(
                f"{source}: a grid takes a list of values or a range, got the single value {values!r}; "
                f"write [{values}] to train only that, or set it under config:"
            )
        grids.append(dataclasses.replace(grid, source=source))
    return grids


def _count(plan: Path | None, raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise DropcliError(f"{plan}: {key} must be a whole number of at least 1, got {value!r}")
    return value
