"""Options shared by commands, each declared once, and the steps commands share: load the
config, open the data, report runs, say what was kept when a run stops."""

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from dropcli.cli.app import rank_zero
from dropcli.cli.display.console import console
from dropcli.config import Config, load_config, to_yaml
from dropcli.config.vocabulary import DATA_SETS, ENGINES, MODEL_KINDS, one_of
from dropcli.errors import DropcliError

DeviceOption = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (sets device).")]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Directory with the data set's four IDX files (sets data.root).")
]
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
    "config": Option(
        Annotated[
            list[Path] | None,
            typer.Option(
                "--config",
                "-c",
                metavar="FILE",
                help="YAML config file or a shipped config's name. Repeatable: the files are merged in order, "
                "a later file's keys winning (a list replaces a list). Without one, the chapter's defaults.",
            ),
        ]
    ),
    "set_": Option(
        Annotated[
            list[str] | None,
            typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set optim.lr=0.05. Repeatable."),
        ]
    ),
    "model": Option(
        Annotated[str | None, typer.Option("--model", "-m", help=f"{one_of(MODEL_KINDS)} (sets model.kind).")], key="model.kind"
    ),
    "device": Option(DeviceOption, key="device"),
    "engine": Option(
        Annotated[
            str | None,
            typer.Option("--engine", help=f"How each step is computed: {one_of(ENGINES)} (sets train.engine; fused is faster)."),
        ],
        key="train.engine",
    ),
    "seed": Option(
        Annotated[
            int | None, typer.Option("--seed", help="Seed for weights, dropout masks and data order; an experiment's first seed.")
        ],
        key="seed",
    ),
    # Resolved, so that the saved config still finds the data from another directory.
    "data_dir": Option(DataDirOption, key="data.root", to_value=lambda path: str(path.resolve()) if path else None),
    "stats": Option(
        Annotated[
            bool,
            typer.Option(
                "--stats", help="Record activation variance and zeros at each noise layer (sets metrics.activation_stats)."
            ),
        ],
        False,
        "metrics.activation_stats",
        lambda on: True if on else None,
    ),
    "tensorboard": Option(
        Annotated[
            bool,
            typer.Option(
                "--tensorboard",
                help="Also write TensorBoard event files (sets metrics.tensorboard; needs dropcli\\[tensorboard]).",
            ),
        ],
        False,
        "metrics.tensorboard",
        lambda on: True if on else None,
    ),
}


QUIET_OPTION = {"quiet": Option(Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary.")], False)}


# Options of compare and sweep; compare's models are its arguments, so it takes no --model.
EXPERIMENT_OPTIONS = {
    **{name: option for name, option in CONFIG_OPTIONS.items() if name != "model"},
    "seeds": Option(
        Annotated[
            int | None,
            typer.Option(
                "--seeds", min=1, help="Train each cell with this many seeds, counting up from --seed (mean ± std). Default: 1."
            ),
        ]
    ),
    "run_dir": Option(
        Annotated[
            Path | None,
            typer.Option("--run-dir", help="Experiment directory; an existing one is continued. Default: runs/KIND-NAME-TIME."),
        ]
    ),
    **QUIET_OPTION,
}


# How a figure is sized and typeset for a paper: every command that draws one takes these.
FIGURE_OPTIONS = {
    "width": Option(
        Annotated[
            float,
            typer.Option(
                "--width",
                min=1.5,
                max=20.0,
                metavar="INCHES",
                help="The figure's width as printed: 3.25 for one column of a two-column paper, 6.75 for two. "
                "The file is this wide, so include it at 100%.",
            ),
        ],
        3.25,
    ),
    "font_size": Option(
        Annotated[
            float,
            typer.Option("--font-size", min=4.0, max=24.0, metavar="POINTS", help="Type size of the figure's labels as printed."),
        ],
        8.0,
    ),
    "footer": Option(
        Annotated[
            bool,
            typer.Option(
                "--footer/--no-footer",
                help="The line under the figure that says what was trained (a paper's caption may say it).",
            ),
        ],
        True,
    ),
}


def figure_style(options: dict, drawn: bool = True, draws: str = "--plot"):
    """The figure style the options ask for; DropcliError where they are given but nothing is drawn
    (`draws` names the option that would draw one)."""
    from dropcli.cli.display.figure import Style

    names = {"width": "--width", "font_size": "--font-size", "footer": "--no-footer"}
    given = [names[name] for name, option in FIGURE_OPTIONS.items() if options.get(name, option.default) != option.default]
    if given and not drawn:
        raise DropcliError(f"{given[0]} sizes a figure, and none is drawn: give {draws} too, or leave {given[0]} out")
    return Style(options["width"], options["font_size"], options["footer"])


def with_options(options: dict[str, Option]):
    """Add `options` to a command's keyword parameters, so commands share one declaration.

    Typer reads a command's parameters from its signature and annotations; the command gets the
    values as keyword arguments (usually collected with **options).
    """

    def decorate(function):
        signature = inspect.signature(function)
        kept = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option.default, annotation=option.annotation)
            for name, option in options.items()
        ]
        function.__signature__ = signature.replace(parameters=[*kept, *added])
        function.__annotations__ = {**function.__annotations__, **{name: option.annotation for name, option in options.items()}}
        return function

    return decorate


def flags(options: dict) -> dict[str, tuple[str, object]]:
    """The flags given that set config keys: key -> (flag, value), named for error messages."""
    flags = {name: option for name, option in CONFIG_OPTIONS.items() if option.key}
    return {option.key: (option.flag, option.to_value(options.get(name))) for name, option in flags.items()}


def load(options: dict) -> Config:
    return load_config(options["config"], options["set_"] or [], flags(options))


def open_data(cfg: Config, workers=None):
    """The torch device (this worker's, under torchrun) and the data on it; may raise DropcliError."""
    from dropcli.api import training

    return training.open_data(cfg, workers)


def describe(cfg: Config, data, device) -> None:
    """What a run would train, for --dry-run."""
    val = f", {len(data.val):,} validation" if data.val is not None else ""
    typer.echo(to_yaml(cfg), nl=False)
    typer.echo(f"data: {data.source} ({len(data.train):,} training{val}, {len(data.test):,} test images)")
    typer.echo(f"device: {device}")
    _describe_precision(cfg, device)
    typer.echo("dry run: nothing trained, nothing written")


def _describe_precision(cfg: Config, device) -> None:
    """What the machine offers for bf16, and the precision the run would train in."""
    from dropcli.training.precision import bf16_offer, choose_precision, shown_cpu_flags

    offer = bf16_offer(device)
    if device.type == "cpu":
        typer.echo(f"cpu flags: {shown_cpu_flags()}")
    typer.echo(f"bf16 products: {'native' if offer.bf16 else 'not native'}, {offer.what}")
    if cfg.train.precision == "bf16" and not offer.bf16:
        typer.echo("precision: bf16 would be refused here; use fp32 or auto")
        return
    choice = choose_precision(cfg, device)
    typer.echo(f"precision: {choice.used} ({choice.why})")


def check_extras(cfg: Config) -> None:
    """Optional packages the config asks for, checked before any directory is made."""
    if cfg.metrics.tensorboard:
        from dropcli.runs.tensorboard import check_available

        check_available()


def reporter(quiet: bool, run_lines: bool = True):
    """The terminal display of runs: live on a terminal, a line per epoch elsewhere; `run_lines`
    False keeps even each run's closing lines back (an experiment's -q: its table is the summary)."""
    from dropcli.cli.display.report import Reporter

    return Reporter(console(), quiet=quiet, run_lines=run_lines)


@contextlib.contextmanager
def interrupts_reported(kept: Callable[[], str] | None = None):
    """On Ctrl-C or SIGTERM, stop at once, say what was kept, and exit 130 or 143; when a file
    cannot be written (a full disk), say so and what was kept, and exit 1. `kept()` says what
    was kept, looked at after the stop; without it, the API's functions have said it (the
    interrupt's `kept`, the WriteError's message)."""
    from dropcli.files import WriteError
    from dropcli.runtime import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as interrupt:
        if rank_zero():  # every worker is interrupted; one says what was kept
            said = kept() if kept is not None else getattr(interrupt, "kept", "stopped before training began; nothing is kept")
            typer.echo(f"interrupted; {said}", err=True)
        raise typer.Exit(143 if isinstance(interrupt, Terminated) else 130) from None
    except WriteError as error:
        if kept is None:
            raise
        raise WriteError(f"{error}; {kept()}") from None
