"""Figures of runs: learning curves (loss and accuracy against epoch), one colour per group of
seeds, and what every figure shares: its caption line and layout (figure.py loads matplotlib and saves).

Needs matplotlib (dropcli[plot]); sweep figures are in sweep_plots.py.
"""

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.cli.display.figure import Style, finish, panels, top_legend
from dropcli.config.labels import readable, value_text
from dropcli.runtime import count_text, seeds_text

# Line style per split: the same in both panels, so one legend explains them.
SPLIT_STYLES = {"train": "-", "val": ":", "test": "--"}
SPLIT_LABELS = {"train": "train (dropout on, epoch mean)", "val": "validation (eval)", "test": "test (eval)"}
# Open markers of a different shape per group: where two groups' curves coincide, both still show.
GROUP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class RunCurves:
    """Runs drawn as one colour: their mean per epoch, with a ± std band when there are several."""

    label: str
    histories: list[list[dict[str, Any]]]  # one per run (seed): metrics.jsonl's records


def learning_curves(groups: list[RunCurves], caption: str = "", style: Style | None = None):
    """A matplotlib Figure: loss and accuracy against epoch (side by side where the width holds
    both, else stacked), train, test and, when the runs have one, validation; one colour and one
    marker shape per group, mean ± std over its runs."""
    style = style or Style()
    figure, (loss_axes, acc_axes) = panels(2, style, aspect=0.62, min_width=2.3)
    colours = [f"C{index}" for index in range(10)]
    splits_drawn = []
    for index, group in enumerate(groups):
        colour = colours[index % len(colours)]
        for split, line_style in SPLIT_STYLES.items():
            for axes, metric in ((loss_axes, f"{split}_loss"), (acc_axes, f"{split}_acc")):
                epochs, means, stds = _mean_over_runs(group.histories, metric)
                if not epochs:
                    continue
                axes.plot(epochs, means, line_style, color=colour, **_marker(index, len(groups), len(epochs)))
                if any(std > 0 for std in stds):
                    lower = [m - s for m, s in zip(means, stds)]
                    upper = [m + s for m, s in zip(means, stds)]
                    axes.fill_between(epochs, lower, upper, color=colour, alpha=0.18, linewidth=0)
                if split not in splits_drawn:
                    splits_drawn.append(split)
    loss_axes.set_ylabel("cross-entropy loss")
    acc_axes.set_ylabel("accuracy")
    for axes in (loss_axes, acc_axes):
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
    loss_axes.set_ylim(bottom=0)
    _legends(figure, groups, colours, splits_drawn, style)
    finish(figure, caption, style)
    return figure


def _marker(index: int, groups: int, epochs: int) -> dict:
    """Markers where curves could hide each other (several groups) or a line would not show (one
    epoch). With several groups an earlier one is drawn wider and its markers larger: where two
    coincide, the earlier shows as a rim around the later."""
    if groups == 1:
        return {"marker": "o"} if epochs == 1 else {}
    under = min(groups - 1 - index, 2)  # how many groups may be drawn over this one (at most 2 widths more)
    return {
        "marker": GROUP_MARKERS[index % len(GROUP_MARKERS)],
        "markerfacecolor": "none",
        "markevery": max(1, epochs // 8),
        "linewidth": 1.1 + 0.5 * under,
        "markersize": 3.5 + 1.5 * under,
    }


def _legends(figure, groups: list[RunCurves], colours: list[str], splits: list[str], style: Style) -> None:
    """Above the panels, where they cover no data: a row of line styles (splits), then one of
    colours and markers (groups), each in as many columns as fit the width."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.3", linestyle=SPLIT_STYLES[split], label=SPLIT_LABELS[split]) for split in splits]
    top_legend(figure, handles, [handle.get_label() for handle in handles], style, most_columns=3)
    if len(groups) > 1:
        handles = [
            Line2D([], [], color=colours[index % len(colours)], label=group.label, **_marker(index, len(groups), 2))
            for index, group in enumerate(groups)
        ]
        if max(len(group.histories) for group in groups) > 1:
            handles.append(Line2D([], [], color="none", label="(bands: ± std over seeds)"))
        top_legend(figure, handles, [handle.get_label() for handle in handles], style, most_columns=3)


def _mean_over_runs(histories: list[list[dict[str, Any]]], metric: str) -> tuple[list[int], list[float], list[float]]:
    """(epochs every run has a value of `metric` for, mean over runs, std over runs (0 for one run))."""
    per_run = [{m["epoch"]: m[metric] for m in history if isinstance(m.get(metric), (int, float))} for history in histories]
    if not per_run:
        return [], [], []
    epochs = sorted(set.intersection(*(set(values) for values in per_run)))
    means, stds = [], []
    for epoch in epochs:
        values = [run[epoch] for run in per_run]
        means.append(statistics.mean(values))
        stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return epochs, means, stds


def _split_sizes(data: Any) -> dict[str, int] | None:
    """The image counts of a summary's data section (its source path aside)."""
    return {split: data.get(split) for split in ("train", "val", "test")} if isinstance(data, dict) else None


def caption(name: str, models: list[str], epochs: int | str, data: dict[str, Any] | str | None, seeds: list[int]) -> str:
    """The line under a figure that says what was trained, e.g.
    "config smoke · scratch, builtin · 3 epochs · 2,700 train / 300 val / 2,000 test images · seeds 0-2 (mean ± std)"."""
    parts = [f"config {name}", ", ".join(dict.fromkeys(models)), count_text(epochs, "epoch")]
    if data == "differ":
        parts.append("data sizes differ between runs (see each run's summary.json)")
    elif data:
        sizes = [f"{data[split]:,} {split}" for split in ("train", "val", "test") if data.get(split)]
        parts.append(" / ".join(sizes) + " images")
    parts.append(seed_text(seeds))
    return " · ".join(parts)


def seed_text(seeds: list[int]) -> str:
    return seeds_text(seeds) + (" (mean ± std)" if len(set(seeds)) > 1 else "")


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


# Keys that do not make two runs different settings: runs that differ only in these are seeds
# of one setting, drawn as one colour.
NOT_SETTINGS = ("seed", "name", "data.root", "device", "metrics.tensorboard")


def run_groups(run_dirs: list[Path]) -> list[tuple[str, list[Path]]]:
    """The runs grouped by setting (every config key but the seed and where things lie), each
    group labelled by the settings that tell it apart, in readable names and 4 significant
    figures, e.g. "learning rate = 0.1, dropout rate p = 0.5" (a comparison of models: "scratch"); in given order."""
    from dropcli import runs

    settings = {run_dir: runs.run_info(run_dir).settings for run_dir in run_dirs}
    keys = list(dict.fromkeys(key for values in settings.values() for key in values if key not in NOT_SETTINGS))
    differing = [key for key in keys if len({repr(values.get(key)) for values in settings.values()}) > 1]
    groups: dict[str, list[Path]] = {}
    for run_dir, values in settings.items():
        label = ", ".join(f"{readable(key)} = {value_text(key, values.get(key))}" for key in differing) or run_dir.name
        if differing == ["model.kind"]:
            label = str(values["model.kind"])
        if not differing and len(run_dirs) > 1 and len({repr(v.get("seed")) for v in settings.values()}) == len(run_dirs):
            label = str(values.get("model.kind", run_dir.name))  # seeds of one setting
        groups.setdefault(label, []).append(run_dir)
    return list(groups.items())


def runs_figure(groups: list[tuple[str, list[Path]]], style: Style | None = None):
    """The learning-curve figure of groups of run directories, with a caption read from their
    configs and summaries."""
    from dropcli import runs

    curves, infos, sizes = [], [], []
    for label, run_dirs in groups:
        curves.append(RunCurves(label, [runs.read_metrics(run_dir) for run_dir in run_dirs]))
        infos += [runs.run_info(run_dir) for run_dir in run_dirs]
        for run_dir in run_dirs:
            summary_path = run_dir / runs.SUMMARY_FILE
            if summary_path.is_file():
                sizes.append(_split_sizes(runs.read_summary(summary_path).get("data")))
    # One line of sizes only where every run had them: never the first run's for all.
    data = sizes[0] if sizes and all(size == sizes[0] for size in sizes) else ("differ" if sizes else None)
    epochs = sorted({len(history) for group in curves for history in group.histories})
    text = caption(
        infos[0].name if len({info.name for info in infos}) == 1 else "various",
        [info.model for info in infos],
        epochs[0] if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}",
        data,
        [info.settings.get("seed", 0) for info in infos],
    )
    return learning_curves(curves, text, style)
