"""Figures of a sweep: accuracy against the value of one key (error bars over seeds), heatmaps
for two keys, and one panel per key for more keys or a random search.

Works on experiments.Cell; needs matplotlib (dropcli[plot]).
"""

import math
from typing import Any

from dropcli.cli.display.figure import Style, finish, load_pyplot, panels, top_legend
from dropcli.cli.display.plots import nan_if_none
from dropcli.config.labels import readable, value_text
from dropcli.experiments import Cell, Stat, matrix

GAP_TITLE = "gap (eval mode):\ntrain acc − test acc"
# (field, legend label, marker, line style) of the accuracies drawn against a key's value: a
# shape and a dash of their own, so that curves that coincide both stay visible.
ACCURACIES = (
    ("val_acc", "validation acc", "s", "-"),
    ("test_acc", "test acc", "o", "--"),
    ("train_acc", "train acc (eval mode)", "^", ":"),
)


def sweep_figure(
    cells: list[Cell], keys: list[str], caption: str, sampled: bool = False, log_keys: list[str] = (), style: Style | None = None
):
    """The figure that fits the sweep: a line plot for one key, heatmaps for two, one panel per
    key (metric against value) for more keys or a random search, whose `log_keys` (ranges
    sampled as LOW:HIGH:log) get a log axis."""
    style = style or Style()
    if len(keys) == 1 and not sampled:
        return one_key(cells, keys[0], caption, style)
    if len(keys) == 2 and not sampled:
        return heatmaps(cells, keys, caption, style)
    return per_key(cells, keys, caption, log_keys, style)


def one_key(cells: list[Cell], key: str, caption: str, style: Style | None = None):
    """Accuracy and the generalisation gap against the key's value (side by side where the width
    holds both), mean ± std over seeds."""
    style = style or Style()
    figure, (acc_axes, gap_axes) = panels(2, style, aspect=0.62, min_width=2.3)
    positions, ticks, log = _positions([cell.values[key] for cell in cells], key)
    for field, label, marker, dash in ACCURACIES:
        _errorbar(acc_axes, positions, [getattr(cell, field) for cell in cells], label, marker, dash=dash)
    _errorbar(gap_axes, positions, [cell.gap for cell in cells], "gap", "o", colour="C3")
    gap_axes.axhline(0, color="0.5", linewidth=0.8)
    acc_axes.set_ylabel("accuracy")
    gap_axes.set_ylabel("train acc − test acc")
    gap_axes.set_title("generalisation gap (eval mode)")
    acc_axes.set_title("final accuracy")
    top_legend(figure, *acc_axes.get_legend_handles_labels(), style, most_columns=3)
    for axes in (acc_axes, gap_axes):
        _value_axis(axes, key, ticks, log)
    finish(figure, caption, style)
    return figure


def heatmaps(cells: list[Cell], keys: list[str], caption: str, style: Style | None = None):
    """Heatmaps of a two-key sweep: validation accuracy (when there is a split), test accuracy
    on one shared colour scale, and the gap on a diverging scale centred on 0."""
    style = style or Style()
    pyplot = load_pyplot(style)
    from matplotlib.colors import TwoSlopeNorm

    fields = [("val_acc", "final validation accuracy")] if any(cell.val_acc is not None for cell in cells) else []
    fields += [("test_acc", "final test accuracy"), ("gap", GAP_TITLE)]
    rows, columns, _ = matrix(cells, keys, "test_acc")
    aspect = min(1.2, (0.9 + 0.3 * len(rows)) / max(2.0, 0.7 * len(columns) + 1.2))
    figure, panel_axes = panels(len(fields), style, aspect=aspect, min_width=2.4)
    accuracies = [v for field, _ in fields if field != "gap" for v in _values(cells, keys, field) if not math.isnan(v)]
    accuracy_scale = (min(accuracies, default=0.0), max(accuracies, default=1.0))
    for axes, (field, title) in zip(panel_axes, fields):
        stds = _stds(cells, keys, field)
        _, _, grid = matrix(cells, keys, field)
        grid = [[nan_if_none(value) for value in row] for row in grid]
        if field == "gap":
            extent = max((abs(v) for row in grid for v in row if not math.isnan(v)), default=0.0) or 0.01
            norm, cmap, bar_label = TwoSlopeNorm(0.0, -extent, extent), "RdBu_r", "train acc − test acc"
        else:
            norm, cmap, bar_label = pyplot.Normalize(*accuracy_scale), "viridis", "accuracy"
        image = axes.imshow(grid, cmap=cmap, norm=norm, aspect="auto")
        axes.set_xticks(range(len(columns)), [value_text(keys[1], c) for c in columns])
        axes.set_yticks(range(len(rows)), [value_text(keys[0], r) for r in rows])
        axes.set_xlabel(readable(keys[1]))
        axes.set_ylabel(readable(keys[0]))
        axes.set_title(title)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                _annotate(axes, image, i, j, value, stds[i][j], "+.3f" if field == "gap" else ".3f", style)
        figure.colorbar(image, ax=axes, fraction=0.08, pad=0.03).set_label(bar_label)
    finish(figure, caption, style)
    return figure


def per_key(cells: list[Cell], keys: list[str], caption: str, log_keys: list[str] = (), style: Style | None = None):
    """One panel per key: each cell's validation (if any) and test accuracy against that key's value."""
    style = style or Style()
    figure, panel_axes = panels(len(keys), style, aspect=0.7, min_width=2.0)
    shown = [entry for entry in ACCURACIES[:2] if entry[0] != "val_acc" or any(cell.val_acc is not None for cell in cells)]
    for axes, key in zip(panel_axes, keys):
        positions, ticks, log = _positions([cell.values[key] for cell in cells], key)
        for field, label, marker, _ in shown:
            _errorbar(axes, positions, [getattr(cell, field) for cell in cells], label, marker, line=False)
        axes.set_ylabel("accuracy")
        _value_axis(axes, key, ticks, log or key in log_keys)
    top_legend(figure, *panel_axes[0].get_legend_handles_labels(), style)
    finish(figure, caption, style)
    return figure


def _errorbar(
    axes, positions, stats: list[Stat | None], label: str, marker: str, colour=None, line: bool = True, dash: str = "-"
) -> None:
    """Means as markers (joined by a line where `line`), and error bars only where a point has a
    spread over seeds: a single seed gets no bar glyph."""
    points = [(x, s) for x, s in zip(positions, stats) if s is not None]
    if not points:
        return
    if line:
        points.sort(key=lambda point: point[0])
    xs = [x for x, _ in points]
    means = [s.mean for _, s in points]
    (drawn,) = axes.plot(
        xs, means, marker=marker, markerfacecolor="none", linestyle=dash if line else "none", label=label, color=colour
    )
    spread = [(x, s.mean, s.std) for x, s in points if s.std is not None]
    if spread:
        x, mean, std = zip(*spread)
        axes.errorbar(x, mean, yerr=std, linestyle="none", capsize=3, linewidth=1.2, color=drawn.get_color())


def _positions(values: list[Any], key: str) -> tuple[list[float], list[Any] | None, bool]:
    """x positions for a key's values: the numbers themselves (log scale when they span over a
    factor of 20 and are positive), or 0, 1, ... with the values as tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        positive = all(v > 0 for v in values)
        return [float(v) for v in values], None, positive and max(values) / min(values) > 20
    texts = [value_text(key, v) for v in values]  # widths as 1024x1024x1024
    distinct = list(dict.fromkeys(texts))
    return [float(distinct.index(text)) for text in texts], distinct, False


def _value_axis(axes, key: str, ticks: list[Any] | None, log: bool) -> None:
    axes.set_xlabel(readable(key))
    if ticks is not None:
        axes.set_xticks(range(len(ticks)), ticks)
        axes.set_xlim(-0.5, len(ticks) - 0.5)
    if log:
        axes.set_xscale("log")
    axes.grid(alpha=0.3)


def _values(cells: list[Cell], keys: list[str], field: str) -> list[float]:
    return [nan_if_none(value) for row in matrix(cells, keys, field)[2] for value in row]


def _stds(cells: list[Cell], keys: list[str], field: str) -> list[list[float | None]]:
    rows, columns, _ = matrix(cells, keys, field)
    by_position = {(cell.values[keys[0]], cell.values[keys[1]]): getattr(cell, field) for cell in cells}
    return [[getattr(by_position[(r, c)], "std", None) for c in columns] for r in rows]


def _annotate(axes, image, row: int, column: int, value: float, std: float | None, spec: str, style: Style) -> None:
    if math.isnan(value):
        axes.text(column, row, "diverged", ha="center", va="center", fontsize=style.caption_size, color="black")
        return
    red, green, blue, _ = image.cmap(image.norm(value))
    colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"  # legible on the cell
    text = format(value, spec) + ("" if std is None else f"\n±{std:.3f}")
    axes.text(column, row, text, ha="center", va="center", fontsize=style.caption_size, color=colour)


def experiment_caption(config, cells: list[Cell], directory, keys: list[str]) -> str:
    """The caption of an experiment's figure: its config, model, epochs, data sizes (read from a
    finished trial) and seeds per cell."""
    from dropcli import runs
    from dropcli.cli.display.plots import caption

    finished = [name for cell in cells for name in cell.runs if name not in cell.failed]
    data = runs.read_summary(directory / finished[0] / "summary.json").get("data") if finished else None
    models = [str(cell.values["model.kind"]) for cell in cells] if "model.kind" in keys else [config.model.kind]
    seeds = list(range(config.seed, config.seed + max((len(cell.runs) for cell in cells), default=1)))
    text = caption(config.name, models, config.train.epochs, data, seeds)
    return text.replace("(mean ± std)", f"(n={len(seeds)} per point, mean ± std)") if len(seeds) > 1 else text
