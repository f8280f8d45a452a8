"""`dropcli runs`: the table of runs, and --diff of two."""

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dropcli.cli.display.console import columns_that_fit
from dropcli.cli.display.report import TRAIN_ACC_EPOCH
from dropcli.config.architecture import short

RUN_MIN_WIDTH = 12  # the run column folds, down to this
# No column shows the highest test accuracy of any epoch: choosing an epoch by it selects on the test set.
BEST_CAPTION = (
    "best val acc: the highest of any epoch; - without a validation split (picking by test accuracy selects on the test set)"
)


def runs_table(infos, root, keys: list[str], console: Console) -> Table:
    """One row per run: its result, and its values of the config keys that differ between runs.

    No number or setting is ever broken: the run column folds (it holds the whole path, what
    evaluate, plot and --diff take) and a status sentence wraps between words. Where the console is too narrow, the last keys' columns are left out, and the
    caption names them (--json and --csv show every key).
    """
    keys = [key for key in keys if key != "model.kind"]  # the model column shows it
    header = ["run", "model", *keys, "epochs", "best\nval acc", "final\ntest acc", "status"]
    rows = [_row(info, root, keys) for info in infos]
    widths = [
        max(len(line) for text in [name, *(row[i] for row in rows)] for line in text.split("\n")) for i, name in enumerate(header)
    ]
    widths[0] = RUN_MIN_WIDTH
    # A status can be a sentence ("unreadable: ..."): it wraps between words, so its longest word counts.
    widths[-1] = max(len(word) for text in ["status", *(row[-1] for row in rows)] for word in text.split())
    # Where the console is too narrow, the last keys' columns are left out.
    shown = columns_that_fit(widths[:2] + widths[2 + len(keys) :], widths[2 : 2 + len(keys)], console.width)
    left_out = keys[shown:]
    captions = [BEST_CAPTION] + ([f"left out for width: {', '.join(left_out)} (see --json)"] if left_out else [])
    caption = "\n".join(captions)
    table = Table(title=f"runs under {escape(str(root))}", caption=caption, header_style="bold")
    table.add_column("run", overflow="fold", min_width=RUN_MIN_WIDTH)  # a path may fold over lines
    for name in ("model", *keys[:shown]):
        table.add_column(name, no_wrap=True)
    for name in header[-4:-1]:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("status")
    for row in rows:
        table.add_row(*(escape(text) for text in [*row[: 2 + shown], *row[2 + len(keys) :]]))
    return table


def _row(info, root, keys: list[str]) -> list[str]:
    return [
        str(info.path.relative_to(root)),
        info.model,
        *(value_text(info.settings.get(key)) for key in keys),
        f"{info.epochs_done}/{info.epochs_planned}",
        _optional(info.best_val_acc),
        _optional(info.final_test_acc),
        info.status,
    ]


def value_text(value, metric: bool = False) -> str:
    """A config value or metric in a table: - for none, yes/no for a flag, a metric's float to 4 decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if metric and isinstance(value, float):
        return f"{value:.4f}"
    return short(value)  # a list of widths as 1024x1024x1024


# What --diff's metric rows mean: the reported epoch's values (see diff_table).
DIFF_METRIC_LABELS = {
    "train_acc": TRAIN_ACC_EPOCH,
    "train_loss": "train loss (dropout on)",
    "test_acc": "test acc",
    "test_loss": "test loss",
    "val_acc": "val acc",
    "val_loss": "val loss",
    "epoch": "reported epoch",
    "seconds": "seconds (that epoch)",
}


def diff_table(first, second, settings, metrics) -> list:
    """`dropcli runs --diff A B`: the config keys that differ, then the reported epoch's metrics
    (the last epoch, or the best one when early stopping chose it)."""
    parts = []
    titles = ("config keys that differ", "metrics of the reported epoch (the last; with early stopping, the best)")
    for title, rows, metric in zip(titles, (settings, metrics), (False, True)):
        table = Table(header_style="bold")
        for column in ("", escape(str(first.path)), escape(str(second.path))):
            table.add_column(column, overflow="fold")
        for name, a, b in rows:
            table.add_row(DIFF_METRIC_LABELS.get(name, name), *(escape(value_text(v, metric)) for v in (a, b)))
        parts += [f"{title}:", table] if rows else [f"{title}: none"]  # a line of its own: a table title wraps
    return parts


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
