"""The `dropcli` command line: parse, call the core, print.

app.py holds the Typer application and its one-line errors, options.py the options commands
share; training.py, tune.py, results.py and setup.py hold the commands. torch and the training code are
imported inside the commands that need them, so `--help` and `config show` start in a fraction
of a second.
"""

# Each adds its commands to app; --help lists them in this order.
from dropcli.cli import training, tune, results, setup  # noqa: F401  isort: skip
from dropcli.cli.app import app, main

__all__ = ["app", "main"]
