"""The `dropcli` command line: parse, call the core, print.

torch and the training code are imported inside the commands that need them, so `--help` and
`config show` start in a fraction of a second.
"""

import contextlib
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

try:  # recent Typer carries its own copy of Click
    from typer._click import exceptions as _click_errors
except ImportError:
    from click import exceptions as _click_errors
UsageError = _click_errors.UsageError
NoArgsIsHelpError = getattr(_click_errors, "NoArgsIsHelpError", ())  # Click < 8.2 shows the help without raising

from dropcli.config import Config, load_config, to_yaml
from dropcli.errors import DropcliError, first_line
from dropcli.vocabulary import DATA_SETS, ENGINES, MODEL_KINDS, SPLITS, one_of


def _flags_without_metavar(params):
    # A flag takes no value: its help shows no "<bool>" after it.
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    return params


@contextlib.contextmanager
def _usage_in_one_line():
    """Typer's usage errors (an unknown option, a bad or missing value) as one line on stderr
    with the usage hint, exit 2, instead of a boxed panel."""
    try:
        yield
    except UsageError as error:
        if isinstance(error, NoArgsIsHelpError):
            raise  # `dropcli config` alone: the help, as asked
        command = error.ctx.command_path if error.ctx is not None else "dropcli"
        message = " ".join(error.format_message().split())
        _error_line(f"{message} (see: {command} --help)")
        raise typer.Exit(error.exit_code) from None


class _Command(TyperCommand):
    def get_params(self, ctx):
        return _flags_without_metavar(super().get_params(ctx))

    def make_context(self, *args, **kwargs):
        with _usage_in_one_line():
            return super().make_context(*args, **kwargs)


class _OneLineErrors(TyperGroup):
    """Print a DropcliError as one line on stderr and exit with its code, without a traceback."""

    def get_params(self, ctx):
        return _flags_without_metavar(super().get_params(ctx))

    def make_context(self, *args, **kwargs):
        with _usage_in_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        try:
            with _usage_in_one_line():
                return super().invoke(ctx)
        except DropcliError as error:
            _error_line(str(error))
            raise typer.Exit(error.exit_code) from None
        except (OSError, MemoryError, RuntimeError) as error:
            # The machine failed us where no check could foresee it (a disk that vanished, the
            # memory another process took): still one line, and what is saved stays saved.
            message = _fault_message(error)
            if message is None:
                raise
            _error_line(message, every_rank=True)
            raise typer.Exit(1) from None


def _error_line(message: str, every_rank: bool = False) -> None:
    """The one error line. Under torchrun every worker meets the same bad input (or the error
    they agreed on) and exits with the same code, so rank 0 alone says it; a fault of one
    machine (`every_rank`) is said by the worker that met it."""
    if every_rank and not _rank_zero():
        typer.echo(f"error: worker {os.environ['RANK']}: {message}", err=True)
    elif _rank_zero():
        typer.echo(f"error: {message}", err=True)


def _rank_zero() -> bool:
    """Whether this process prints: always, except a torchrun worker other than rank 0."""
    return os.environ.get("RANK", "0") == "0" or "MASTER_ADDR" not in os.environ


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

@dataclass(frozen=True)
class Option:
    """A command-line option declared once: its Typer annotation and default, and for a flag that
    sets a config key, the key and the option's value as that key's (None leaves the key alone)."""

    annotation: Any
    default: Any = None
    key: str | None = None
    to_value: Callable[[Any], Any] = lambda value: value

    @property
    def flag(self) -> str:
        """The long name, e.g. "--device". (Typer keeps an Annotated option's first name as its default.)"""
        info = get_args(self.annotation)[1]
        return next(name for name in (info.default, *info.param_decls) if isinstance(name, str) and name.startswith("--"))


# The options that make a config, shared by train, compare, sweep and config show.
# Precedence: defaults < --config file < --set < the flags.
CONFIG_OPTIONS = {
    "config": Option(Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file. Without one, the chapter's defaults.")]),
    "set_": Option(Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set optim.lr=0.05. Repeatable.")]),
    "model": Option(Annotated[str | None, typer.Option("--model", "-m", help=f"{one_of(MODEL_KINDS)} (sets model.kind).")], key="model.kind"),
    "device": Option(DeviceOption, key="device"),
    "engine": Option(Annotated[str | None, typer.Option("--engine", help=f"How each step is computed: {one_of(ENGINES)} (sets train.engine; fused is faster).")], key="train.engine"),
    "seed": Option(Annotated[int | None, typer.Option("--seed", help="Seed for weights, dropout masks and data order; an experiment's first seed.")], key="seed"),
    # Resolved, so that the saved config still finds the data from another directory.
    "data_dir": Option(DataDirOption, key="data.root", to_value=lambda path: str(path.resolve()) if path else None),
    "stats": Option(Annotated[bool, typer.Option("--stats", help="Record activation variance and zeros at each noise layer (sets metrics.activation_stats).")],
                    False, "metrics.activation_stats", lambda on: True if on else None),
    "tensorboard": Option(Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard event files (sets metrics.tensorboard; needs dropcli\\[tensorboard]).")],
                          False, "metrics.tensorboard", lambda on: True if on else None),
}  # fmt: skip
QUIET_OPTION = {"quiet": Option(Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.")], False)}
# Options of compare and sweep; compare's models are its arguments, so it takes no --model.
EXPERIMENT_OPTIONS = {
    **{name: option for name, option in CONFIG_OPTIONS.items() if name != "model"},
    "seeds": Option(Annotated[int | None, typer.Option("--seeds", min=1, help="Train each cell with this many seeds, counting up from --seed (mean ± std). Default: 1.")]),
    "run_dir": Option(Annotated[Path | None, typer.Option("--run-dir", help="Experiment directory; an existing one is continued. Default: runs/KIND-NAME-TIME.")]),
    **QUIET_OPTION,
}  # fmt: skip


def _with_options(options: dict[str, Option]):
    """Add `options` to a command's keyword parameters, so commands share one declaration.

    Typer reads a command's parameters from its signature and annotations; the command gets the
    values as keyword arguments (usually collected with **options).
    """

    def decorate(function):
        signature = inspect.signature(function)
        kept = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option.default, annotation=option.annotation)
                 for name, option in options.items()]  # fmt: skip
        function.__signature__ = signature.replace(parameters=[*kept, *added])
        function.__annotations__ = {**function.__annotations__, **{name: option.annotation for name, option in options.items()}}
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
    from dropcli import loop, runs, workers as processes
    from dropcli.train import check_trainable
    from dropcli.workers import launch_command

    if resume is not None and (options["config"] is not None or run_dir is not None):
        raise DropcliError("--resume continues a run with its own config and directory; drop --config and --run-dir")
    with processes.start() as workers:
        if resume is not None:
            # Rank 0 reads the run (other nodes may not have it) and hands it to every worker.
            cfg, checkpoint = workers.on_primary(lambda: loop.prepare_resume(resume, options["set_"] or [], _flags(options)))
        else:
            cfg, checkpoint = _load(options), None
        torch_device, data = workers.agreed(lambda: _open(cfg, workers))
        if dry_run:
            _describe(cfg, data, torch_device)
            return
        check_trainable(cfg, torch_device, workers)  # before a run directory is made
        if resume is not None:
            directory = resume
        else:
            directory = workers.on_primary(
                lambda: runs.create_dir(run_dir) if run_dir else runs.unique_dir(runs.RUNS_DIR, runs.default_stem(cfg))
            )
        made_here = resume is None and workers.is_primary  # only rank 0 may remove what it made
        kept = lambda: runs.after_stop(directory, launch_command(), made_here)  # noqa: E731
        # Under DDP every worker trains the same run: only rank 0 reports it.
        with _interrupts_reported(kept):
            listeners = [_reporter(options["quiet"])] if workers.is_primary else []
            loop.train_run(cfg, data, torch_device, directory, listeners, resume_from=checkpoint, workers=workers)


@app.command(cls=_Command, epilog="Example: dropcli compare scratch builtin -c configs/default.yaml --seeds 3")
@_with_options(EXPERIMENT_OPTIONS)
def compare(
    models: Annotated[list[str], typer.Argument(help=f"Models to train side by side: {one_of(MODEL_KINDS)}.")],
    plot: Annotated[bool, typer.Option("--plot", help="Also draw curves.png: loss and accuracy against epoch, one colour per model, mean ± std over seeds.")] = False,
    **options,
) -> None:
    """Train several models on the same config, seeds and data order, and tabulate them.

    A comparison is a sweep over model.kind: every run is kept, and the same command with the same --run-dir continues an interrupted comparison.
    """
    from dropcli.experiments import Grid
    from dropcli.report import compare_table

    grids = [Grid("model.kind", tuple(models), source="MODELS")]
    _experiment(_load(options), grids, options, "compare", lambda cells: [compare_table(cells)], _curves if plot else None)


@app.command(cls=_Command, epilog="Example: dropcli sweep --grid model.dropout=0,0.2,0.5 --grid model.hidden=256x256,1024x1024x1024 --seeds 2; or: dropcli sweep --plan study.yaml")
@_with_options({**EXPERIMENT_OPTIONS, "model": CONFIG_OPTIONS["model"]})
def sweep(
    grid: Annotated[
        list[str] | None, typer.Option("--grid", metavar="KEY=V1,V2,...", help="A config key and its values; repeat for a product.")
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", metavar="FILE", help="A study file (YAML: config, grid, seeds, sample); flags given here override it."),
    ] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Also draw sweep.png: accuracy against the value for one key, heatmaps for two, a panel per key otherwise.")] = False,
    sample_count: Annotated[
        int | None,
        typer.Option("--sample", metavar="N", min=1, help="Random search: N trials drawn from the grids (ranges LOW:HIGH or LOW:HIGH:log, or lists), seeded by --seed."),
    ] = None,
    **options,
) -> None:
    """Train every combination of grid values; tabulate test accuracy and the generalisation gap.

    Any config key but seed can be a grid key (model, optim, train and data keys, device, name). The same command with the same --run-dir continues an interrupted sweep.
    """
    from dropcli import sweep_plan
    from dropcli.experiments import sample
    from dropcli.report import sweep_tables

    planned = sweep_plan.resolve(plan, options["config"], options["set_"] or [], _flags(options), grid or [], options["seeds"], sample_count)
    options["seeds"], sample_count = planned.seeds, planned.sample
    cfg, grids = planned.config, planned.grids
    keys = [g.key for g in grids]
    if sample_count:
        grids = sample(grids, sample_count, cfg.seed)
    view = lambda cells: sweep_tables(cells, keys, matrices=not sample_count)  # noqa: E731 (random search: a row per trial)
    _experiment(cfg, grids, options, "sweep", view, _sweep_figure(bool(sample_count)) if plot else None, sampled=sample_count)


@app.command(cls=_Command, epilog="Example: dropcli evaluate runs/study --mc-samples 50 --temperature --shift rotate=0:180:15 -o calibration.png --predictions p.npz")
def evaluate(
    targets: Annotated[
        list[Path],
        typer.Argument(metavar="RUN...", help="A run directory (its last.pt), a .pt file, or several runs that differ only in seed "
                       "(a deep ensemble; an experiment directory gives its trials)."),
    ],
    split: Annotated[str, typer.Option("--split", help=f"{one_of(SPLITS)} (val needs data.val_split > 0; an ensemble: test).")] = "test",
    device: DeviceOption = None,
    data_dir: DataDirOption = None,
    mc_samples: Annotated[
        int | None, typer.Option("--mc-samples", metavar="K", help="Also score Monte Carlo dropout: average K >= 1 passes with noise on (batched).")
    ] = None,
    shift: Annotated[
        list[str] | None,
        typer.Option("--shift", metavar="FAMILY=START:STOP:STEP", help="Score on shifted copies of the split: rotate (degrees), translate "
                     "(pixels) or noise (Gaussian std on [0, 1] pixels), STOP included, or FAMILY=V1,V2. Repeatable."),
    ] = None,
    temperature: Annotated[
        bool, typer.Option("--temperature", help="Also score temperature scaling: one T fitted by minimising NLL on the run's validation split.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Figures: FIG.png writes FIG-reliability.png (per method) and FIG-shift.png (metrics vs shift).")
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="Write every example's class probabilities, label, method and shift: .npz (numpy) or .csv (pandas).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Score saved models: accuracy and calibration, per method and shift.

    Metrics: accuracy; NLL, mean -log p(true class); Brier, squared error of p against the one-hot label summed over classes, mean over examples; ECE, 15 equal-width bins of top-label confidence, mean |accuracy - confidence| weighted by bin size; entropy, mean predictive entropy (nats); selective accuracy, on the most certain examples by entropy. One run unshifted also gets per-class accuracy and the confusion matrix. More: docs/uncertainty.md.
    """
    import json

    from dropcli import shifts, study
    from dropcli.report import evaluation_tables, monte_carlo_progress
    from dropcli.uncertainty_report import tables

    if split not in SPLITS:
        raise DropcliError(f"--split must be one of {one_of(SPLITS)}, got {split!r}")
    if mc_samples is not None and mc_samples < 1:
        raise DropcliError(f"--mc-samples {mc_samples}: K must be at least 1 (leave the option out for no Monte Carlo dropout)")
    points = shifts.parse_all(shift or [])
    request = study.Request(targets, split, mc_samples or 0, points, temperature)
    with monte_carlo_progress(_console(stderr=True)) as progress:
        outcome = study.evaluate(request, _flags({"device": device, "data_dir": data_dir}), output, predictions, progress)
    if not _rank_zero():
        return  # under torchrun each worker scores the same checkpoints: one report is enough
    if as_json:
        single = outcome.evaluation
        head = {"checkpoint": str(outcome.study.members[0].checkpoint), **dataclasses.asdict(single)} if single else {}
        typer.echo(json.dumps({**head, "uncertainty": study.to_json(outcome.study)}, indent=2))
    else:
        console = _console()
        if outcome.evaluation is not None:
            console.print(*evaluation_tables(outcome.evaluation, outcome.study.members[0].checkpoint))
        console.print(*tables(outcome.study))
    for path in outcome.written:
        typer.echo(f"wrote {path}", err=as_json)


@app.command(cls=_Command, epilog="Example: dropcli predict runs/default-scratch-20261127-171512 boot.png --top 3; or: ... --index 0 --index 42 --mc-samples 20")
def predict(
    target: Annotated[Path, typer.Argument(metavar="RUN_DIR|CHECKPOINT", help="A run directory (its last.pt) or a .pt file.")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(metavar="IMAGE...", help="PNG or JPEG files, each of one garment; made into what the model was trained on: 28 x 28 grey, light on black."),
    ] = None,
    index: Annotated[list[int] | None, typer.Option("--index", metavar="N", help="An image of the Fashion-MNIST test set, 0 to 9999, with its true class. Repeatable.")] = None,
    invert: Annotated[bool, typer.Option("--invert", help="Invert the image files first: for a dark garment on a light background.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=10, help="Show this many most probable classes.")] = 3,
    mc_samples: Annotated[
        int, typer.Option("--mc-samples", min=0, metavar="K", help="Monte Carlo dropout: average K passes with noise on, and show the predictive entropy.")
    ] = 0,
    device: DeviceOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every class's probability as JSON.")] = False,
) -> None:
    """Class probabilities of a saved model for image files or test-set images.

    The model expects what Fashion-MNIST holds: one garment, centred, as a 28 x 28 grey image with the garment light on a black background. An image file is converted to grey, padded to a square with its border colour and resized to 28 x 28; a photo of a dark garment on a white background needs --invert. Reading image files needs Pillow (pip install 'dropcli\\[images]').
    """
    import dataclasses
    import json

    from dropcli import evaluation
    from dropcli import predict as predicting
    from dropcli.report import prediction_table

    if not images and not index:
        raise DropcliError("name an image file (PNG or JPEG) or a test-set image with --index N")
    path, payload = evaluation.load_target(target)
    cfg = load_config(base=payload["config"], flags=_flags({"device": device, "data_dir": data_dir}))
    predictions = _predictions(predicting, cfg, payload, images or [], index or [], invert, mc_samples)
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(path), "classes": list(predicting.dataset(cfg.data.name).class_names),
                               "predictions": [{k: v for k, v in dataclasses.asdict(p).items() if k != "class_names"} for p in predictions]}, indent=2))  # fmt: skip
        return
    _console().print(prediction_table(predictions, top, path))


def _predictions(predicting, cfg: Config, payload: dict, images: list[Path], indices: list[int], invert: bool, mc_samples: int):
    import torch

    from dropcli.workers import Workers

    rows = [predicting.image_tensor(image, invert) for image in images]
    test_X, labels = predicting.images_of_test_set(cfg, indices) if indices else (torch.empty(0, predicting.SIDE**2), [])
    X = torch.cat([torch.stack(rows) if rows else torch.empty(0, predicting.SIDE**2), test_X])
    sources = [str(image) for image in images] + [f"test image {i}" for i in indices]
    return predicting.predict(cfg, payload, X, Workers().device(cfg.device), sources, [None] * len(images) + labels, mc_samples)


@app.command(cls=_Command, epilog="Example: dropcli plot runs/cmp/kind=scratch_seed0 runs/cmp/kind=builtin_seed0 -o curves.pdf")
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="Runs to draw; runs that differ only in their seed share a colour (mean ± std).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write; its suffix chooses the format: .png, .pdf or .svg.")] = Path("curves.png"),
) -> None:
    """Draw the chapter's figure: loss and accuracy against epoch (train, test and validation when the runs have one)."""
    from dropcli import plots

    plots.check_output(output)
    plots.save(plots.runs_figure(plots.run_groups(run_dirs)), output)
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
    from dropcli.shipped import description

    table = Table(title="shipped configs (dropcli train -c NAME; a copy to edit: dropcli config cp NAME FILE)", header_style="bold")
    for column in ("name", "what", "file"):
        table.add_column(column, overflow="fold")
    for name, path in shipped_configs().items():
        table.add_row(name, escape(description(path)), escape(str(path)))
    _console().print(table)


@config_app.command("cp", cls=_Command, epilog="Example: dropcli config cp smoke my-run.yaml; then: dropcli train -c my-run.yaml")
def config_cp(
    name: Annotated[str, typer.Argument(help="A shipped config's name (see dropcli config list).")],
    file: Annotated[Path, typer.Argument(help="Where to write the copy: a file, or a directory to put NAME.yaml in.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Copy a shipped config, comments and all, to a file you can edit."""
    from dropcli.shipped import copy_shipped

    typer.echo(f"wrote {copy_shipped(name, file, force)}")


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
    """The flags given that set config keys: key -> (flag, value), named for error messages."""
    flags = {name: option for name, option in CONFIG_OPTIONS.items() if option.key}
    return {option.key: (option.flag, option.to_value(options.get(name))) for name, option in flags.items()}


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


def _experiment(cfg: Config, grids, options: dict, kind: str, view, draw, sampled: int | None = None) -> None:
    """Plan, check and run an experiment (compare or sweep); print `view(cells)`; `draw` a figure.

    Under torchrun the trials are dealt over the workers and only rank 0 prints and writes the
    results. Every trial's config, device, data and memory are checked before the first trains.
    """
    from dropcli import experiments, plots, trials, workers as processes
    from dropcli.workers import launch_command

    seeds, run_dir = options["seeds"] or 1, options["run_dir"]
    planned = experiments.plan(cfg, grids, seeds, zipped=sampled is not None)
    spec = experiments.spec_of(cfg, grids, seeds, sampled)
    if draw is not None:
        plots.check_available()
    _check_extras(cfg)
    with processes.start() as workers:
        trials.check_resources(planned, workers)
        # Every worker must name the same directory: rank 0 picks (and makes) the default one.
        directory = run_dir or workers.on_primary(lambda: _default_dir(kind, cfg))
        with _interrupts_reported(lambda: trials.after_stop(directory, launch_command())):
            # Each worker says when its trials finish; rank 0 alone shows their epochs.
            listeners = [_reporter(options["quiet"] or not workers.is_primary)]
            cells = trials.run(spec, planned, directory, listeners, workers)
        if workers.is_primary:
            console = _console()
            console.print(*view(cells))
            if draw is not None:
                draw(cells, directory, cfg)
            console.print(f"{kind} saved to {directory}", highlight=False)
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


def _curves(cells, directory: Path, config: Config) -> None:
    from dropcli import plots

    groups = [(str(cell.values["model.kind"]), [directory / name for name in cell.runs if name not in cell.failed]) for cell in cells]
    plots.save(plots.runs_figure([group for group in groups if group[1]]), directory / "curves.png")


def _sweep_figure(sampled: bool):
    def draw(cells, directory: Path, config: Config) -> None:
        from dropcli import plots, sweep_plots

        keys = list(cells[0].values)
        caption = sweep_plots.experiment_caption(config, cells, directory, keys)
        plots.save(sweep_plots.sweep_figure(cells, keys, caption, sampled), directory / "sweep.png")

    return draw


def _reporter(quiet: bool):
    """The terminal display of runs: live on a terminal, a line per epoch elsewhere."""
    from dropcli.report import Reporter

    return Reporter(_console(), quiet=quiet)


@contextlib.contextmanager
def _interrupts_reported(kept: Callable[[], str]):
    """On Ctrl-C or SIGTERM, stop at once, say what was kept, and exit 130 or 143; when a file
    cannot be written (a full disk), say so and what was kept, and exit 1. `kept()` says what
    was kept, looked at after the stop."""
    from dropcli.files import WriteError
    from dropcli.runtime import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as interrupt:
        if _rank_zero():  # every worker is interrupted; one says what was kept
            typer.echo(f"interrupted; {kept()}", err=True)
        raise typer.Exit(143 if isinstance(interrupt, Terminated) else 130) from None
    except WriteError as error:
        raise WriteError(f"{error}; {kept()}") from None


def _console(stderr: bool = False):
    """A Rich console on stdout (or stderr) that keeps plain lines whole in logs and pipes."""
    from rich.console import Console

    # soft_wrap: a plain line in a CI log stays one line, whatever the width.
    console = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if not console.is_terminal:
        console.width = 160  # room for the tables instead of Rich's 80 columns
    return console
