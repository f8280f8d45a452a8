"""Where in the space a tune study's good trials lie: the slice figure (the first objective
against each key, one panel per key) and the contour figure (the first objective over two keys).
Only complete trials are drawn: a pruned trial's value is of an earlier epoch."""

import math

from dropcli.cli.display.figure import Style, finish, panels
from dropcli.experiments import Grid
from dropcli.experiments.tune_results import Found, TrialRow


def slice_figure(result: Found, space: list[Grid], objective: str, caption: str, style: Style | None = None):
    """One panel per key of the space: each complete trial's value of the first objective
    against the value it drew, coloured by trial number (later trials lighter)."""
    style = style or Style()
    fig, axes = panels(len(space), style, aspect=0.75, min_width=2.0)
    complete = _complete(result)
    for panel, grid in zip(axes, space):
        xs, ticks = _positions(grid, complete)
        panel.scatter(xs, [row.value for row in complete], c=[row.number for row in complete], cmap="viridis", s=14)
        _x_axis(panel, grid, ticks)
        panel.set(xlabel=grid.key, ylabel=f"validation {objective}")
        panel.grid(alpha=0.3)
    finish(fig, f"{caption}; dots coloured by trial number, later trials lighter", style)
    return fig


def contour_figure(result: Found, space: list[Grid], objective: str, caption: str, style: Style | None = None):
    """The first objective over the two keys that matter most (by importance, else the first
    two): filled contours where enough trials are complete, each trial a dot."""
    style = style or Style()
    fig, (panel,) = panels(1, style, aspect=0.8)
    ranked = sorted(space, key=lambda g: -(result.importances or {}).get(g.key, 0.0))
    complete = _complete(result)
    if len(ranked) < 2:
        panel.text(0.5, 0.5, "a contour needs two keys in the space", ha="center", va="center")
        panel.set_axis_off()
        finish(fig, caption, style)
        return fig
    x_grid, y_grid = ranked[0], ranked[1]
    # A log range is drawn by the logarithm of its values, so that contours are spaced as the search drew them.
    xs, x_ticks = _positions(x_grid, complete, log10=True)
    ys, y_ticks = _positions(y_grid, complete, log10=True)
    if len(complete) >= 4 and len(set(xs)) > 1 and len(set(ys)) > 1:
        filled = panel.tricontourf(xs, ys, [row.value for row in complete], levels=12, cmap="viridis")
        fig.colorbar(filled, ax=panel, label=f"validation {objective}")
    panel.scatter(xs, ys, c="white", edgecolors="black", s=16, zorder=3, clip_on=False)
    for set_ticks, ticks in ((panel.set_xticks, x_ticks), (panel.set_yticks, y_ticks)):
        if ticks is not None:
            set_ticks(range(len(ticks)), ticks)
    panel.set(xlabel=_name(x_grid), ylabel=_name(y_grid))
    finish(fig, f"{caption}; colour: validation {objective}", style)
    return fig


def _name(grid: Grid) -> str:
    return f"log10 {grid.key}" if _is_log(grid) else grid.key


def _complete(result: Found) -> list[TrialRow]:
    return [row for row in result.rows if row.state == "complete" and row.value is not None]


def _is_log(grid: Grid) -> bool:
    return grid.span is not None and grid.span[2]


def _positions(grid: Grid, rows: list[TrialRow], log10: bool = False) -> tuple[list[float], list[str] | None]:
    """Each row's value of `grid` as a position on its axis: a range's number (its log10 for a log
    range, if asked), or a list value's place in the list (its labels returned as the ticks)."""
    if grid.span is not None:
        numbers = [float(row.values[grid.key]) for row in rows]
        return ([math.log10(x) for x in numbers] if log10 and _is_log(grid) else numbers), None
    from dropcli.experiments.tune import label

    labels = [str(label(value)) for value in grid.values]
    return [float(labels.index(str(row.values[grid.key]))) for row in rows], labels


def _x_axis(panel, grid: Grid, ticks: list[str] | None) -> None:
    """A log range on a log scale (its minor ticks unlabelled: 2x10^-1, 3x10^-1, ... would run
    into each other); a list's values as tick labels."""
    if _is_log(grid):
        from matplotlib.ticker import NullFormatter

        panel.set_xscale("log")
        panel.xaxis.set_minor_formatter(NullFormatter())
    if ticks is not None:
        panel.set_xticks(range(len(ticks)), ticks)
