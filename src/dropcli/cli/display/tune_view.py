"""What `dropcli tune` shows: the search's progress, a table of the best trials, and a figure of
the optimisation history beside the importance of each key.

Only validation numbers are shown while searching: the test set is not what settings are chosen by.
"""

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dropcli.cli.display.console import columns_that_fit
from dropcli.cli.display.figure import load_pyplot
from dropcli.cli.display.plots import WIDTH, finish
from dropcli.cli.display.runs_tables import RUN_MIN_WIDTH
from dropcli.config.architecture import short
from dropcli.experiments.tune_objectives import DIRECTIONS
from dropcli.experiments.tune_results import Found
from dropcli.experiments.tune_search import Progress as SearchProgress
from dropcli.runs.listeners import Listener
from dropcli.runtime import count_text, duration_text


class TuneView(Listener):
    """The search as it goes: on a terminal a live bar of trials and one of the trial's epochs;
    elsewhere a line per trial and, unless quiet, a line per epoch (validation only)."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self.bar: Progress | None = None
        self.trials_task = self.epochs_task = None
        self.number = 0
        self.total_epochs = 0

    def __enter__(self) -> "TuneView":
        if self.console.is_terminal and not self.quiet:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = None

    def trial_begins(self, progress: SearchProgress) -> None:
        self.number = progress.number
        status = trial_status(progress)
        if self.bar is None:
            if not self.quiet:
                self.console.print(f"trial {progress.position} of {progress.total} (#{progress.number}): {status}")
            return
        if self.trials_task is None:
            self.trials_task = self.bar.add_task("trials", total=progress.total, status=status)
        self.bar.update(self.trials_task, completed=progress.position - 1, status=escape(status))

    def run_started(self, config, run_dir) -> None:
        if self.bar is not None:
            if self.epochs_task is not None:
                self.bar.remove_task(self.epochs_task)
            self.epochs_task = self.bar.add_task(f"trial #{self.number} epochs", total=config.train.epochs, status="")
        self.total_epochs = config.train.epochs

    def epoch_finished(self, metrics) -> None:
        text = f"val acc {metrics.val_acc:.4f}, train loss {metrics.train_loss:.4f}"
        if self.bar is not None and self.epochs_task is not None:
            self.bar.update(self.epochs_task, completed=metrics.epoch, status=text)
        elif not self.quiet:
            self.console.print(f"  epoch {metrics.epoch}/{self.total_epochs}: {text}")

    def run_finished(self, result) -> None:
        summary = result.summary
        if summary is None or self.quiet:
            return
        val = (summary.get("final") or {}).get("val_acc")
        how = summary["status"] if summary["status"] != "finished" else "done"
        line = f"trial #{self.number} {how} after {count_text(summary['epochs'], 'epoch')}" + (
            f": val acc {val:.4f}" if val is not None else ""
        )
        (self.bar.console if self.bar is not None else self.console).print(line, highlight=False)

    def notice(self, message: str) -> None:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"warning: {message}")


def trial_status(progress: SearchProgress) -> str:
    """ "best val acc 0.8812 (#4), 3 pruned, about 2 min left"."""
    best = (
        "no trial done yet"
        if progress.best_value is None
        else f"best val acc {progress.best_value:.4f} (#{progress.best_number})"
    )
    left = "" if progress.remaining_seconds is None else f", about {duration_text(progress.remaining_seconds)} left"
    return f"{best}, {progress.pruned} pruned{left}"


def top_table(result: Found, top: int, width: int) -> Table:
    """The best trials by validation accuracy (complete ones first, then pruned by their last value).

    No number or word is broken: a key's column is headed by its last part where that is unique
    (lr for optim.lr) and the last keys' columns are left out where `width` is too narrow, the
    caption naming them; only the run column folds.
    """
    keys = list(dict.fromkeys(key for row in result.rows for key in row.values))
    objective = result.objectives[0]  # ranked in its direction: a lower NLL or ECE is better
    sign = 1 if DIRECTIONS[objective] == "maximize" else -1
    ranked = sorted(
        (row for row in result.rows if row.value is not None),
        key=lambda row: (row.state != "complete", -sign * row.value),
    )[:top]
    value_heading = value_name(objective)
    rows = [
        [
            str(row.number),
            row.state,
            f"{row.value:.4f}",
            "-" if row.epochs is None else str(row.epochs),
            *(_value(row.values.get(key)) for key in keys),
            row.run or "-",
        ]
        for row in ranked
    ]
    header = ["trial", "state", value_heading, "epochs", *_headings(keys), "run"]
    widths = [max(len(text) for text in [name, *(row[i] for row in rows)]) for i, name in enumerate(header)]
    widths[-1] = RUN_MIN_WIDTH
    shown = columns_that_fit(widths[:4] + widths[-1:], widths[4:-1], width)
    counts = ", ".join(f"{count} {state}" for state, count in result.counts.items())
    left_out = keys[shown:]
    table = Table(
        title=f"the {len(ranked)} best of {len(result.rows)} trials ({counts}), by validation {objective}",
        caption=f"left out for width: {', '.join(left_out)} (widen the terminal to see them)" if left_out else None,
        header_style="bold",
    )
    for name in header[: 4 + shown]:
        table.add_column(name, justify="right" if name in ("trial", value_heading, "epochs") else "left", no_wrap=True)
    table.add_column("run", overflow="fold", min_width=RUN_MIN_WIDTH)  # a run directory's name may fold
    for row in rows:
        table.add_row(*(escape(text) for text in [*row[: 4 + shown], row[-1]]))
    return table


def value_name(objective: str) -> str:
    """A trial's value as tables name it: val acc, val nll, val ece, val aece."""
    return "val acc" if objective == "accuracy" else f"val {objective}"


def _headings(keys: list[str]) -> list[str]:
    """Each key's column heading: its last part (lr for optim.lr) where no other key shares it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [part if last.count(part) == 1 else key for key, part in zip(keys, last)]


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return short(value)


def figure(result: Found, caption: str):
    """Left: each trial's validation accuracy against its number (pruned ones at their last
    report) and the best so far; right: how much of the variation each key explains."""
    pyplot = load_pyplot()
    fig, (history, importance) = pyplot.subplots(1, 2, figsize=(WIDTH, 2.9), gridspec_kw={"width_ratios": [3, 2]})
    for state, marker, colour in (("complete", "o", "C0"), ("pruned", "x", "C1")):
        rows = [row for row in result.rows if row.state == state and row.value is not None]
        history.plot([r.number for r in rows], [r.value for r in rows], marker, color=colour, label=state, markersize=4)
    best, numbers, bests = None, [], []
    for row in result.rows:
        if row.state == "complete":
            best = row.value if best is None else max(best, row.value)
        if best is not None:
            numbers.append(row.number)
            bests.append(best)
    history.step(numbers, bests, where="post", color="C2", label="best so far")
    history.set(xlabel="trial", ylabel="validation accuracy", title="optimisation history")
    history.legend(loc="best")
    if result.importances:
        keys = list(result.importances)[::-1]
        importance.barh(keys, [result.importances[key] for key in keys], color="C0")
        importance.set(xlabel="importance (share)", title="importance of each key")
    else:
        importance.text(0.5, 0.5, "too few complete trials\nto rank the keys", ha="center", va="center")
        importance.set_axis_off()
    finish(fig, caption)
    return fig
