"""Figures of runs: learning curves (loss and accuracy against epoch), one colour per group of
seeds, and what every figure shares: its caption line and layout (figure.py loads matplotlib and saves).

Needs matplotlib (dropcli[plot]); sweep figures are in sweep_plots.py.
"""

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropcli.cli.display.figure import load_pyplot
from dropcli.config.architecture import short
from dropcli.runtime import count_text

# A figure 6.5 inches wide (a page's text width) at 9-point type stays readable when a paper
# shrinks it to one column.
WIDTH = 6.5
# Line style per split: the same in both panels, so one legend explains them.
SPLIT_STYLES = {"train": "-", "val": ":", "test": "--"}
SPLIT_LABELS = {"train": "train (dropout on, epoch mean)", "val": "validation (eval)", "test": "test (eval)"}


@dataclass(frozen=True)
class RunCurves:
    """Runs drawn as one colour: their mean per epoch, with a ± std band when there are several."""

    label: str
    histories: list[list[dict[str, Any]]]  # one per run (seed): metrics.jsonl's records


def learning_curves(groups: list[RunCurves], caption: str = ""):
    """A matplotlib Figure: loss (left) and accuracy (right) against epoch, train, test and, when
    the runs have one, validation; one colour per group, mean ± std over its runs."""
    pyplot = load_pyplot()
    figure, (loss_axes, acc_axes) = pyplot.subplots(1, 2, figsize=(WIDTH, 2.9))
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    splits_drawn = []
    for index, group in enumerate(groups):
        colour = colours[index % len(colours)]
        for split, style in SPLIT_STYLES.items():
            for axes, metric in ((loss_axes, f"{split}_loss"), (acc_axes, f"{split}_acc")):
                epochs, means, stds = _mean_over_runs(group.histories, metric)
                if not epochs:
                    continue
                marker = "o" if len(epochs) == 1 else None  # one epoch is a point: a line alone would not show
                axes.plot(epochs, means, style, color=colour, linewidth=1.4, marker=marker, markersize=4)
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
    entries, columns = _legends(figure, groups, colours, splits_drawn)
    finish(figure, caption, legend_rows=math.ceil(entries / columns))
    return figure


# Legend text that fits a row of the figure's width at the legend's 8-point type.
LEGEND_CHARACTERS = 105


def _legends(figure, groups: list[RunCurves], colours: list[str], splits: list[str]) -> tuple[int, int]:
    """Above the panels, where they cover no data: the line styles (splits), then the colours
    (groups), in as many columns as the longest label lets fit the width. Returns (entries, columns)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="0.3", linestyle=SPLIT_STYLES[split], label=SPLIT_LABELS[split]) for split in splits]
    if len(groups) > 1:
        seeds = max(len(group.histories) for group in groups)
        for index, group in enumerate(groups):
            handles.append(Line2D([], [], color=colours[index % len(colours)], linewidth=2, label=group.label))
        if seeds > 1:
            handles.append(Line2D([], [], color="none", label="(bands: ± std over seeds)"))
    longest = max(len(handle.get_label()) for handle in handles)
    columns = max(1, min(len(handles), 3, LEGEND_CHARACTERS // (longest + 8)))  # 8: the line sample and spacing
    figure.legend(
        handles=handles,
        loc="upper center",
        ncol=columns,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
        handlelength=2.2,
        columnspacing=1.2,
    )
    return len(handles), columns


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
    seeds = sorted(set(seeds))
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    listed = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds))
    return f"seeds {listed} (mean ± std)"


def finish(figure, caption: str, legend_rows: int = 0) -> None:
    """Lay the figure out with its caption line at the bottom (and room for legend rows on top)."""
    height = figure.get_figheight()
    if caption:
        figure.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7.5, color="0.25", wrap=True)
    bottom = 0.22 / height if caption else 0.0
    top = 1 - legend_rows * 0.19 / height
    figure.tight_layout(rect=(0, bottom, 1, top))


def nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


# Keys that do not make two runs different settings: runs that differ only in these are seeds
# of one setting, drawn as one colour.
NOT_SETTINGS = ("seed", "name", "data.root", "device", "metrics.tensorboard")


def run_groups(run_dirs: list[Path]) -> list[tuple[str, list[Path]]]:
    """The runs grouped by setting (every config key but the seed and where things lie), each
    group labelled by the values that tell it apart, e.g. "model.kind=scratch"; in given order."""
    from dropcli import runs

    settings = {run_dir: runs.run_info(run_dir).settings for run_dir in run_dirs}
    keys = list(dict.fromkeys(key for values in settings.values() for key in values if key not in NOT_SETTINGS))
    differing = [key for key in keys if len({repr(values.get(key)) for values in settings.values()}) > 1]
    groups: dict[str, list[Path]] = {}
    for run_dir, values in settings.items():
        label = ", ".join(f"{key.rsplit('.', 1)[-1]}={short(values.get(key))}" for key in differing) or run_dir.name
        if differing == ["model.kind"]:
            label = str(values["model.kind"])
        if not differing and len(run_dirs) > 1 and len({repr(v.get("seed")) for v in settings.values()}) == len(run_dirs):
            label = str(values.get("model.kind", run_dir.name))  # seeds of one setting
        groups.setdefault(label, []).append(run_dir)
    return list(groups.items())


def runs_figure(groups: list[tuple[str, list[Path]]]):
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
    return learning_curves(curves, text)
