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
    raw = read(plan, STUDY_KEYS) if plan is not None else {}
    config = plan_config(plan, raw, config_path, overrides, flags)
    grids = merged_grids(plan_grids(plan, raw.get("grid")), [parse_grid(text) for text in grid_texts], "--grid")
    if not grids:
        raise DropcliError("sweep needs grids: --grid KEY=V1,V2,... (repeatable), or --plan FILE with a grid: section")
    return PlanFile(config, grids, seeds or count(plan, raw, "seeds") or 1, sample or count(plan, raw, "sample"))


def merged_grids(from_plan: list[Grid], given: list[Grid], flag: str) -> list[Grid]:
    """The plan file's grids with the command line's over them: a key given replaces the plan's
    values for it. A key given twice on the command line is refused, not settled by order."""
    keys = [grid.key for grid in given]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise DropcliError(f"{flag} {twice[0]} is given more than once; give each key once, with all its values: KEY=V1,V2,...")
    grids = {grid.key: grid for grid in from_plan}
    grids.update((grid.key, grid) for grid in given)
    return list(grids.values())


def plan_config(
    plan: Path | None, raw: dict[str, Any], config_path: Path | None, overrides: list[str], flags: dict[str, tuple[str, Any]]
) -> Config:
    """The config of a plan file (a file, a shipped name or a mapping), or -c's, with --set and the flags over it."""
    config_entry = raw.get("config")
    if config_path is not None or config_entry is None:
        return load_config(config_path, overrides, flags)
    if isinstance(config_entry, dict):
        return load_config(None, overrides, flags, base=config_entry)
    return load_config(_config_path(plan, config_entry), overrides, flags)


def read(plan: Path, keys: tuple[str, ...] = STUDY_KEYS) -> dict[str, Any]:
    """A plan file's top-level mapping; DropcliError for a missing file or a key not in `keys`."""
    if not plan.is_file():
        raise DropcliError(f"--plan {plan}: no such file; a study file is YAML with {', '.join(keys)} (see docs/runs.md)")
    raw = read_yaml(plan)
    unknown = [key for key in raw if key not in keys]
    if unknown:
        raise DropcliError(f"{plan}: unknown key {unknown[0]!r} in a study file; its keys are {', '.join(keys)}")
    return raw


def _config_path(plan: Path, entry: Any) -> Path | str:
    """A config named in the plan: a path relative to the plan file, else as -c takes it."""
    if not isinstance(entry, str):
        raise DropcliError(f"{plan}: config must be a file, a shipped config's name or a mapping of keys, got {entry!r}")
    beside = plan.parent / entry
    return beside if beside.is_file() else entry


def plan_grids(plan: Path | None, section: Any, name: str = "grid") -> list[Grid]:
    """The grids of a plan file's `name:` section (grid for sweep, space for tune): lists, ranges or one value."""
    if section is None:
        return []
    if not isinstance(section, dict) or not section:
        raise DropcliError(
            f"{plan}: {name} must map config keys to a list of values or a range, e.g. {name}: {{model.dropout_1: [0, 0.5]}}"
        )
    grids, flag = [], "--grid" if name == "grid" else f"--{name}"
    for key, values in section.items():
        source = f"{plan} {name} {key}"
        if isinstance(values, list):
            if not values:
                raise DropcliError(f"{source}: the list of values is empty")
            grid = parse_grid(f"{key}=0", flag)  # the key's checks (seed is no grid key), then the real values
            grid = Grid(grid.key, tuple(values))
        elif isinstance(values, str):
            grid = parse_grid(f"{key}={values}", flag)
        else:
            # One value is no grid: most likely a list whose brackets were lost.
            raise DropcliError(
                f"{source}: a grid takes a list of values or a range, got the single value {values!r}; "
                f"write [{values}] to train only that, or set it under config:"
            )
        grids.append(dataclasses.replace(grid, source=source))
    return grids


def count(plan: Path | None, raw: dict[str, Any], key: str) -> int | None:
    """A whole number >= 1 from the plan file, or None where it names none."""
    value = raw.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise DropcliError(f"{plan}: {key} must be a whole number of at least 1, got {value!r}")
    return value
