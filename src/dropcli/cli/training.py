"""`train`, `compare` and `sweep`: train runs and experiments."""

from pathlib import Path
from typing import Annotated

import typer

from dropcli.cli.app import Command, app, rank_zero
from dropcli.cli.display.console import console
from dropcli.cli.options import (
    CONFIG_OPTIONS,
    EXPERIMENT_OPTIONS,
    FIGURE_OPTIONS,
    QUIET_OPTION,
    describe,
    figure_style,
    flags,
    interrupts_reported,
    load,
    open_data,
    reporter,
    with_options,
)
from dropcli.config import Config
from dropcli.config.vocabulary import MODEL_KINDS, one_of
from dropcli.errors import DropcliError


@app.command(
    cls=Command,
    epilog="Example: dropcli train -c configs/default.yaml --model builtin --set model.hidden=1024x1024x1024 --set model.dropout=0.2",
)
@with_options({**CONFIG_OPTIONS, **QUIET_OPTION})
def train(
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Where to save the run; must not exist. Default: runs/NAME-MODEL-TIME.")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", metavar="RUN_DIR", help="Continue this run from its last checkpoint (--set train.epochs=N trains longer)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved config, the data found and the device, and stop.")
    ] = False,
    **options,
) -> None:
    """Train one MLP with dropout and save the run (config, metrics, checkpoints, summary).

    Under torchrun this is data-parallel training (DDP): train.batch_size is the global batch, split evenly over the workers, and rank 0 writes the run.
    """
    from dropcli.api import training

    if resume is not None and (options["config"] or run_dir is not None):
        raise DropcliError("--resume continues a run with its own config and directory; drop --config and --run-dir")
    if dry_run:
        _describe_run(resume, options)
        return
    with interrupts_reported():
        if resume is not None:
            training.resume_run(resume, options["set_"] or [], flags(options), reporter(options["quiet"]))
        else:
            training.train(load(options), run_dir, progress=reporter(options["quiet"]))


def _describe_run(resume: Path | None, options: dict) -> None:
    """What `train` would do, for --dry-run: the resolved config, the data found and the device."""
    from dropcli import parallel
    from dropcli.runs.resume import prepare_resume

    with parallel.start() as workers:
        if resume is not None:
            cfg = workers.on_primary(lambda: prepare_resume(resume, options["set_"] or [], flags(options)))[0]
        else:
            cfg = load(options)
        torch_device, data = workers.agreed(lambda: open_data(cfg, workers))
        describe(cfg, data, torch_device)


@app.command(cls=Command, epilog="Example: dropcli compare scratch builtin -c configs/default.yaml --seeds 3")
@with_options({**EXPERIMENT_OPTIONS, **FIGURE_OPTIONS})
def compare(
    models: Annotated[list[str], typer.Argument(help=f"Models to train side by side: {one_of(MODEL_KINDS)}.")],
    plot: Annotated[
        bool,
        typer.Option(
            "--plot", help="Also draw curves.png: loss and accuracy against epoch, one colour per model, mean ± std over seeds."
        ),
    ] = False,
    **options,
) -> None:
    """Train several models on the same config, seeds and data order, and tabulate them.

    A comparison is a sweep over model.kind: every run is kept, and the same command with the same --run-dir continues an interrupted comparison.
    """
    from dropcli.cli.display.report import compare_table
    from dropcli.experiments import Grid

    grids = [Grid("model.kind", tuple(models), source="MODELS")]
    style = figure_style(options, drawn=plot)
    draw = (lambda result: _curves(result, style)) if plot else None
    _experiment(load(options), grids, options, "compare", lambda cells: [compare_table(cells)], draw)


@app.command(
    cls=Command,
    epilog="Example: dropcli sweep --grid model.dropout=0,0.2,0.5 --grid model.hidden=256x256,1024x1024x1024 --seeds 2; or: dropcli sweep --plan study.yaml",
)
@with_options({**EXPERIMENT_OPTIONS, "model": CONFIG_OPTIONS["model"], **FIGURE_OPTIONS})
def sweep(
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", metavar="KEY=V1,V2,...", help="A config key and its values; repeat for a product."),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan", metavar="FILE", help="A study file (YAML: config, grid, seeds, sample); flags given here override it."
        ),
    ] = None,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot",
            help="Also draw sweep.png: accuracy against the value for one key, heatmaps for two, a panel per key otherwise.",
        ),
    ] = False,
    sample_count: Annotated[
        int | None,
        typer.Option(
            "--sample",
            metavar="N",
            min=1,
            help="Random search: N trials drawn from the grids (ranges LOW:HIGH or LOW:HIGH:log, or lists), seeded by --seed.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (grids and trials) and the trial count, and stop.")
    ] = False,
    **options,
) -> None:
    """Train every combination of grid values; tabulate test accuracy and the generalisation gap.

    Any config key but seed can be a grid key (model, optim, train and data keys, device, name). The same command with the same --run-dir continues an interrupted sweep.
    """
    from dropcli.cli.display.report import sweep_tables
    from dropcli.experiments import sample, sweep_plan

    planned = sweep_plan.resolve(
        plan, options["config"], options["set_"] or [], flags(options), grid or [], options["seeds"], sample_count
    )
    options["seeds"], sample_count = planned.seeds, planned.sample
    cfg, grids = planned.config, planned.grids
    keys = [g.key for g in grids]
    log_keys = [g.key for g in grids if g.span is not None and g.span[2]]  # ranges sampled on a log scale
    if sample_count:
        grids = sample(grids, sample_count, cfg.seed)
    view = lambda cells: sweep_tables(cells, keys, matrices=not sample_count)  # noqa: E731 (random search: a row per trial)
    style = figure_style(options, drawn=plot)
    draw = (lambda result: _sweep_figure(result, style)) if plot else None
    _experiment(cfg, grids, options, "sweep", view, draw, sampled=sample_count, dry_run=dry_run, log_keys=log_keys)


def _experiment(
    cfg: Config,
    grids,
    options: dict,
    kind: str,
    view,
    draw,
    sampled: int | None = None,
    dry_run: bool = False,
    log_keys: list[str] = (),
) -> None:
    """Plan, check and run an experiment (compare or sweep); print `view(cells)`; `draw` a figure.

    Under torchrun the trials are dealt over the workers and only rank 0 prints and writes the
    results. Every trial's config, device, data and memory are checked before the first trains.
    """
    from dropcli import experiments
    from dropcli.api.experiments import run_experiment
    from dropcli.cli.display import figure

    seeds, run_dir = options["seeds"] or 1, options["run_dir"]
    if dry_run:
        _describe_plan(experiments.plan(cfg, grids, seeds, zipped=sampled is not None), grids, seeds, run_dir)
        return
    if draw is not None:
        figure.check_available()
    # --quiet: not even each run's closing lines; the experiment's table is the summary.
    progress = True if not options["quiet"] else reporter(True, run_lines=False)
    with interrupts_reported():
        result = run_experiment(cfg, grids, seeds, sampled, run_dir, kind, progress, log_keys)
    if rank_zero():  # under torchrun, rank 0 alone prints and writes the results
        screen = console()
        screen.print(*view(result.cells))
        if draw is not None:
            screen.print(f"figure saved to {draw(result)}", highlight=False, soft_wrap=True)
        screen.print(f"{kind} saved to {result.directory}", highlight=False)
    failed = result.failed
    if failed:
        raise DropcliError(
            f"{len(failed)} of {sum(len(cell.runs) for cell in result.cells)} trials diverged ({', '.join(failed)}); the tables show the rest, "
            "and each diverged run's summary.json says where it failed",
            exit_code=3,
        )


def _describe_plan(planned, grids, seeds: int, run_dir: Path | None) -> None:
    """What an experiment would train, for --dry-run: its grids, each trial, and the count."""
    for grid in grids:
        typer.echo(f"grid {grid.key}: {', '.join(map(str, grid.values))}")
    for trial in planned:
        typer.echo(f"  {trial.name}")
    cells = len(planned) // seeds
    where = f" into {run_dir}" if run_dir else ""
    count = f"{len(planned)} trial{'s' * (len(planned) > 1)} ({cells} cell{'s' * (cells > 1)} × {seeds} seed{'s' * (seeds > 1)})"
    typer.echo(f"{count}{where}; dry run: nothing trained, nothing written")


def _curves(result, style) -> Path:
    from dropcli.cli.display import figure

    figure.save(result.curves(style), result.directory / "curves.png")
    return result.directory / "curves.png"


def _sweep_figure(result, style) -> Path:
    from dropcli.cli.display import figure

    figure.save(result.figure(style), result.directory / "sweep.png")
    return result.directory / "sweep.png"
