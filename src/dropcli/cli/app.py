"""The Typer application: its command groups, and errors as one line on stderr.

Every error a user can cause is a DropcliError or a usage error, printed as one line with its
exit code and no traceback; a fault of the machine (a full disk, no memory) is one line, exit 1.
"""

import contextlib
import os
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

try:  # recent Typer carries its own copy of Click
    from typer._click import exceptions as _click_errors
except ImportError:
    from click import exceptions as _click_errors

from dropcli.errors import DropcliError, first_line

UsageError = _click_errors.UsageError
NoArgsIsHelpError = getattr(_click_errors, "NoArgsIsHelpError", ())  # Click < 8.2 shows the help without raising


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


class _OneLineUsage:
    """For commands and groups alike: flags shown without "<bool>", usage errors in one line."""

    def get_params(self, ctx):
        return _flags_without_metavar(super().get_params(ctx))

    def make_context(self, *args, **kwargs):
        with _usage_in_one_line():
            return super().make_context(*args, **kwargs)


class Command(_OneLineUsage, TyperCommand):
    """Every dropcli command (cls=Command)."""


class _OneLineErrors(_OneLineUsage, TyperGroup):
    """Print a DropcliError as one line on stderr and exit with its code, without a traceback."""

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
    if every_rank and not rank_zero():
        typer.echo(f"error: worker {os.environ['RANK']}: {message}", err=True)
    elif rank_zero():
        typer.echo(f"error: {message}", err=True)


def rank_zero() -> bool:
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


def main() -> None:
    app(prog_name="dropcli")
