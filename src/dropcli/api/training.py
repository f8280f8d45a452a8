"""Configs and single runs from Python: `load_config`, `train`, `resume`, `load_run`, `curves`.

`dropcli train` calls `train` and `resume`; `dropcli plot` draws `curves`. torch and the
training code are imported inside the functions, so importing the API stays light.
"""

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dropcli import config as config_module
from dropcli.config import Config
from dropcli.errors import DropcliError

# What `progress=` takes: True (the display dropcli's commands show), False (nothing), or
# listeners of your own (dropcli.runs.listeners.Listener subclasses).
Progress = "bool | Listener | Sequence[Listener]"
PathLike = str | Path


def load_config(
    source: PathLike | Sequence[PathLike] | Config | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Config:
    """A validated, frozen `Config`, from the chapter's defaults, a config and overrides.

    `source` is a shipped config's name ("default", "smoke", "paper", ...), a YAML file, a list
    of them (merged in order, later keys winning, as repeated `--config`), a `Config` to start
    from, or None for the chapter's defaults. `overrides` maps dotted keys to values,
    {"optim.lr": 0.05, "model.dropout": [0.2, 0.5]}, or is a list of "KEY=VALUE" strings
    written as `--set` takes them. A bad key or value raises DropcliError naming it.

    Example: load_config("smoke", {"model.kind": "builtin", "train.epochs": 3})
    """
    if isinstance(source, Config):
        raw, paths = config_module.to_dict(source), None
    else:
        raw, paths = None, [source] if isinstance(source, (str, Path)) else list(source or [])
    if overrides is None or isinstance(overrides, Mapping):
        items = dict(overrides or {})
        # A key set to None (data.train_limit: null) cannot be a flag, which None leaves alone.
        flags = {key: (f"overrides[{key!r}]", value) for key, value in items.items() if value is not None}
        loaded = config_module.load_config(paths, flags=flags, base=raw)
        for key in (key for key, value in items.items() if value is None):
            loaded = config_module.replace(loaded, key, None, source=f"overrides[{key!r}]")
        return loaded
    if isinstance(overrides, str):
        raise DropcliError(f"overrides {overrides!r}: give a list of KEY=VALUE strings or a mapping of keys to values")
    return config_module.load_config(paths, list(overrides), base=raw)


class Run:
    """A run: its `directory`, resolved `config`, `history` (an `EpochMetrics` per finished
    epoch), `summary` (summary.json: status, final metrics, timings; None for a run that never
    wrote one) and `model`, loaded from its checkpoint on first use, in eval mode on the CPU.

    `final` is the reported epoch's metrics (the last epoch's, or the best with early
    stopping); `frame()` the history as a pandas DataFrame; `curves()` the learning-curve figure.
    """

    def __init__(self, directory: Path, config: Config, history: list, summary: dict[str, Any] | None):
        self.directory, self.config, self.history, self.summary = Path(directory), config, history, summary
        self._model = None

    def __repr__(self) -> str:
        accuracy = self.final.get("test_acc")
        shown = f", test_acc={accuracy:.4f}" if accuracy is not None else ""
        return f"Run({str(self.directory)!r}, {self.config.model.kind}, {len(self.history)} epochs, {self.status}{shown})"

    @property
    def status(self) -> str:
        """ "finished", "interrupted", "diverged", "pruned", or "unknown" without a summary."""
        return self.summary["status"] if self.summary else "unknown"

    @property
    def final(self) -> dict[str, Any]:
        """The reported epoch's metrics: test_acc, test_loss, train_loss, ... ({} before any epoch)."""
        if self.summary and isinstance(self.summary.get("final"), dict):
            return dict(self.summary["final"])
        return dataclasses.asdict(self.history[-1]) if self.history else {}

    @property
    def model(self):
        """The trained `torch.nn.Module` in eval mode on the CPU: the reported epoch's weights."""
        if self._model is None:
            import torch

            from dropcli import runs
            from dropcli.runs import checkpoints

            early = self.config.train.early_stopping is not None
            path = self.directory / (runs.BEST_CHECKPOINT if early else runs.LAST_CHECKPOINT)
            self._model = checkpoints.load_model(checkpoints.load(path), torch.device("cpu"))
        return self._model

    def metrics(self) -> list[dict[str, Any]]:
        """The history as plain records, one dict per epoch."""
        return [dataclasses.asdict(epoch) for epoch in self.history]

    def frame(self):
        """The history as a pandas DataFrame indexed by epoch (needs pandas)."""
        return data_frame(self.metrics()).set_index("epoch")

    def curves(self, style=None):
        """The learning-curve figure of this run (a matplotlib Figure), as `dropcli plot` draws it."""
        return curves([self], style)


def load_run(directory: PathLike) -> Run:
    """The run saved in `directory` (a run directory, or a trial of an experiment), as `Run`.

    Raises DropcliError when `directory` holds no readable checkpoint.
    """
    from dropcli import runs
    from dropcli.training.records import EpochMetrics
    from dropcli.uncertainty import evaluation

    directory = Path(directory)
    if directory.suffix == ".pt" or not directory.is_dir():
        raise DropcliError(f"{directory}: not a run directory; name the directory a run was saved in")
    _, payload = evaluation.load_target(directory)
    summary_path = directory / runs.SUMMARY_FILE
    summary = runs.read_summary(summary_path) if summary_path.is_file() else None
    history = [EpochMetrics(**epoch) for epoch in payload["history"]]
    return Run(directory, config_module.load_config(base=payload["config"]), history, summary)


def train(config: Config, run_dir: PathLike | None = None, *, progress: Progress = True) -> Run:
    """Train one model as `config` says and save the run; return it as a `Run`.

    `run_dir` must not exist; by default the run goes to runs/NAME-KIND-TIME under the current
    directory. `progress`: True shows each epoch as `dropcli train` does (a line per epoch in
    a notebook or log, a live table in a terminal), False shows nothing, or give listeners of
    your own (`dropcli.runs.listeners.Listener`). Under torchrun this is data-parallel training
    and rank 0 writes the run and reports it.

    Bad settings, missing data or too little memory raise DropcliError before a directory is
    made. On Ctrl-C the KeyboardInterrupt goes on with a `kept` attribute saying what was kept
    (a run that finished no epoch is removed); a file that cannot be written raises WriteError.

    Example: run = train(load_config("smoke"), progress=False); run.final["test_acc"], run.model
    """
    if not isinstance(config, Config):
        raise DropcliError(f"train takes a Config (from load_config), got {type(config).__name__}")
    return _train(config, None if run_dir is None else Path(run_dir), progress)


def resume(run_dir: PathLike, overrides: Mapping[str, Any] | Sequence[str] | None = None, *, progress: Progress = True) -> Run:
    """Continue the run in `run_dir` exactly where it stopped, e.g. `resume(run, {"train.epochs": 20})`
    to train longer. Only train.epochs, device, data.root and train.engine may change."""
    directory = run_dir.directory if isinstance(run_dir, Run) else Path(run_dir)
    if isinstance(overrides, Mapping):
        items = {key: (f"overrides[{key!r}]", value) for key, value in overrides.items()}
        return resume_run(directory, [], items, progress)
    return resume_run(directory, list(overrides or []), {}, progress)


def resume_run(run_dir: Path, overrides: list[str], flags: dict[str, tuple[str, Any]], progress: Progress) -> Run:
    """`resume` with the command line's `--set` strings and flags (key -> (flag, value)), whose
    names the errors quote."""
    from dropcli.runs.resume import prepare_resume

    return _train(None, run_dir, progress, lambda: prepare_resume(run_dir, overrides, flags))


def _train(config: Config | None, run_dir: Path | None, progress: Progress, resumed: Callable | None = None) -> Run:
    from dropcli import parallel, runs
    from dropcli.parallel.workers import launch_command
    from dropcli.runs import loop
    from dropcli.training.state import check_trainable

    with parallel.start() as workers:
        checkpoint = None
        if resumed is not None:
            # Rank 0 reads the run (other nodes may not have it) and hands it to every worker.
            config, checkpoint = workers.on_primary(resumed)
        device, data = workers.agreed(lambda: open_data(config, workers))
        check_trainable(config, device, workers)  # before a run directory is made
        if resumed is not None:
            directory = run_dir
        else:
            directory = workers.on_primary(
                lambda: runs.create_dir(run_dir) if run_dir else runs.unique_dir(runs.RUNS_DIR, runs.default_stem(config))
            )
        made_here = resumed is None and workers.is_primary  # only rank 0 may remove what it made
        with kept_on_stop(lambda: runs.after_stop(directory, launch_command(), made_here)):
            # Under DDP every worker trains the same run: only rank 0 reports it.
            listeners = listeners_of(progress, quiet=False) if workers.is_primary else []
            result = loop.train_run(config, data, device, directory, listeners, resume_from=checkpoint, workers=workers)
    return Run(result.run_dir, config, result.history, result.summary)


def open_data(config: Config, workers=None):
    """The torch device (this worker's, under torchrun) and the data on it; DropcliError when the
    data, the device or an optional package the config asks for is missing."""
    from dropcli import data
    from dropcli.parallel.workers import Workers

    if config.metrics.tensorboard:
        from dropcli.runs.tensorboard import check_available

        check_available()
    device = (workers or Workers()).device(config.device)
    return device, data.load(config.data, config.seed, device)


def listeners_of(progress: Progress, quiet: bool) -> list:
    """The listeners `progress` stands for: dropcli's display (quiet: summaries only), none, or the ones given."""
    if progress is True:
        from dropcli.cli.display.console import console
        from dropcli.cli.display.report import Reporter

        return [Reporter(console(), quiet=quiet)]
    if progress is False or progress is None:
        return []
    return list(progress) if isinstance(progress, (list, tuple)) else [progress]


@contextlib.contextmanager
def kept_on_stop(kept: Callable[[], str]) -> Iterator[None]:
    """SIGTERM stops the block as Ctrl-C does; the KeyboardInterrupt goes on with `kept`, what
    was kept (looked at after the stop); a WriteError (a full disk) is raised again saying it too."""
    from dropcli.files import WriteError
    from dropcli.runtime import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as interrupt:
        interrupt.kept = kept()
        raise
    except WriteError as error:
        raise WriteError(f"{error}; {kept()}") from None


def curves(runs: "Run | PathLike | Sequence[Run | PathLike]", style=None):
    """The chapter's figure for runs (or experiment directories, which give their trials): loss
    and accuracy against epoch, one colour per setting, mean ± std over seeds. A matplotlib
    Figure, the one `dropcli plot` saves; in a notebook it shows inline. `style`
    (dropcli.cli.display.figure.Style: width in inches, font size, footer) sizes it for a paper;
    by default one column."""
    from dropcli.cli.display import plots
    from dropcli.experiments import trial_dirs

    items = [runs] if isinstance(runs, (Run, str, Path)) else list(runs)
    directories = [item.directory if isinstance(item, Run) else Path(item) for item in items]
    return detached(plots.runs_figure(plots.run_groups(trial_dirs(directories)), style))


def detached(figure):
    """`figure` taken off pyplot's list of open figures: a notebook then shows it once, as the
    value it is, and nothing keeps it alive once the caller drops it."""
    from dropcli.cli.display.figure import load_pyplot

    load_pyplot().close(figure)
    return figure


def data_frame(records: list[dict[str, Any]]):
    """`records` as a pandas DataFrame; DropcliError when pandas is not installed."""
    try:
        import pandas
    except ImportError:
        raise DropcliError("a DataFrame needs pandas: pip install pandas (the plain records need nothing)") from None
    return pandas.DataFrame.from_records(records)
