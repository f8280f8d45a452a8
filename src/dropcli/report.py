"""What the user sees: Rich progress and tables, fed by the training callbacks.

On a terminal each epoch shows a live progress bar above a table that grows a row per epoch.
Elsewhere (CI logs, pipes) each epoch prints one plain line. Quiet mode prints only summaries.
"""

import time

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dropcli import run
from dropcli.experiments import Cell, Stat, matrix
from dropcli.run import RunResult
from dropcli.train import EpochMetrics
from dropcli.architecture import short
from dropcli.vocabulary import noise_slots


class Reporter(run.Reporter):
    """Shows each run's progress and results on a console, in live, plain or quiet mode."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.live_mode = console.is_terminal and not quiet
        self.total_epochs = 0
        self.batch_size = 0
        self.table: Table | None = None
        self.bar: Progress | None = None
        self.live: Live | None = None
        self.task = None
        self.epoch = 0
        self.epoch_started = 0.0

    def run_started(self, config, run_dir) -> None:
        self.total_epochs = config.train.epochs
        self.batch_size = config.train.batch_size
        if self.quiet:
            return
        self.console.print(f"[bold]{config.model.kind}[/] on {escape(config.name)}: {config.train.epochs} epochs -> {escape(str(run_dir))}")
        if self.live_mode:
            self.table = epoch_table(noise_slots(len(config.model.hidden), config.model.dropout_input > 0) if config.metrics.activation_stats else ())
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), console=self.console, transient=True,
            )  # fmt: skip
            self.live = Live(Group(self.table, self.bar), console=self.console, refresh_per_second=8)
            self.live.start()

    def progress(self, epoch: int, batches_done: int, n_batches: int, loss: float | None) -> None:
        if self.bar is None:
            return
        if epoch != self.epoch or self.task is None:
            self.epoch, self.epoch_started = epoch, time.perf_counter()
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch}/{self.total_epochs}", total=n_batches, loss="-", rate="")
        if loss is not None:
            elapsed = time.perf_counter() - self.epoch_started
            rate = f"{batches_done * self.batch_size / elapsed:,.0f} samples/s"
            self.bar.update(self.task, completed=batches_done, loss=f"{loss:.4f}", rate=rate)

    def epoch_finished(self, metrics: EpochMetrics) -> None:
        if self.quiet:
            return
        if self.table is not None:
            self.table.add_row(*epoch_cells(metrics))
        else:
            self.console.print(epoch_line(metrics, self.total_epochs), highlight=False)

    def run_finished(self, result: RunResult) -> None:
        if self.live is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
                self.task = None
            self.live.stop()
            self.live = self.table = self.bar = None
        self.console.print(summary_line(result), highlight=False)

    def notice(self, message: str) -> None:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"warning: {message}")

    def close(self) -> None:
        """Stop the live display if a run ended early (an error or Ctrl-C)."""
        if self.live is not None:
            self.live.stop()
            self.live = None


class Silent(run.Reporter):
    """Says nothing: a worker other than rank 0 under DDP, where rank 0 reports the run."""

    def __init__(self, console: Console):
        self.console = console

    def close(self) -> None:
        pass


def epoch_table(slots: tuple[str, ...] = ()) -> Table:
    """The live table of epochs, with columns for the activation statistics of `slots`."""
    table = Table(title=None, header_style="bold")
    for name in ("epoch", "lr", "train loss", "train acc", "test loss", "test acc", "seconds"):
        table.add_column(name, justify="right")
    for slot in slots:
        table.add_column(f"var {slot} before→after", justify="right")
        table.add_column(f"zeros {slot}", justify="right")
    return table


def _slots(activations: dict[str, float] | None) -> list[str]:
    """The noise slots an epoch's activation statistics cover, in the model's order."""
    return list(dict.fromkeys(key.rsplit(".", 1)[0] for key in activations)) if activations else []


def epoch_cells(m: EpochMetrics) -> list[str]:
    cells = [str(m.epoch), _lr(m), f"{m.train_loss:.4f}", f"{m.train_acc:.4f}", f"{m.test_loss:.4f}", f"{m.test_acc:.4f}", f"{m.seconds:.2f}"]
    for slot in _slots(m.activations):
        cells += [f"{m.activations[f'{slot}.var_before']:.4f}→{m.activations[f'{slot}.var_after']:.4f}", f"{m.activations[f'{slot}.zeros']:.3f}"]
    return cells


def epoch_line(m: EpochMetrics, total_epochs: int) -> str:
    width = len(str(total_epochs))
    val = f"  val loss {m.val_loss:.4f}  val acc {m.val_acc:.4f}" if m.val_loss is not None else ""
    stats = "".join(
        f"  {slot} var {m.activations[f'{slot}.var_before']:.4f}→{m.activations[f'{slot}.var_after']:.4f}"
        f" zeros {m.activations[f'{slot}.zeros']:.3f}"
        for slot in _slots(m.activations)
    )
    return (
        f"epoch {m.epoch:>{width}}/{total_epochs}  lr {_lr(m)}  train loss {m.train_loss:.4f}  train acc {m.train_acc:.4f}  "
        f"test loss {m.test_loss:.4f}  test acc {m.test_acc:.4f}{val}  {m.seconds:.2f} s  {m.samples_per_s:,.0f} samples/s{stats}"
    )


def _lr(m: EpochMetrics) -> str:
    return "-" if m.lr is None else f"{m.lr:.3g}"


def summary_line(result: RunResult) -> str:
    s = result.summary
    final = s["final"]
    return (
        f"{s['model']}: test acc {final['test_acc']:.4f}, test loss {final['test_loss']:.4f} after {s['epochs']} epochs "
        f"in {s['seconds']:.1f} s ({s['seconds_per_epoch']:.2f} s/epoch, {s['samples_per_s']:,.0f} samples/s on {s['device']}); "
        f"run saved to {result.run_dir}"
    )


def compare_table(cells: list[Cell]) -> Table:
    """One row per model of a comparison: every statistic, mean ± std over seeds."""
    table = Table(header_style="bold")
    table.add_column("model")
    for name in ("seeds", "train loss", "test loss", "test acc", "train acc (eval)", "gap", "s/epoch", "samples/s"):
        table.add_column(name, justify="right")
    for cell in cells:
        table.add_row(
            cell.values["model.kind"], _seeds(cell), _stat(cell.train_loss, ".4f"), _stat(cell.test_loss, ".4f"),
            _stat(cell.test_acc, ".4f"), _stat(cell.train_acc, ".4f"), _stat(cell.gap, "+.4f"),
            _stat(cell.seconds_per_epoch, ".2f"), _stat(cell.samples_per_s, ",.0f"),
        )  # fmt: skip
    return table


def _seeds(cell: Cell) -> str:
    return f"{cell.seeds} ({len(cell.failed)} diverged)" if cell.failed else str(cell.seeds)


def _stat(stat: Stat | None, spec: str) -> str:
    if stat is None:
        return "diverged"
    if stat.std is None:
        return format(stat.mean, spec)
    return f"{format(stat.mean, spec)} ± {format(stat.std, spec.replace('+', ''))}"


def evaluation_tables(result, checkpoint) -> list:
    """A summary line, per-class accuracy and the confusion matrix of an Evaluation."""
    header = (
        f"{checkpoint} (epoch {result.epoch}) on {result.split}, {result.precision}: "
        f"loss {result.loss:.4f}, accuracy {result.accuracy:.4f}"
    )
    per_class = Table(title="accuracy per class", header_style="bold")
    per_class.add_column("class")
    per_class.add_column("accuracy", justify="right")
    for name, accuracy in zip(result.class_names, result.per_class_accuracy):
        per_class.add_row(name, f"{accuracy:.4f}")
    confusion = Table(title="confusion matrix (rows: true class, columns: predicted)", header_style="bold")
    confusion.add_column("")
    for index in range(len(result.class_names)):
        confusion.add_column(str(index), justify="right")
    for index, (name, row) in enumerate(zip(result.class_names, result.confusion)):
        confusion.add_row(f"{index} {name}", *map(str, row))
    parts = [header, per_class, confusion]
    if result.mc_samples:
        parts.append(
            f"Monte Carlo dropout ({result.mc_samples} passes, noise on): loss {result.mc_loss:.4f}, "
            f"accuracy {result.mc_accuracy:.4f} (deterministic, noise off: {result.accuracy:.4f})"
        )
    return parts


def runs_table(infos, root, keys: list[str]) -> Table:
    """One row per run: its result, and its values of the config keys that differ between runs."""
    table = Table(title=f"runs under {root}", header_style="bold")
    for name in ("run", "model", *keys, "epochs", "best test acc", "final test acc", "status"):
        table.add_column(name, justify="right" if "acc" in name or name == "epochs" else "left")
    for info in infos:
        settings = [escape(short(info.settings.get(key, "-"))) for key in keys]
        table.add_row(
            escape(str(info.path.relative_to(root))), info.model, *settings, f"{info.epochs_done}/{info.epochs_planned}",
            _optional(info.best_test_acc), _optional(info.final_test_acc), escape(info.status),
        )  # fmt: skip
    return table


def diff_table(first, second, settings, metrics) -> list:
    """`dropcli runs --diff A B`: the config keys that differ, then the final metrics."""
    parts = []
    for title, rows in (("config keys that differ", settings), ("final metrics", metrics)):
        table = Table(title=title, header_style="bold")
        for column in ("", escape(str(first.path)), escape(str(second.path))):
            table.add_column(column)
        for name, a, b in rows:
            table.add_row(name, *(f"{v:.4f}" if isinstance(v, float) else escape(short(v)) for v in (a, b)))
        parts.append(table if rows else f"{title}: none")
    return parts


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def sweep_tables(cells: list[Cell], keys: list[str], matrices: bool = True) -> list[Table]:
    """With two grid keys, a matrix (rows: first key, columns: second) for test accuracy and one
    for the generalisation gap; otherwise (or without `matrices`) one row per cell."""
    with_val = any(cell.val_acc is not None for cell in cells)
    if len(keys) == 2 and matrices:
        shown = [("test_acc", "final test accuracy"), ("gap", "generalisation gap: train acc (eval mode) - test acc")]
        if with_val:  # first: the numbers to choose settings by
            shown.insert(0, ("val_acc", "final validation accuracy (choose by this one)"))
        return [_sweep_matrix(cells, keys, field, title) for field, title in shown]
    table = Table(title="sweep", header_style="bold")
    for column in [*keys, "seeds", *(["val acc"] if with_val else []), "test acc", "train acc", "gap"]:
        table.add_column(column, justify="right")
    for cell in cells:
        val = [_stat(cell.val_acc, ".4f")] if with_val else []
        table.add_row(
            *map(short, cell.values.values()), _seeds(cell), *val, _stat(cell.test_acc, ".4f"), _stat(cell.train_acc, ".4f"),
            _stat(cell.gap, "+.4f"),
        )  # fmt: skip
    return [table]


def _sweep_matrix(cells: list[Cell], keys: list[str], field: str, title: str) -> Table:
    rows, columns, grid = matrix(cells, keys, field)
    spec = "+.4f" if field == "gap" else ".4f"
    table = Table(title=f"{title} (rows: {keys[0]}, columns: {keys[1]})", header_style="bold")
    table.add_column(f"{keys[0]} \\ {keys[1]}")
    for column in columns:
        table.add_column(short(column), justify="right")
    for row, values in zip(rows, grid):
        table.add_row(short(row), *("diverged" if value is None else format(value, spec) for value in values))
    return table
