"""Experiments from Python: `compare` and `sweep`, returning an `Experiment` of cells.

`dropcli compare` and `dropcli sweep` call `run_experiment`, which `compare` and `sweep` are
built on; the commands print the tables and save the figures an `Experiment` returns.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.api.training import PathLike, Progress, data_frame, detached, kept_on_stop, listeners_of, load_config, load_run
from dropcli.config import Config
from dropcli.errors import DropcliError


@dataclass(frozen=True)
class Experiment:
    """A finished compare or sweep: its `directory`, base `config`, the `grids` it varied and
    its `cells`, one per combination of grid values with statistics over seeds
    (`dropcli.experiments.Cell`: mean and std of test_acc, gap, ...). `failed` names the trials
    that diverged, with why; the other trials' statistics are in the cells."""

    directory: Path
    config: Config
    grids: list  # dropcli.experiments.Grid: each key and the values tried
    cells: list  # dropcli.experiments.Cell
    sampled: int | None = None  # a random search's number of draws
    log_keys: tuple[str, ...] = ()  # keys of a random search drawn on a log scale

    @property
    def keys(self) -> list[str]:
        """The config keys varied, e.g. ["model.kind"] for a comparison."""
        return [grid.key for grid in self.grids]

    @property
    def failed(self) -> dict[str, str]:
        """Trial name -> why it stopped, for the trials that did not finish."""
        from dropcli import experiments

        return experiments.failures(self.cells)

    def rows(self) -> list[dict[str, Any]]:
        """The table as plain records, a dict per cell: the grid values, "seeds", and for each
        statistic its mean and std ("test_acc", "test_acc_std", ...; None where no seed finished)."""
        from dropcli.experiments import STAT_FIELDS

        records = []
        for cell in self.cells:
            record = {**cell.values, "seeds": cell.seeds, "failed": len(cell.failed)}
            for name in STAT_FIELDS:
                stat = getattr(cell, name)
                record[name], record[f"{name}_std"] = (stat.mean, stat.std) if stat else (None, None)
            records.append(record)
        return records

    def frame(self):
        """`rows()` as a pandas DataFrame (needs pandas)."""
        return data_frame(self.rows())

    def runs(self) -> list:
        """Every finished trial as a `Run`, cell by cell."""
        return [load_run(self.directory / name) for cell in self.cells for name in cell.runs if name not in cell.failed]

    def curves(self, style=None):
        """Loss and accuracy against epoch, one colour per cell, mean ± std over seeds: the
        figure `compare --plot` saves as curves.png (a matplotlib Figure; `style`, a
        dropcli.cli.display.figure.Style, sizes it: one column of a paper by default)."""
        from dropcli.cli.display import plots

        groups = [(_label(cell.values), [self.directory / n for n in cell.runs if n not in cell.failed]) for cell in self.cells]
        return detached(plots.runs_figure([group for group in groups if group[1]], style))

    def figure(self, style=None):
        """Accuracy against the value for one key, heatmaps for two, a panel per key otherwise:
        the figure `sweep --plot` saves as sweep.png (a matplotlib Figure; `style` as for `curves`)."""
        from dropcli.cli.display import sweep_plots

        keys = list(self.cells[0].values)
        caption = sweep_plots.experiment_caption(self.config, self.cells, self.directory, keys)
        return detached(sweep_plots.sweep_figure(self.cells, keys, caption, bool(self.sampled), list(self.log_keys), style))


def _label(values: dict[str, Any]) -> str:
    from dropcli.config.architecture import short

    if list(values) == ["model.kind"]:
        return str(values["model.kind"])
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={short(value)}" for key, value in values.items())


def compare(
    models: Sequence[str] = ("scratch", "builtin"),
    config: Config | None = None,
    *,
    seeds: int = 1,
    run_dir: PathLike | None = None,
    progress: Progress = True,
) -> Experiment:
    """Train `models` (model kinds) on the same config, seeds, initial weights and data order.

    `config` defaults to the chapter's (`load_config()`); each model is trained with `seeds`
    seeds counting up from config.seed. The trials are saved under `run_dir` (default
    runs/compare-NAME-TIME); the same call with the same `run_dir` continues an interrupted
    comparison. `progress` as for `train`.

    Example: table = compare(["scratch", "builtin"], load_config("smoke"), seeds=2).rows()
    """
    from dropcli.experiments import Grid

    if isinstance(models, str):
        raise DropcliError(f"compare {models!r}: give a list of model kinds, e.g. compare(['scratch', 'builtin'])")
    grids = [Grid("model.kind", tuple(models), source="MODELS")]
    return run_experiment(config or load_config(), grids, seeds, None, _path(run_dir), "compare", progress)


def sweep(
    grid: Mapping[str, Any],
    config: Config | None = None,
    *,
    seeds: int = 1,
    sample: int | None = None,
    run_dir: PathLike | None = None,
    progress: Progress = True,
) -> Experiment:
    """Train every combination of `grid`'s values, e.g. {"model.dropout": [0, 0.2, 0.5]}.

    Each key is a config key; several keys give their product. With `sample`, a random search
    of that many draws instead, where a value may also be a range "LOW:HIGH" or "LOW:HIGH:log"
    ({"optim.lr": "0.01:1:log"}). Other arguments as for `compare`.

    Example: sweep({"model.dropout": [0, 0.5]}, load_config("smoke")).rows()
    """
    from dropcli import experiments

    if not isinstance(grid, Mapping) or not grid:
        raise DropcliError("sweep needs a grid: a mapping of config keys to their values, e.g. {'model.dropout': [0, 0.5]}")
    grids = [_grid(key, values) for key, values in grid.items()]
    config = config or load_config()
    log_keys = [grid.key for grid in grids if grid.span is not None and grid.span[2]]
    if sample:
        grids = experiments.sample(grids, sample, config.seed)
    return run_experiment(config, grids, seeds, sample, _path(run_dir), "sweep", progress, log_keys)


def _grid(key: str, values: Any):
    from dropcli.experiments import Grid, parse_grid

    if isinstance(values, str):  # a range, or values written as --grid takes them: "0,0.2,0.5"
        return parse_grid(f"{key}={values}", flag="grid")
    if not isinstance(values, (list, tuple)) or not values:
        raise DropcliError(f"grid[{key!r}]: give a list of values, e.g. [0, 0.2, 0.5], or a range 'LOW:HIGH'")
    return Grid(key, tuple(values), source=f"grid[{key!r}]")


def _path(run_dir: PathLike | None) -> Path | None:
    return None if run_dir is None else Path(run_dir)


def run_experiment(
    config: Config,
    grids: list,
    seeds: int,
    sampled: int | None,
    run_dir: Path | None,
    kind: str,
    progress: Progress,
    log_keys: Sequence[str] = (),
) -> Experiment:
    """Plan, check and train an experiment (kind: "compare" or "sweep"); its results files are
    written in the directory. Under torchrun the trials are dealt over the workers and rank 0
    writes the results. Every trial's config, device, data and memory are checked before the
    first trains. Diverged trials do not raise: `Experiment.failed` names them."""
    from dropcli import experiments, parallel
    from dropcli.experiments import trials
    from dropcli.parallel.workers import launch_command

    if seeds < 1:
        raise DropcliError(f"seeds {seeds}: train each cell with at least 1 seed")
    planned = experiments.plan(config, grids, seeds, zipped=sampled is not None)
    spec = experiments.spec_of(config, grids, seeds, sampled)
    if config.metrics.tensorboard:
        from dropcli.runs.tensorboard import check_available

        check_available()
    with parallel.start() as workers:
        trials.check_resources(planned, workers)
        # Every worker must name the same directory: rank 0 picks (and makes) the default one.
        directory = run_dir or workers.on_primary(lambda: default_dir(kind, config))
        with kept_on_stop(lambda: trials.after_stop(directory, launch_command())):
            # Each worker says when its trials finish; rank 0 alone shows their epochs.
            listeners = listeners_of(progress, quiet=not workers.is_primary)
            cells = trials.run(spec, planned, directory, listeners, workers)
    return Experiment(directory, config, grids, cells, sampled, tuple(log_keys))


def default_dir(kind: str, config: Config) -> Path:
    from dropcli import runs

    return runs.unique_dir(runs.RUNS_DIR, f"{kind}-{config.name}-{runs.timestamp()}")
