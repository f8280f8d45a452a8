"""The `dropcli` command line: parse, call the core, print.

torch and the training code are imported inside the commands that need them, so `--help` and
`config show` start in a fraction of a second.
"""

import contextlib
import inspect
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from dropcli.config import Config, load_config, to_yaml
from dropcli.errors import DropcliError, first_line
from dropcli.vocabulary import DATA_SETS, ENGINES, MODEL_KINDS, SPLITS, one_of


def _flags_without_metavar(params):
    # A flag takes no value: its help shows no "<bool>" after it.
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx):
        return _flags_without_metavar(super().get_params(ctx))


class _OneLineErrors(TyperGroup):
    """Print a DropcliError as one line on stderr and exit with its code, without a traceback."""

    def get_params(self, ctx):
        return _flags_without_metavar(super().get_params(ctx))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DropcliError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
        except (OSError, MemoryError, RuntimeError) as error:
            # The machine failed us where no check could foresee it (a disk that vanished, the
            # memory another process took): still one line, and what is saved stays saved.
            message = _fault_message(error)
            if message is None:
                raise
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(1) from None


def _fault_message(error: BaseException) -> str | None:
    """One line for a fault of the machine; None for an error that is a bug in dropcli."""
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}; check the path, its permissions and the free space, then run again"
    text = first_line(error, limit=120)
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError" or "can't allocate memory" in text:
        return f"out of memory ({text}); use a smaller model or batch, or free some memory"
    return None


def _typer(help: str, completion: bool = False) -> typer.Typer:
    return typer.Typer(
        cls=_OneLineErrors, help=help, no_args_is_help=True, add_completion=completion, pretty_exceptions_enable=False
    )


app = _typer("Train and compare dropout MLPs on Fashion-MNIST (d2l.ai, section 5.6).", completion=True)
config_app = _typer("Show the resolved configuration, and the configs that come with dropcli.")
data_app = _typer("Find, check and download Fashion-MNIST (or MNIST, KMNIST: --dataset).")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")

def _print_version(value: bool) -> None:
    if value:
        from dropcli import __version__

        typer.echo(f"dropcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print dropcli's version and exit.")
    ] = False,
) -> None:
    """Train and compare dropout MLPs on Fashion-MNIST (d2l.ai, section 5.6)."""


DeviceOption = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (sets device).")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Directory with the data set's four IDX files (sets data.root).")]
DatasetOption = Annotated[str, typer.Option("--dataset", help=f"The IDX data set: {one_of(DATA_SETS)}.")]

# The options that make a config, shared by train, compare, sweep and config show, as
# name: (annotation, default). Precedence: defaults < --config file < --set < the flags.
CONFIG_OPTIONS = {
    "config": (Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file. Without one, the chapter's defaults.")], None),
    "set_": (Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set optim.lr=0.05. Repeatable.")], None),
    "model": (Annotated[str | None, typer.Option("--model", "-m", help=f"{one_of(MODEL_KINDS)} (sets model.kind).")], None),
    "device": (DeviceOption, None),
    "engine": (Annotated[str | None, typer.Option("--engine", help=f"How each step is computed: {one_of(ENGINES)} (sets train.engine; fused is faster).")], None),
    "seed": (Annotated[int | None, typer.Option("--seed", help="Seed for weights, dropout masks and data order; an experiment's first seed.")], None),
    "data_dir": (DataDirOption, None),
    "stats": (Annotated[bool, typer.Option("--stats", help="Record activation variance and zeros at each noise layer (sets metrics.activation_stats).")], False),
    "tensorboard": (Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard event files (sets metrics.tensorboard; needs dropcli[tensorboard]).")], False),
}  # fmt: skip
QUIET_OPTION = {"quiet": (Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.")], False)}
# Options of compare and sweep; compare's models are its arguments, so it takes no --model.
EXPERIMENT_OPTIONS = {
    **{name: option for name, option in CONFIG_OPTIONS.items() if name != "model"},
    "seeds": (Annotated[int, typer.Option("--seeds", min=1, help="Train each cell with this many seeds, counting up from --seed (mean ± std).")], 1),
    "run_dir": (Annotated[Path | None, typer.Option("--run-dir", help="Experiment directory; an existing one is continued. Default: runs/KIND-NAME-TIME.")], None),
    **QUIET_OPTION,
}  # fmt: skip


def _with_options(options: dict[str, tuple]):
    """Add `options` to a command's keyword parameters, so commands share one declaration.

    Typer reads a command's parameters from its signature and annotations; the command gets the
    values as keyword arguments (usually collected with **options).
    """

    def decorate(function):
        signature = inspect.signature(function)
        kept = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                 for name, (annotation, default) in options.items()]  # fmt: skip
        function.__signature__ = signature.replace(parameters=[*kept, *added])
        function.__annotations__ = {**function.__annotations__, **{name: option[0] for name, option in options.items()}}
        return function

    return decorate


@app.command(cls=_Command, epilog="Example: dropcli train -c configs/default.yaml --model builtin --set model.hidden=1024x1024x1024 --set model.dropout=0.2")
@_with_options({**CONFIG_OPTIONS, **QUIET_OPTION})
def train(
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Where to save the run; must not exist. Default: runs/NAME-MODEL-TIME.")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", metavar="RUN_DIR", help="Continue this run from its last checkpoint (--set train.epochs=N trains longer)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved config, the data found and the device, and stop.")
    ] = False,
    **options,
) -> None:
    """Train one MLP with dropout and save the run (config, metrics, checkpoints, summary).

    Under torchrun this is data-parallel training (DDP): train.batch_size is the global batch, split evenly over the workers, and rank 0 writes the run.
    """
    from dropcli import run, runs
    from dropcli.train import check_trainable

    if resume is not None and (options["config"] is not None or run_dir is not None):
        raise DropcliError("--resume continues a run with its own config and directory; drop --config and --run-dir")
    with _workers() as workers:
        if resume is not None:
            # Rank 0 reads the run (other nodes may not have it) and hands it to every worker.
            cfg, checkpoint = _on_primary(workers, lambda: run.prepare_resume(resume, options["set_"] or [], _flags(options)))
        else:
            cfg, checkpoint = _load(options), None
        torch_device, data = _everywhere(workers, lambda: _open(cfg, workers))
        if dry_run:
            _describe(cfg, data, torch_device)
            return
        check_trainable(cfg, torch_device, workers)  # before a run directory is made
        if resume is not None:
            directory = resume
        else:
            directory = _on_primary(
                workers, lambda: runs.create_dir(run_dir) if run_dir else runs.unique_dir(runs.RUNS_DIR, runs.default_stem(cfg))
            )
        kept = f"the finished epochs are kept in {directory}; continue with: dropcli train --resume {directory}"
        # Under DDP every worker trains the same run: only rank 0 reports it.
        with _reporting(options["quiet"], kept, silent=not workers.is_primary) as reporter:
            run.train_run(cfg, data, torch_device, directory, reporter, resume_from=checkpoint, workers=workers)


@app.command(cls=_Command, epilog="Example: dropcli compare scratch builtin -c configs/default.yaml --seeds 3")
@_with_options(EXPERIMENT_OPTIONS)
def compare(
    models: Annotated[list[str], typer.Argument(help=f"Models to train side by side: {one_of(MODEL_KINDS)}.")],
    plot: Annotated[bool, typer.Option("--plot", help="Also draw every run's learning curves into curves.png.")] = False,
    **options,
) -> None:
    """Train several models on the same config, seeds and data order, and tabulate them.

    A comparison is a sweep over model.kind: every run is kept, and the same command with the same --run-dir continues an interrupted comparison.
    """
    from dropcli.experiments import Grid
    from dropcli.report import compare_table

    grids = [Grid("model.kind", tuple(models), source="MODELS")]
    _experiment(_load(options), grids, options, "compare", lambda cells: [compare_table(cells)], _curves if plot else None)


@app.command(cls=_Command, epilog="Example: dropcli sweep --grid model.dropout=0,0.2,0.5 --grid model.hidden=256x256,1024x1024x1024 --seeds 2")
@_with_options({**EXPERIMENT_OPTIONS, "model": CONFIG_OPTIONS["model"]})
def sweep(
    grid: Annotated[
        list[str], typer.Option("--grid", metavar="KEY=V1,V2,...", help="A config key and its values; repeat for a product.")
    ],
    plot: Annotated[bool, typer.Option("--plot", help="With two grid keys, also draw heatmap.png.")] = False,
    sample_count: Annotated[
        int | None,
        typer.Option("--sample", metavar="N", min=1, help="Random search: N trials drawn from the grids (ranges LOW:HIGH or LOW:HIGH:log, or lists), seeded by --seed."),
    ] = None,
    **options,
) -> None:
    """Train every combination of grid values; tabulate test accuracy and the generalisation gap.

    Any config key but seed can be a grid key (model, optim, train and data keys, device, name). The same command with the same --run-dir continues an interrupted sweep.
    """
    from dropcli.experiments import parse_grid, sample
    from dropcli.report import sweep_tables

    cfg = _load(options)
    grids = [parse_grid(text) for text in grid]
    keys = [g.key for g in grids]
    if plot and (len(grids) != 2 or sample_count):
        raise DropcliError("--plot draws a heatmap of a grid of two keys; this sweep is not one")
    if sample_count:
        grids = sample(grids, sample_count, cfg.seed)
    view = lambda cells: sweep_tables(cells, keys, matrices=not sample_count)  # noqa: E731 (random search: a row per trial)
    _experiment(cfg, grids, options, "sweep", view, _heatmap if plot else None, sampled=sample_count)


@app.command(cls=_Command, epilog="Example: dropcli evaluate runs/default-scratch-20261127-171512 --split test --mc-samples 20")
def evaluate(
    target: Annotated[Path, typer.Argument(metavar="RUN_DIR|CHECKPOINT", help="A run directory (its last.pt) or a .pt file.")],
    split: Annotated[str, typer.Option("--split", help=f"{one_of(SPLITS)} (val needs data.val_split > 0).")] = "test",
    device: DeviceOption = None,
    data_dir: DataDirOption = None,
    mc_samples: Annotated[
        int, typer.Option("--mc-samples", min=0, help="Also score Monte Carlo dropout: average this many passes with noise on.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Score a saved model: loss, accuracy, per-class accuracy and the confusion matrix."""
    import dataclasses
    import json

    from dropcli import checkpoints, evaluation
    from dropcli.report import evaluation_tables

    if split not in SPLITS:
        raise DropcliError(f"--split must be one of {one_of(SPLITS)}, got {split!r}")
    path = target / "checkpoints" / "last.pt" if target.is_dir() else target
    payload = checkpoints.load(path)
    cfg = load_config(base=payload["config"], flags=_flags({"device": device, "data_dir": data_dir}))
    torch_device, data = _open(cfg)
    result = evaluation.evaluate_checkpoint(cfg, payload, data, torch_device, split, mc_samples)
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(path), **dataclasses.asdict(result)}, indent=2))
        return
    _console().print(*evaluation_tables(result, path))


@app.command(cls=_Command, epilog="Example: dropcli plot runs/cmp/kind=scratch_seed0 runs/cmp/kind=builtin_seed0 -o curves.png")
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Runs to draw, one colour each.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")] = Path("curves.png"),
) -> None:
    """Draw the chapter's figure: train loss, test loss and test accuracy against epoch."""
    from dropcli import plots, runs

    histories = [(run_dir.name, runs.read_metrics(run_dir)) for run_dir in run_dirs]
    plots.save(plots.learning_curves(histories), output)
    typer.echo(f"wrote {output}")


@app.command("runs", cls=_Command, epilog="Example: dropcli runs --where model.kind=scratch --status finished --sort test_acc --top 5")
def list_runs(
    root: Annotated[Path, typer.Argument(help="Directory to scan, experiments included.")] = Path("runs"),
    where: Annotated[
        list[str] | None, typer.Option("--where", metavar="KEY=VALUE", help="Only runs whose config has this value. Repeatable.")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs that finished, diverged, were interrupted, ...")] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", metavar="KEY", help="Best first by a metric (test_acc, val_acc, test_loss, ...) or a config key.")
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Only the first N (after --sort).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON records.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the runs as CSV.")] = False,
    diff: Annotated[
        tuple[Path, Path] | None, typer.Option("--diff", metavar="RUN_A RUN_B", help="The config keys and final metrics of two runs side by side.")
    ] = None,
) -> None:
    """List past runs: their results, and the config values that tell them apart."""
    from dropcli import catalog, runs
    from dropcli.report import diff_table, runs_table

    if diff is not None:
        first, second = (_one_run(path) for path in diff)
        _console().print(*diff_table(first, second, *catalog.diff(first, second)))
        return
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DropcliError(f"{root} {what}; train something first, or name the directory of runs to scan")
    infos = catalog.where(runs.list_runs(root), where or [], status)
    infos = catalog.sort(infos, sort) if sort else infos
    infos = infos[:top] if top else infos
    keys = catalog.differing_keys(infos)
    if as_json or as_csv:
        _print_records(catalog.records(infos, keys, root), as_json)
        return
    _console().print(runs_table(infos, root, keys))


def _one_run(path: Path):
    from dropcli import runs

    if not (path / "config.yaml").is_file():
        raise DropcliError(f"--diff {path}: not a run directory (no config.yaml)")
    return runs.run_info(path)


def _print_records(records: list[dict], as_json: bool) -> None:
    import csv
    import io
    import json

    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for record in records for key in record)))
    writer.writeheader()
    writer.writerows(records)
    typer.echo(buffer.getvalue(), nl=False)


@config_app.command("show", cls=_Command, epilog="Example: dropcli config show -c configs/smoke.yaml --set optim.lr=0.05")
@_with_options(CONFIG_OPTIONS)
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False, **options
) -> None:
    """Print the resolved config as YAML, with the same options train takes."""
    import json

    from dropcli.config import to_dict

    cfg = _load(options)
    typer.echo(json.dumps(to_dict(cfg), indent=2) if as_json else to_yaml(cfg), nl=as_json)


@config_app.command("list", cls=_Command, epilog="Example: dropcli config list; then: dropcli train -c smoke")
def config_list() -> None:
    """List the configs that come with dropcli; pass a name to -c, e.g. dropcli train -c smoke."""
    from rich.table import Table

    from dropcli.config import shipped_configs

    table = Table(title="shipped configs (dropcli train -c NAME)", header_style="bold")
    for column in ("name", "what", "file"):
        table.add_column(column)
    for name, path in shipped_configs().items():
        first = next((line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
        table.add_row(name, first, str(path))
    _console().print(table)


@data_app.command("fetch", cls=_Command, epilog="Example: dropcli data fetch --data-dir ~/data/fashion-mnist")
def data_fetch(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Download here. Default: $DROPCLI_DATA or ~/.cache/dropcli/NAME.")
    ] = None,
    name: DatasetOption = "fashion-mnist",
) -> None:
    """Make a data set available (Fashion-MNIST unless --dataset): use a copy already here, else download it with torchvision."""
    from dropcli import data

    _check_dataset(name)
    directory = data.find_or_fetch(data_dir, name)
    data.read_raw(directory, name)
    typer.echo(f"{data.dataset(name).title} is available in {directory}")


@data_app.command("info", cls=_Command, epilog="Example: dropcli data info --data-dir /usr/share/datasets/fashion-mnist")
def data_info(data_dir: DataDirOption = None, name: DatasetOption = "fashion-mnist") -> None:
    """Say where a data set (Fashion-MNIST unless --dataset) was found and check every file's structure."""
    from rich.table import Table

    from dropcli import data

    _check_dataset(name)
    directory = data.locate(data_dir, name)
    raw = data.read_raw(directory, name)
    paths = data.find_files(directory, name)
    table = Table(title=f"{data.dataset(name).title} in {directory}", header_style="bold")
    for column in ("split", "images file", "labels file", "examples", "shape"):
        table.add_column(column)
    for split, (images, labels) in raw.items():
        images_name, labels_name = data.FILES[split]
        table.add_row(split, paths[images_name].name, paths[labels_name].name, f"{len(labels):,}", "x".join(map(str, images.shape[1:])))
    _console().print(table)


def _check_dataset(name: str) -> None:
    if name not in DATA_SETS:
        raise DropcliError(f"--dataset must be one of {one_of(DATA_SETS)}, got {name!r}")


def main() -> None:
    app(prog_name="dropcli")


def _flags(options: dict) -> dict[str, tuple[str, object]]:
    """The dedicated options as config keys, named for error messages; None leaves a key alone."""
    data_dir, stats = options.get("data_dir"), options.get("stats")
    return {
        "model.kind": ("--model", options.get("model")),
        "device": ("--device", options.get("device")),
        "train.engine": ("--engine", options.get("engine")),
        "seed": ("--seed", options.get("seed")),
        # Resolved, so that the saved config still finds the data from another directory.
        "data.root": ("--data-dir", str(data_dir.resolve()) if data_dir else None),
        "metrics.activation_stats": ("--stats", True if stats else None),
        "metrics.tensorboard": ("--tensorboard", True if options.get("tensorboard") else None),
    }


def _load(options: dict) -> Config:
    return load_config(options["config"], options["set_"] or [], _flags(options))


def _open(cfg: Config, workers=None):
    """The torch device (this worker's, under torchrun) and the data on it; may raise DropcliError."""
    from dropcli import data
    from dropcli.workers import Workers

    _check_extras(cfg)
    torch_device = (workers or Workers()).device(cfg.device)
    return torch_device, data.load(cfg.data, cfg.seed, torch_device)


def _describe(cfg: Config, data, device) -> None:
    """What a run would train, for --dry-run."""
    val = f", {len(data.val):,} validation" if data.val is not None else ""
    typer.echo(to_yaml(cfg), nl=False)
    typer.echo(f"data: {data.source} ({len(data.train):,} training{val}, {len(data.test):,} test images)")
    typer.echo(f"device: {device}")
    typer.echo("dry run: nothing trained, nothing written")


def _check_extras(cfg: Config) -> None:
    """Optional packages the config asks for, checked before any directory is made."""
    if cfg.metrics.tensorboard:
        from dropcli.tensorboard import check_available

        check_available()


def _on_primary(workers, work):
    """`work()` done by rank 0 alone, its result handed to every worker; an error stops them all."""
    result, error = None, None
    if workers.is_primary:
        try:
            result = work()
        except DropcliError as found:
            error = found
    workers.agree(error)
    return workers.broadcast(result)


def _everywhere(workers, work):
    """`work()` done by every worker; an error on any stops them all."""
    try:
        result, error = work(), None
    except DropcliError as found:
        result, error = None, found
    workers.agree(error)
    return result


def _experiment(cfg: Config, grids, options: dict, kind: str, view, draw, sampled: int | None = None) -> None:
    """Plan, check and run an experiment (compare or sweep); print `view(cells)`; `draw` a figure.

    Under torchrun the trials are dealt over the workers and only rank 0 prints and writes the
    results. Every trial's config, device, data and memory are checked before the first trains.
    """
    from dropcli import experiments, plots, trials

    seeds, run_dir = options["seeds"], options["run_dir"]
    planned = experiments.plan(cfg, grids, seeds, zipped=sampled is not None)
    spec = experiments.spec_of(cfg, grids, seeds, sampled)
    if draw is not None:
        plots.check_available()
    _check_extras(cfg)
    with _workers() as workers:
        trials.check_resources(planned, workers)
        # Every worker must name the same directory: rank 0 picks (and makes) the default one.
        directory = run_dir or _on_primary(workers, lambda: _default_dir(kind, cfg))
        quiet = options["quiet"] or not workers.is_primary
        with _reporting(quiet, f"the finished trials are kept; continue with the same command and --run-dir {directory}") as reporter:
            cells = trials.run(spec, planned, directory, reporter, workers)
            if workers.is_primary:
                reporter.console.print(*view(cells))
                if draw is not None:
                    draw(cells, directory)
                reporter.console.print(f"{kind} saved to {directory}", highlight=False)
    failed = experiments.failures(cells)
    if failed:
        raise DropcliError(
            f"{len(failed)} of {len(planned)} trials diverged ({', '.join(failed)}); the tables show the rest, "
            "and each diverged run's summary.json says where it failed",
            exit_code=3,
        )


def _default_dir(kind: str, cfg: Config) -> Path:
    from dropcli import runs

    return runs.unique_dir(runs.RUNS_DIR, f"{kind}-{cfg.name}-{runs.timestamp()}")


@contextlib.contextmanager
def _workers():
    """The processes this command runs on: this one, or torchrun's workers when torchrun started it."""
    from dropcli.workers import Workers, launched_by_torchrun

    if not launched_by_torchrun():
        yield Workers()
        return
    from dropcli import distributed

    with distributed.start() as workers:
        yield workers


def _curves(cells, directory: Path) -> None:
    from dropcli import plots, runs

    names = [name for cell in cells for name in cell.runs if name not in cell.failed]
    plots.save(plots.learning_curves([(name, runs.read_metrics(directory / name)) for name in names]), directory / "curves.png")


def _heatmap(cells, directory: Path) -> None:
    from dropcli import plots

    keys = list(cells[0].values)
    plots.save(plots.sweep_heatmaps(cells, keys), directory / "heatmap.png")


@contextlib.contextmanager
def _reporting(quiet: bool, kept: str, silent: bool = False):
    """A Reporter on stdout (`silent`: one that says nothing). On Ctrl-C or SIGTERM, stop at once,
    say what was kept, and exit 130 or 143; when a file cannot be written (a full disk), say so
    and what was kept, and exit 1."""
    from dropcli.files import WriteError
    from dropcli.report import Reporter, Silent
    from dropcli.runtime import Terminated, sigterm_as_interrupt

    reporter = Silent(_console()) if silent else Reporter(_console(), quiet=quiet)
    try:
        with sigterm_as_interrupt():
            yield reporter
    except KeyboardInterrupt as interrupt:
        reporter.close()
        typer.echo(f"interrupted; {kept}", err=True)
        raise typer.Exit(143 if isinstance(interrupt, Terminated) else 130) from None
    except WriteError as error:
        raise WriteError(f"{error}; {kept}") from None
    finally:
        reporter.close()


def _console():
    """A Rich console on stdout that keeps plain lines whole in logs and pipes."""
    from rich.console import Console

    # soft_wrap: a plain line in a CI log stays one line, whatever the width.
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160  # room for the tables instead of Rich's 80 columns
    return console
