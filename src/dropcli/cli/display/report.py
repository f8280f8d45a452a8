"""What the user sees: Rich progress and tables. `Reporter` is the epoch loop's listener.

On a terminal each epoch shows a live progress bar above a table that grows a row per epoch.
Elsewhere (CI logs, pipes) each epoch prints one plain line. Quiet mode prints only summaries.
"""

import contextlib
import time

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from dropcli.cli.display.console import console
from dropcli.cli.display.epoch_table import TRAIN_ACC_EPOCH, EpochTable, lr_text, slots_of
from dropcli.cli.display.fit import Column, Fitted
from dropcli.config.architecture import short
from dropcli.experiments import Cell, Stat, matrix
from dropcli.runs.listeners import Listener
from dropcli.runtime import count_text, duration_text
from dropcli.training.records import EpochMetrics, RunResult


class Reporter(Listener):
    """Shows each run's progress and results on a console, in live, plain or quiet mode."""

    def __init__(self, console: Console, quiet: bool = False, run_lines: bool = True):
        self.console = console
        self.quiet = quiet
        self.run_lines = run_lines  # each finished run's result and directory
        self.live_mode = console.is_terminal and not quiet
        self.total_epochs = 0
        self.batch_size = 0
        self.table: EpochTable | None = None
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
        self.console.print(
            f"[bold]{config.model.kind}[/] on {escape(config.name)}: {count_text(config.train.epochs, 'epoch')} -> {escape(str(run_dir))}",
            soft_wrap=not self.console.is_terminal,
        )
        if self.live_mode:
            self.table = EpochTable(config, self.console.width)
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.live = Live(Group(self.table.table, self.bar), console=self.console, refresh_per_second=8)
            self.live.start()

    def trial_started(self, number: int, total: int, remaining_seconds: float | None) -> None:
        if not self.quiet:
            self.console.print(trial_line(number, total, remaining_seconds), highlight=False)

    def batch_progress(self, epoch: int, batches_done: int, n_batches: int, loss: float | None) -> None:
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
            self.table.add(metrics)
        else:
            self.console.print(epoch_line(metrics, self.total_epochs), highlight=False)

    def run_finished(self, result: RunResult) -> None:
        if self.live is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.live.stop()
        self.live = self.table = self.bar = self.task = None
        if self.run_lines and result.summary is not None and result.summary["status"] == "finished":
            # The sentence wraps between words; the path has a line of its own, whole, to copy.
            self.console.print(summary_line(result), highlight=False, soft_wrap=False)
            self.console.print(f"run saved to {escape(str(result.run_dir))}", highlight=False, soft_wrap=True)

    def notice(self, message: str) -> None:
        console(stderr=True).print(f"warning: {message}")


# "train acc" is two things: the epoch's mean with dropout on (each epoch, TRAIN_ACC_EPOCH), and
# the training set scored in eval mode after the last epoch (experiments). Every table says which.
TRAIN_ACC_EVAL = "train acc (eval)"


def epoch_line(m: EpochMetrics, total_epochs: int) -> str:
    width = len(str(total_epochs))
    val = f"  val loss {m.val_loss:.4f}  val acc {m.val_acc:.4f}" if m.val_loss is not None else ""
    stats = "".join(
        f"  {slot} var {m.activations[f'{slot}.var_before']:.4f}→{m.activations[f'{slot}.var_after']:.4f}"
        f" zeros {m.activations[f'{slot}.zeros']:.3f}"
        for slot in slots_of(m.activations)
    )
    flip = "".join(f"  {split} acc (flips) {acc:.4f}" for split, acc in (m.flip_acc or {}).items())
    stats = flip + stats
    return (
        f"epoch {m.epoch:>{width}}/{total_epochs}  lr {lr_text(m)}  train loss {m.train_loss:.4f}  {TRAIN_ACC_EPOCH} {m.train_acc:.4f}  "
        f"{_test_text(m)}{val}  {m.seconds:.2f} s  {m.samples_per_s:,.0f} samples/s{stats}"
    )


def _test_text(m: EpochMetrics) -> str:
    """The epoch's test scores; a tune trial has none (it is chosen on validation only)."""
    return "no test set" if m.test_loss is None else f"test loss {m.test_loss:.4f}  test acc {m.test_acc:.4f}"


def trial_line(number: int, total: int, remaining_seconds: float | None) -> str:
    """ "trial 3 of 12 (about 4 min left)"; no estimate before a trial has finished."""
    if remaining_seconds is None:
        return f"trial {number} of {total}"
    return f"trial {number} of {total} (about {duration_text(remaining_seconds)} left)"


def summary_line(result: RunResult) -> str:
    s = result.summary
    final = s["final"]
    return (
        f"{s['model']}: test acc {final['test_acc']:.4f}, test loss {final['test_loss']:.4f} after {count_text(s['epochs'], 'epoch')} "
        f"in {s['seconds']:.1f} s ({s['seconds_per_epoch']:.2f} s/epoch, {s['samples_per_s']:,.0f} samples/s on {s['device']})"
    )


def compare_table(cells: list[Cell]) -> Fitted:
    """One row per model of a comparison: every statistic, mean ± std over seeds (on one line);
    timings are the first left out of a narrow terminal."""
    return Fitted(
        [
            Column("model", [cell.values["model.kind"] for cell in cells], justify="left", keep=True),
            Column("seeds", [_seeds(cell) for cell in cells]),
            Column("train loss", [_stat(cell.train_loss, ".4f") for cell in cells]),
            Column("test loss", [_stat(cell.test_loss, ".4f") for cell in cells]),
            Column("test acc", [_stat(cell.test_acc, ".4f") for cell in cells], keep=True),
            Column(TRAIN_ACC_EVAL, [_stat(cell.train_acc, ".4f") for cell in cells]),
            Column("gap", [_stat(cell.gap, "+.4f") for cell in cells]),
            Column("s/epoch", [_stat(cell.seconds_per_epoch, ".2f") for cell in cells], timing=True),
            Column("samples/s", [_stat(cell.samples_per_s, ",.0f") for cell in cells], timing=True),
        ]
    )


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
        f"loss {result.loss:.4f}, accuracy {result.accuracy:.4f}\n{scored_text(result)}"
    )
    names = [f"{index} {name}" for index, name in enumerate(result.class_names)]
    per_class = Fitted(
        [
            Column("class", names, justify="left", keep=True),
            Column("accuracy", [f"{accuracy:.4f}" for accuracy in result.per_class_accuracy], keep=True),
        ],
        title="accuracy per class",
    )
    # Rows and columns by the class's number (named above): ten counts of up to 5 digits beside
    # a class name would not fit 80 columns.
    counts = [Column(str(index), [str(row[index]) for row in result.confusion], keep=True) for index in range(len(names))]
    confusion = Fitted(
        [Column("", [str(index) for index in range(len(names))], justify="left", keep=True), *counts],
        title="confusion matrix (rows: true class, columns: predicted; classes numbered as above)",
    )
    parts = [header, per_class, confusion]
    if result.mc_samples:
        parts.append(
            f"Monte Carlo dropout ({result.mc_samples} passes, noise on): loss {result.mc_loss:.4f}, "
            f"accuracy {result.mc_accuracy:.4f} (deterministic, noise off: {result.accuracy:.4f})"
        )
    return parts


def scored_text(result) -> str:
    """How many images an evaluation scored, of how many its file holds, and which keys chose them."""
    file = "test" if result.split == "test" else "training"
    why = {"test": "data.test_limit", "train": "data.train_limit and data.val_split", "val": "data.val_split of data.train_limit"}
    limited = f" (set by {why[result.split]})" if result.images < result.file_images else ""
    return f"scored {result.images:,} of the {result.file_images:,} images of the {file} file{limited}"


def prediction_table(predictions, top: int, checkpoint) -> Fitted:
    """A row per input of `dropcli predict`: its most probable classes (one a line, the name and
    its probability together), and what else is known."""
    columns = [
        Column("input", [p.source for p in predictions], justify="left", keep=True, fold=True),
        Column(
            f"top {top}" if top > 1 else "most probable",
            ["\n".join(f"{name} {probability:.3f}" for name, probability in p.top(top)) for p in predictions],
            justify="left",
            keep=True,
        ),
    ]
    if any(p.true_class is not None for p in predictions):
        columns.append(Column("true class", [p.true_name or "-" for p in predictions], justify="left"))
    caption = None
    if any(p.entropy is not None for p in predictions):
        columns.append(Column("entropy", ["-" if p.entropy is None else f"{p.entropy:.3f}" for p in predictions]))
        caption = "entropy in nats: 0 for certain, at most 2.30 (ln 10) when every class is equally likely"
    return Fitted(columns, title=f"{checkpoint}: class probabilities", caption=caption)


def sweep_tables(cells: list[Cell], keys: list[str], matrices: bool = True) -> list[Fitted]:
    """With two grid keys, a matrix (rows: first key, columns: second) for test accuracy and one
    for the generalisation gap; otherwise (or without `matrices`) one row per cell."""
    with_val = any(cell.val_acc is not None for cell in cells)
    if len(keys) == 2 and matrices:
        shown = [("test_acc", "final test accuracy"), ("gap", "generalisation gap: train acc (eval mode) - test acc")]
        if with_val:  # first: the numbers to choose settings by
            shown.insert(0, ("val_acc", "final validation accuracy (choose by this one)"))
        return [_sweep_matrix(cells, keys, field, title) for field, title in shown]
    columns = [Column(key, [short(cell.values[key]) for cell in cells], keep=True) for key in keys]
    columns.append(Column("seeds", [_seeds(cell) for cell in cells]))
    if with_val:
        columns.append(Column("val acc", [_stat(cell.val_acc, ".4f") for cell in cells], keep=True))
    columns += [
        Column("test acc", [_stat(cell.test_acc, ".4f") for cell in cells], keep=True),
        Column(TRAIN_ACC_EVAL, [_stat(cell.train_acc, ".4f") for cell in cells]),
        Column("gap", [_stat(cell.gap, "+.4f") for cell in cells]),
    ]
    return [Fitted(columns, title="sweep")]


def _sweep_matrix(cells: list[Cell], keys: list[str], field: str, title: str) -> Fitted:
    rows, columns, grid = matrix(cells, keys, field)
    spec = "+.4f" if field == "gap" else ".4f"
    first = Column(f"{keys[0]} \\ {keys[1]}", [short(row) for row in rows], justify="left", keep=True)
    values = [
        Column(short(column), ["diverged" if row[index] is None else format(row[index], spec) for row in grid])
        for index, column in enumerate(columns)
    ]
    return Fitted([first, *values], title=f"{title} (rows: {keys[0]}, columns: {keys[1]})")


@contextlib.contextmanager
def monte_carlo_progress(console: Console, announce_after_s: float = 10.0):
    """The callback for evaluate's progress: a bar with the estimate in a terminal; in a log, one line if it is long."""
    if not console.is_terminal:

        def announce(done: float, total: int, estimate: float) -> None:
            if done == 0 and estimate >= announce_after_s:
                console.print(f"Monte Carlo dropout: about {duration_text(estimate)} to score", soft_wrap=True)

        yield announce
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        tasks = []  # made at the first call, which comes before any work

        def advance(done: float, total: int, estimate: float) -> None:
            tasks or tasks.append(bar.add_task(f"Monte Carlo dropout, about {duration_text(estimate)}", total=total))
            bar.update(tasks[0], completed=done)

        yield advance
