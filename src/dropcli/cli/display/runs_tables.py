"""`dropcli runs`: the table of runs, and --diff of two."""

from pathlib import Path

from rich.console import Console

from dropcli.cli.display.fit import Column, Fitted, number
from dropcli.cli.display.report import TRAIN_ACC_EPOCH
from dropcli.config.architecture import short

# No column shows the highest test accuracy of any epoch: choosing an epoch by it selects on the test set.
BEST_CAPTION = (
    "best val acc: the highest of any epoch; - without a validation split (picking by test accuracy selects on the test set)"
)


def runs_table(infos, root, keys: list[str], console: Console | None = None) -> Fitted:
    """One row per run: its result, and its values of the config keys that differ between runs.

    No number or setting is ever broken (fit.py): where the terminal is too narrow, columns that
    hold one value in every row go first, then the last keys' columns, and the caption names
    them (--json and --csv show every key); the run's path folds only where it alone cannot fit
    (it is what evaluate, plot and --diff take); a status sentence wraps between words.
    """
    keys = [key for key in keys if key != "model.kind"]  # the model column shows it
    under = _common_parent([info.path.relative_to(root) for info in infos])
    columns = [
        Column("run", [str(info.path.relative_to(root / under)) for info in infos], justify="left", keep=True, fold=True),
        Column("model", [info.model for info in infos], justify="left"),
        *(Column(key, [value_text(info.settings.get(key)) for info in infos], justify="left") for key in keys),
        Column("epochs", [f"{info.epochs_done}/{info.epochs_planned}" for info in infos]),
        Column("best val acc", [_optional(info.best_val_acc) for info in infos]),
        Column("final test acc", [_optional(info.final_test_acc) for info in infos], keep=True),
        Column("status", [info.status for info in infos], justify="left", keep=True, prose=True),
    ]
    floats = any(isinstance(info.settings.get(key), float) for info in infos for key in keys)
    notes = [BEST_CAPTION] + (
        ["settings' floats in 4 significant figures, as --where takes them (--json: whole)"] if floats else []
    )
    return Fitted(columns, title=f"runs under {root / under}", caption="; ".join(notes), left_out_hint="see --json")


def _common_parent(paths: list[Path]) -> Path:
    """The directory every path lies under (an experiment's), named once in the title instead of on every row."""
    parts = [path.parts[:-1] for path in paths]
    common = []
    for names in zip(*parts):
        if len(set(names)) > 1:
            break
        common.append(names[0])
    return Path(*common) if common else Path()


def value_text(value, metric: bool = False) -> str:
    """A config value or metric in a table: - for none, yes/no for a flag, a metric's float to 4
    decimals, a setting's float in 4 significant figures."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if metric and isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list) and any(isinstance(item, float) for item in value):
        return ",".join(number(item) if isinstance(item, float) else str(item) for item in value)
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
    (the last epoch, or the best one when early stopping chose it). The runs are named A and B
    on lines of their own (a path heading a column would break it); floats in 4 significant
    figures, or whole where that would hide their difference."""
    parts = [f"A: {first.path}", f"B: {second.path}"]
    titles = ("config keys that differ", "metrics of the reported epoch (the last; with early stopping, the best)")
    for title, rows, metric in zip(titles, (settings, metrics), (False, True)):
        if not rows:
            parts.append(f"{title}: none")
            continue
        texts = [_diff_texts(a, b, metric) for _, a, b in rows]
        columns = [
            Column("", [DIFF_METRIC_LABELS.get(name, name) for name, _, _ in rows], justify="left", keep=True),
            Column("A", [a for a, _ in texts], justify="left", keep=True, fold=True),
            Column("B", [b for _, b in texts], justify="left", keep=True, fold=True),
        ]
        parts += [f"{title}:", Fitted(columns)]  # a line of its own: a table title wraps
    return parts


def _diff_texts(a, b, metric: bool) -> tuple[str, str]:
    shown = value_text(a, metric), value_text(b, metric)
    if shown[0] == shown[1] and a != b:  # the same in 4 figures: whole, so the difference shows
        return str(a), str(b)
    return shown


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
