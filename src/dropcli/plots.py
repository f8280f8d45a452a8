"""The chapter's learning-curve figure for one or more runs (needs matplotlib: dropcli[plot])."""

import math
from pathlib import Path
from typing import Any

from dropcli.errors import DropcliError

# One line style per metric; one colour per run.
METRIC_STYLES = {"train_loss": "-", "test_loss": "--", "test_acc": ":"}


def learning_curves(runs: list[tuple[str, list[dict[str, Any]]]]):
    """A matplotlib Figure: train loss, test loss and test accuracy against epoch, per run."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, history) in enumerate(runs):
        epochs = [m["epoch"] for m in history]
        for metric, style in METRIC_STYLES.items():
            axes.plot(epochs, [m[metric] for m in history], style, color=colours[index % len(colours)],
                      label=f"{label}: {metric.replace('_', ' ')}")  # fmt: skip
    axes.set_xlabel("epoch")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def sweep_heatmaps(cells, keys: list[str]):
    """Two heatmaps for a two-key sweep: final test accuracy and the generalisation gap."""
    from dropcli.architecture import short
    from dropcli.experiments import matrix  # here, so that drawing run curves never imports torch

    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.5))
    for ax, field, title in zip(axes, ("test_acc", "gap"), ("final test accuracy", "train acc - test acc")):
        rows, columns, grid = matrix(cells, keys, field)
        # A cell whose every seed diverged has no value: a blank square, labelled.
        grid = [[math.nan if value is None else value for value in row] for row in grid]
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(columns)), [short(c) for c in columns])
        ax.set_yticks(range(len(rows)), [short(r) for r in rows])
        ax.set_xlabel(keys[1])
        ax.set_ylabel(keys[0])
        ax.set_title(title)
        known = [value for row in grid for value in row if not math.isnan(value)] or [0.0]
        middle = (min(known) + max(known)) / 2
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                # Dark text on the light (high) end of viridis, light text on the dark end.
                text, colour = ("diverged", "black") if math.isnan(value) else (f"{value:.3f}", "black" if value > middle else "white")
                ax.text(j, i, text, ha="center", va="center", color=colour)
        figure.colorbar(image, ax=ax)
    figure.tight_layout()
    return figure


def save(figure, path: Path) -> None:
    """Write the figure as PNG through a temporary file, so `path` is never half-written."""
    from dropcli.files import atomic

    try:
        if path.is_dir():
            raise DropcliError(f"cannot write {path}: it is a directory; name a .png file, e.g. -o {path / 'curves.png'}")
        if not path.parent.is_dir():
            raise DropcliError(f"cannot write {path}: no directory {path.parent}")
        with atomic(path) as temporary:
            figure.savefig(temporary, dpi=120, format="png")
    finally:
        _pyplot().close(figure)


def check_available() -> None:
    """Fail now, before any training, if a figure could not be drawn at the end."""
    _pyplot()


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise DropcliError("plotting needs matplotlib: pip install 'dropcli[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only: no window, works on a server
    import matplotlib.pyplot as pyplot

    return pyplot
