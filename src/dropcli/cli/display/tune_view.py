"""What `dropcli tune` shows: the search's progress, a table of the best trials, and a figure of
the optimisation history beside the importance of each key.

Only validation numbers are shown while searching: the test set is not what settings are chosen by.
"""

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column as TableColumn

from dropcli.cli.display.console import console
from dropcli.cli.display.figure import Style, finish, panels, top_legend
from dropcli.cli.display.fit import Column, Fitted, number
from dropcli.config.architecture import short
from dropcli.config.labels import readable
from dropcli.experiments import tune_objectives
from dropcli.experiments.tune_objectives import DIRECTIONS
from dropcli.experiments.tune_results import MIN_TRIALS_FOR_IMPORTANCE, Found, anytime
from dropcli.experiments.tune_search import Progress as SearchProgress
from dropcli.runs.listeners import Listener
from dropcli.runtime import count_text, duration_text

AXIS_NAMES = {"accuracy": "accuracy", "nll": "NLL (nats)", "ece": "ECE", "aece": "adaptive ECE"}  # the history's y axis


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
            # The status is a sentence: it wraps between words, while the numbers beside it
            # (trials done, elapsed time) keep their width whole at 80 columns.
            self.bar = Progress(
                TextColumn("{task.description}", table_column=TableColumn(no_wrap=True)),
                BarColumn(bar_width=12),
                MofNCompleteColumn(table_column=TableColumn(no_wrap=True)),
                TimeElapsedColumn(table_column=TableColumn(no_wrap=True, min_width=7)),
                TextColumn("{task.fields[status]}", table_column=TableColumn(no_wrap=False, ratio=1)),
                console=self.console,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = None

    def search_ended(self, stopped: str | None) -> None:
        """The trials bar's last state: full and "all trials done", or where --timeout left it
        (not the estimate shown as the last trial began)."""
        if self.bar is None or self.trials_task is None:
            return
        task = next(task for task in self.bar.tasks if task.id == self.trials_task)
        if stopped is None:
            self.bar.update(self.trials_task, completed=task.total, status="all trials done")
        else:
            self.bar.update(self.trials_task, status=f"stopped by --{stopped}; the same command continues")

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
        if summary["status"] == "finished":
            line = f"trial #{self.number} done after {count_text(summary['epochs'], 'epoch')}"
        else:  # judged after an epoch: of how many it would have trained
            line = f"trial #{self.number} {summary['status']} after epoch {summary['epochs']} of {self.total_epochs}"
        line += f": val acc {val:.4f}" if val is not None else ""
        (self.bar.console if self.bar is not None else self.console).print(line, highlight=False)

    def notice(self, message: str) -> None:
        console(stderr=True).print(f"warning: {message}")


def trial_status(progress: SearchProgress) -> str:
    """ "best val acc 0.8812 (#4), 3 pruned, about 2 min left" ("best val nll 0.3170 ..." where
    the first objective is NLL)."""
    name = "acc" if progress.objective == "accuracy" else progress.objective
    best = (
        "no trial done yet"
        if progress.best_value is None
        else f"best val {name} {progress.best_value:.4f} (#{progress.best_number})"
    )
    left = "" if progress.remaining_seconds is None else f", about {duration_text(progress.remaining_seconds)} left"
    return f"{best}, {progress.pruned} pruned{left}"


def top_table(result: Found, top: int, width: int | None = None) -> Fitted:
    """The best trials by validation accuracy (complete ones first, then pruned by their last
    value), and any trial still marked running.

    No number or word is broken (fit.py): a key's column is headed by its last part where that
    is unique (lr for optim.lr); where the terminal is too narrow, constant columns and then the
    last keys' are left out, the caption naming them. `width` is not needed: the table fits
    where it is printed.
    """
    keys = list(dict.fromkeys(key for row in result.rows for key in row.values))
    objective = result.objectives[0]  # ranked in its direction: a lower NLL or ECE is better
    sign = 1 if DIRECTIONS[objective] == "maximize" else -1
    ranked = sorted(
        (row for row in result.rows if row.value is not None),
        key=lambda row: (row.state != "complete", -sign * row.value),
    )[:top]
    ranked += [row for row in result.rows if row.state == "running" and row not in ranked]  # a stale one must be seen
    columns = [
        Column("trial", [str(row.number) for row in ranked], keep=True),
        Column("state", [row.state for row in ranked], justify="left", keep=True),
        Column(value_name(objective), ["-" if row.value is None else f"{row.value:.4f}" for row in ranked], keep=True),
        Column("epochs", ["-" if row.epochs is None else str(row.epochs) for row in ranked]),
        *(
            Column(heading, [_value(row.values.get(key)) for row in ranked], justify="left", name=key)
            for key, heading in zip(keys, _headings(keys))
        ),
        Column("run", [row.run or "-" for row in ranked], justify="left", keep=True, fold=True),
    ]
    counts = ", ".join(f"{count} {state}" for state, count in result.counts.items())
    title = f"the {len(ranked)} best of {len(result.rows)} trials ({counts}), by validation {objective}"
    return Fitted(columns, title=title)


def value_name(objective: str) -> str:
    """A trial's value as tables name it: val acc, val nll, val ece, val aece."""
    return "val acc" if objective == "accuracy" else f"val {objective}"


def running_hint(result: Found, storage: str, study: str) -> str | None:
    """For trials the study holds as running: what that means and how to clear a stale one."""
    running = [row.number for row in result.rows if row.state == "running"]
    if not running:
        return None
    numbers = ", ".join(map(str, running))
    marked = f"{'trials' if len(running) > 1 else 'trial'} {numbers} {'are' if len(running) > 1 else 'is'} marked running."
    if "://" in storage:  # a database keeps heartbeats (tune_storage.py)
        return (
            f"{marked} If its process was killed, its heartbeat stops: once that is stale (twice DROPCLI_HEARTBEAT, "
            "60 s by default) the next tune process on this study marks it failed and trains it again in its place"
        )
    return (
        f"{marked} If its process was killed, the next tune command on this study finds its lease let go and "
        "continues it from its last checkpoint. A trial begun by an older dropcli holds no lease: if no tune process "
        "is training it now, it counts towards --trials and is never continued. Mark it failed with: "
        f"optuna tell --storage {storage} --storage-class JournalFileBackend --study-name {study} "
        f"--trial-number {running[0]} --state fail (then raise --trials by one to train another in its place)"
    )


def _headings(keys: list[str]) -> list[str]:
    """Each key's column heading: its last part (lr for optim.lr) where no other key shares it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [part if last.count(part) == 1 else key for key, part in zip(keys, last)]


def _value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value)
    return short(value)


def importance_note(result: Found) -> str | None:
    """One line where the importance of each key is withheld for too few complete trials; None where it is drawn."""
    if result.importances:
        return None
    complete = result.counts.get("complete", 0)
    return (
        f"importance of each key withheld: it rests on {count_text(complete, 'complete trial')}, "
        f"and needs at least {MIN_TRIALS_FOR_IMPORTANCE}"
    )


def figure(result: Found, caption: str, style: Style | None = None):
    """The optimisation history: each complete trial's final value (validation accuracy, or the
    study's first objective) and each pruned trial's at the epoch it was stopped, against the
    trial's number, with the best so far in the objective's direction; the anytime curve, that
    best against the epochs the study had trained; and how much of the variation each key
    explains, over how many complete trials (withheld below MIN_TRIALS_FOR_IMPORTANCE)."""
    style = style or Style()
    figure, axes = panels(3 if result.importances else 2, style, aspect=0.62, min_width=2.3)
    history = axes[0]
    kinds = (
        ("complete", "o", "C0", "complete: final value"),
        ("pruned", "x", "C1", "pruned: value at its last epoch"),
    )
    for state, marker, colour, label in kinds:
        rows = [row for row in result.rows if row.state == state and row.value is not None]
        if rows:
            history.plot([r.number for r in rows], [r.value for r in rows], marker, color=colour, label=label)
    objective = result.objectives[0]  # a trial's value is its first objective's
    best, numbers, bests = None, [], []
    for row in result.rows:
        if row.state == "complete":
            best = row.value if best is None or tune_objectives.better(objective, row.value, best) else best
        if best is not None:
            numbers.append(row.number)
            bests.append(best)
    history.step(numbers, bests, where="post", color="C2", label="best complete so far")
    history.set(xlabel="trial number", ylabel=f"validation {AXIS_NAMES[objective]}", title="optimisation history")
    history.xaxis.get_major_locator().set_params(integer=True)
    history.grid(alpha=0.3)
    top_legend(figure, *history.get_legend_handles_labels(), style, most_columns=3)
    curve = anytime(result.rows, objective)
    spent = axes[1]
    if curve:
        spent.step([epochs for epochs, _ in curve], [best for _, best in curve], where="post", color="C2")
    spent.set(xlabel="epochs trained, all trials", ylabel=f"best validation {AXIS_NAMES[objective]}", title="anytime")
    spent.grid(alpha=0.3)
    if result.importances:
        importance = axes[2]
        keys = list(result.importances)[::-1]
        importance.barh([readable(key) for key in keys], [result.importances[key] for key in keys], color="C0")
        complete = result.counts.get("complete", 0)
        importance.set(xlabel="share of the variation explained", title=f"importance of each key\n({complete} complete trials)")
    finish(figure, caption, style)
    return figure


def pruning_lines(found) -> list[str]:
    """Whether pruning could be trusted (how each rung ranked the complete trials against their
    final value), and the study's compute."""
    said = [
        f"epoch {rung.epoch}: {rung.spearman:+.2f} ({rung.trials} trials)"
        if rung.spearman is not None
        else f"epoch {rung.epoch}: -"
        for rung in found.rungs
    ]
    lines = (
        [
            "rungs against the final val acc (Spearman rank correlation over complete trials; 1 = the rung ranks them "
            f"as their end does): {', '.join(said)}"
        ]
        if said
        else []
    )
    compute = f"compute: {count_text(found.epochs_trained, 'epoch')} trained in all (a continued run's counted once)"
    if found.best is not None:
        by_then = sum(row.trained for row in found.rows if row.number <= found.best.number)
        compute += f"; the best trial (#{found.best.number}) was found with {count_text(by_then, 'epoch')} of them"
    return [*lines, compute]
