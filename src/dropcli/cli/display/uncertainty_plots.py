"""evaluate's figures (needs matplotlib: dropcli[plot]): reliability diagrams per method and shift
value; accuracy, ECE and NLL against the size of each shift, a line per method (Ovadia et al. 2019,
fig. 1); the metrics against forward passes per example (compute-matched); selective prediction."""

import math
import re
from pathlib import Path

from dropcli.cli.display.figure import Style, finish, grid, load_pyplot, panel_columns, panels, save, top_legend, wrapped
from dropcli.data import dataset
from dropcli.errors import DropcliError
from dropcli.files import check_writable
from dropcli.runtime import count_text, seeds_text
from dropcli.uncertainty import methods
from dropcli.uncertainty.calibration import COVERAGES, METRICS

SHIFT_AXES = {
    "rotate": "rotation angle (degrees)",
    "translate": "translation (pixels)",
    "noise": "Gaussian noise std (pixels on [0, 1])",
    "blur": "Gaussian blur sigma (pixels)",
    "contrast": "share of the contrast taken away",
    "elastic": "largest elastic displacement (pixels)",
    "speckle": "speckle noise std (times the pixel)",
}
CURVES = (("accuracy", "accuracy"), ("ece", "ECE (15 bins)"), ("nll", "NLL (nats)"))
# A reliability bin with fewer examples draws no bar: its accuracy is noise (the strip above
# still shows its count).
MIN_BIN_EXAMPLES = 20
# Accuracy above a confidence threshold is drawn only where the threshold keeps this many examples.
MIN_THRESHOLD_EXAMPLES = 50
# (marker, dash) per method, in the order drawn.
METHOD_LOOKS = (("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"), ("X", "-."), ("*", ":"))


FIGURES = ("reliability", "shift", "compute", "selective")


def written_paths(output: Path) -> dict[str, Path]:
    """The files `-o FIG.png` may name: FIG-reliability.png, FIG-shift.png, FIG-compute.png, FIG-selective.png."""
    return {figure: output.with_name(f"{output.stem}-{figure}.png") for figure in FIGURES}


def caption(study, intervals: bool = True) -> str:
    members = study.members
    first = members[0]
    run = first.checkpoint.parent.parent
    name = run.parent.name if len(members) > 1 else run.name
    mc = f"; MC dropout K = {study.mc_samples}" if study.mc_samples else ""
    bands = f"; bands/bars: {study.level:.0%} bootstrap interval over test examples" if study.intervals and intervals else ""
    return (
        f"{name}: {first.config.model.kind} MLP, {_dropout_text(first.config.model)}, "
        f"{count_text(first.epoch, 'epoch')}, {seeds_text([m.config.seed for m in members])}; "
        f"{dataset(first.config.data.name).title} {study.split}, {len(study.labels):,} images{mc}{bands}"
    )


def family(method: str) -> str:
    """A method's name without its K or M: the line it belongs to on the compute axis."""
    return re.sub(r" [KM]=\d+", "", method)


def headline(study) -> list[str]:
    """The methods drawn where all would crowd the figure: a swept family at its largest K or M."""
    best: dict[str, str] = {}
    for method in study.methods:
        key = family(method)
        if key not in best or study.passes.get(method, 1) >= study.passes.get(best[key], 1):
            best[key] = method
    return [m for m in study.methods if m in best.values()]


def picked_shifts(study, most: int = 4) -> list:
    """Up to `most` shift values, evenly spread over those evaluated, the first and last included
    (one: the first)."""
    points = study.shifts
    if len(points) <= most or most == 1:
        return list(points)[:most]
    return [points[round(i * (len(points) - 1) / (most - 1))] for i in range(most)]


def reliability(study, style: Style | None = None):
    """A Figure: a panel per method and shift value: accuracy against confidence per bin, with
    the gap to the diagonal, under a strip of how many examples each bin holds. A bin with fewer
    than MIN_BIN_EXAMPLES draws no bar (its accuracy is noise). With several runs the bins are
    pooled over them; the ECE in each title is the tables' (the mean of per-run ECEs). As many
    shift values are drawn as three rows of panels hold at the width; the caption names them."""
    style = style or Style()
    chosen = headline(study)
    columns = panel_columns(len(chosen) * len(study.shifts), style, 1.55)
    rows_per_shift = math.ceil(len(chosen) / columns)  # each shift value starts a row: its name labels the row
    shifts = picked_shifts(study, max(1, 3 // rows_per_shift))
    slots = [(method, shift) for shift in shifts for method in chosen + [None] * (rows_per_shift * columns - len(chosen))]
    figure, axes = panels(len(slots), style, aspect=1.2, min_width=1.55, sharex=True, sharey=True)
    for index, ((method, shift), ax) in enumerate(zip(slots, axes)):
        if method is None:
            ax.set_visible(False)
            continue
        _reliability_panel(ax, study, method, shift, style)
        if index % columns == 0:  # the shift value names the row (two lines of title would crowd it)
            ax.set_ylabel(f"{shift.label}\naccuracy in bin" if len(shifts) > 1 else "accuracy in bin")
        if index + columns >= len(slots) or slots[index + columns][0] is None:
            ax.set_xlabel("confidence")
    figure.suptitle(f"Reliability diagrams, {study.split} set")
    top_legend(figure, *_reliability_legend(), style, most_columns=2)
    finish(figure, caption(study, intervals=False) + _left_out(study, shifts), style)
    return figure


def _reliability_legend():
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="tab:blue", edgecolor="black", linewidth=0.4),
        Patch(fill=False, hatch="///", edgecolor="tab:red", linewidth=0.4),
        Line2D([], [], linestyle="--", color="gray"),
        Patch(facecolor="0.8", edgecolor="0.5", linewidth=0.4),
    ]
    labels = ["accuracy", "gap to confidence", "perfect calibration", f"examples per bin (< {MIN_BIN_EXAMPLES}: no bar)"]
    return handles, labels


def _reliability_panel(ax, study, method, shift, style: Style) -> None:
    from matplotlib.ticker import FixedFormatter, FixedLocator

    scores = study.scores[method, shift]
    filled = [b for b in scores.bins if b.count]
    drawn = [b for b in filled if b.count >= MIN_BIN_EXAMPLES]
    strip = ax.inset_axes([0, 1.04, 1, 0.3], sharex=ax)  # above the panel; its title goes above both
    strip.bar(
        [b.lower for b in filled],
        [b.count for b in filled],
        width=[b.upper - b.lower for b in filled],
        align="edge",
        color=["0.75" if b.count >= MIN_BIN_EXAMPLES else "0.92" for b in filled],
        edgecolor="0.45",
        linewidth=0.4,
    )
    strip.axhline(MIN_BIN_EXAMPLES, color="0.4", linewidth=0.6, linestyle=":")
    strip.set_yscale("log")
    strip.set_ylim(0.7, max([b.count for b in filled], default=1) * 2)
    strip.yaxis.set_major_locator(FixedLocator([10, 1000]))
    strip.yaxis.set_major_formatter(FixedFormatter(["10", "1k"]))
    strip.yaxis.set_minor_locator(FixedLocator([]))
    strip.tick_params(labelbottom=False, labelsize=style.small - 1, length=2)
    strip.spines[["top", "right"]].set_visible(False)
    width = [b.upper - b.lower for b in drawn]
    left = [b.lower for b in drawn]
    accuracy = [b.accuracy for b in drawn]
    ax.bar(left, accuracy, width=width, align="edge", color="tab:blue", edgecolor="black", linewidth=0.4)
    gaps = [b.confidence - b.accuracy for b in drawn]
    ax.bar(left, gaps, bottom=accuracy, width=width, align="edge", fill=False, hatch="///", edgecolor="tab:red", linewidth=0.4)
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    runs = len(study.member_scores[method, shift])
    ece = f"ECE {scores.ece:.4f}" + (f" (mean of {runs})" if runs > 1 else "")  # as the tables print it
    side = ax.get_position().width * style.width
    strip.set_title(wrapped(f"{method}\n{ece}", side * 1.3, style.small), fontsize=style.small)  # may run over the y labels' room
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
    ax.set_yticks([0, 0.5, 1], ["0", "0.5", "1"])


def shift_curves(study, style: Style | None = None):
    """A Figure: a row each for accuracy, ECE and NLL, a column per shift family, against the
    family's values, a line per method, with a band for the bootstrap interval. Families that do
    not fit side by side (at least 1.1 inches each) go down the page instead: a row per family,
    a column per metric, the family's axis named under each row."""
    style = style or Style()
    families = curve_families(study)
    across = panel_columns(len(families), style, 1.1) == len(families)
    if across:
        figure, axes, alone = _metric_grid(len(CURVES), len(families), style, sharex="col")
    else:
        figure, by_family = grid(len(families), len(CURVES), style, aspect=0.75)
        axes, alone = [list(column) for column in zip(*by_family)], False  # axes[metric][family]
    for column, shift_family in enumerate(families):
        points = [s for s in study.shifts if s.family == shift_family]
        x = [s.value for s in points]
        for row, (metric, label) in enumerate(CURVES):
            ax = axes[row][column]
            for number, method in enumerate(headline(study)):
                y = [getattr(study.scores[method, s], metric) for s in points]
                (line,) = ax.plot(x, y, label=method, **method_style(number))
                if all((method, s) in study.intervals for s in points):
                    bounds = [study.intervals[method, s][METRICS.index(metric)] for s in points]
                    ax.fill_between(x, [b.low for b in bounds], [b.high for b in bounds], color=line.get_color(), alpha=0.2)
            if across:
                _label_matrix(ax, row, column, len(CURVES), label, SHIFT_AXES[shift_family], alone=alone)
            else:  # the family's axis once, under the middle panel of its row; the metrics on top
                ax.set_xlabel(SHIFT_AXES[shift_family] if row == len(CURVES) // 2 else "")
                ax.set_title(label if column == 0 else "")
                ax.grid(alpha=0.3)
            if shift_family == "rotate" and across:  # down the page, matplotlib's own ticks fit
                ax.set_xticks(x[:: max(1, len(points) // 5)])
    top_legend(figure, *axes[0][0].get_legend_handles_labels(), style)
    figure.suptitle("Accuracy and calibration under shift")
    finish(figure, caption(study), style)
    return figure


def compute_curves(study, style: Style | None = None):
    """A Figure: a row each for NLL, Brier and accuracy, a column per shift value (as many as
    fit), against multiply-adds per test example (uncertainty/compute.py: MC dropout's passes
    share the layers before the first noise layer), a line per method family (MC dropout over K,
    ensembles over M), bars for the intervals; the caption names the Ks and Ms drawn."""
    style = style or Style()
    load_pyplot(style)
    from matplotlib.ticker import FuncFormatter

    shifts = _shifts_that_fit(study, style)
    metrics = (("nll", "NLL (nats)"), ("brier", "Brier"), ("accuracy", "accuracy"))
    figure, axes, alone = _metric_grid(len(metrics), len(shifts), style, sharex=True)
    families = list(dict.fromkeys(family(m) for m in study.methods))
    for column, shift in enumerate(shifts):
        for row, (metric, label) in enumerate(metrics):
            ax = axes[row][column]
            for number, name in enumerate(families):
                members = sorted((m for m in study.methods if family(m) == name), key=lambda m: cost(study, m))
                x = [cost(study, m) * (1 + 0.03 * (number - len(families) / 2)) for m in members]  # nudged apart
                y = [getattr(study.scores[m, shift], metric) for m in members]
                errors = None
                if all((m, shift) in study.intervals for m in members):
                    bounds = [study.intervals[m, shift][METRICS.index(metric)] for m in members]
                    errors = [[v - b.low for v, b in zip(y, bounds)], [b.high - v for v, b in zip(y, bounds)]]
                ax.errorbar(x, y, yerr=errors, capsize=2, label=name, **method_style(number))
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.5, 1, 2: not 2^-1
            _label_matrix(
                ax,
                row,
                column,
                len(metrics),
                label,
                "multiply-adds per example (M)",
                shift,
                len(shifts),
                alone=alone,
                same_x=True,
            )
    top_legend(figure, *axes[0][0].get_legend_handles_labels(), style)
    figure.suptitle("At equal compute: each method against its multiply-adds per test example")
    finish(figure, f"{caption(study)}; drawn: {drawn_counts(study)}{_left_out(study, shifts)}", style)
    return figure


def cost(study, method: str) -> float:
    """Millions of multiply-adds per example; forward passes where the study has no count."""
    return study.multiply_adds[method] / 1e6 if method in study.multiply_adds else study.passes.get(method, 1)


def drawn_counts(study) -> str:
    """The Ks and Ms the compute figure draws, e.g. "mc dropout K = 1, 3, 10; ensemble M = 1, 3"."""
    parts = []
    for name in dict.fromkeys(family(m) for m in study.methods):
        members = [m for m in study.methods if family(m) == name]
        found = [re.search(r" ([KM])=(\d+)", m) for m in members]
        if all(found) and len(found) > 1:
            letter = found[0].group(1)
            parts.append(f"{name} {letter} = {', '.join(match.group(2) for match in found)}")
        elif name == methods.MC_DROPOUT and study.mc_samples:
            parts.append(f"{name} K = {study.mc_samples}")
    return "; ".join(parts) or "one forward-pass count per method"


def selective_curves(study, style: Style | None = None):
    """A Figure, a column per shift value (as many as fit): accuracy on the examples above a
    confidence threshold (only thresholds that keep MIN_THRESHOLD_EXAMPLES examples), the
    fraction of examples that is, and accuracy against coverage (most certain first); the
    accuracies with their bootstrap band under --bootstrap."""
    style = style or Style()
    shifts = _shifts_that_fit(study, style)
    labels = (
        ("accuracy,\nconfidence ≥ t", "confidence threshold t"),
        ("fraction,\nconfidence ≥ t", "confidence threshold t"),
        ("selective\naccuracy", "coverage"),
    )
    figure, axes, alone = _metric_grid(len(labels), len(shifts), style)
    n = len(study.labels)
    for column, shift in enumerate(shifts):
        above, fraction, coverage = (axes[row][column] for row in range(3))
        for number, method in enumerate(headline(study)):
            scores = study.scores[method, shift]
            look = method_style(number)
            bounds = study.threshold_intervals.get((method, shift))
            kept = [
                (t, a, bounds[index] if bounds else None)
                for index, (t, (a, f)) in enumerate(scores.thresholds.items())
                if a is not None and f * n >= MIN_THRESHOLD_EXAMPLES
            ]
            (line,) = above.plot([t for t, _, _ in kept], [a for _, a, _ in kept], label=method, **look)
            banded = [(t, b) for t, _, b in kept if b is not None]
            if banded:
                low, high = [b.low for _, b in banded], [b.high for _, b in banded]
                above.fill_between([t for t, _ in banded], low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            fraction.plot(list(scores.thresholds), [f for _, f in scores.thresholds.values()], **look)
            coverages = sorted(scores.selective)
            coverage.plot(coverages, [scores.selective[c] for c in coverages], **look)
            intervals = dict(zip(COVERAGES, study.selective_intervals.get((method, shift), [])))
            if intervals:
                low, high = [intervals[c].low for c in coverages], [intervals[c].high for c in coverages]
                coverage.fill_between(coverages, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        for row, (y, x) in enumerate(labels):
            _label_matrix(
                axes[row][column], row, column, len(labels), y, x, shift, len(shifts), every_row=True, alone=alone, same_x=True
            )
    top_legend(figure, *axes[0][0].get_legend_handles_labels(), style)
    figure.suptitle("Selective prediction" + (" under shift" if len(study.shifts) > 1 else ""))
    bands = f"; bands: {study.level:.0%} bootstrap interval" if study.threshold_intervals else ""
    text = (
        f"{caption(study, intervals=False)}; thresholds keeping < {MIN_THRESHOLD_EXAMPLES} examples left out{bands}; "
        "coverage: the most certain examples by entropy first"
    )
    finish(figure, text + _left_out(study, shifts), style)
    return figure


def _shifts_that_fit(study, style: Style) -> list:
    """The shift values drawn as columns: as many as fit at 1.5 inches each (four at most)."""
    return picked_shifts(study, min(4, max(1, int(style.width // 1.5))))


def _left_out(study, shifts) -> str:
    if len(shifts) == len(study.shifts):
        return ""
    return f"; drawn at {', '.join(s.label for s in shifts)} of {len(study.shifts)} shift values (--width wider for more)"


def _metric_grid(metrics: int, columns: int, style: Style, **options):
    """Panels for `metrics` rows by `columns` (shift values or families): a grid, or, for one
    column where the width holds the metrics side by side, one row of them; (figure, the panels
    as axes[metric][column], whether each panel labels itself)."""
    if columns == 1 and panel_columns(metrics, style, 1.5) == metrics:
        figure, axes = grid(1, metrics, style, aspect=0.9, **options)
        return figure, [[ax] for ax in axes[0]], True
    figure, axes = grid(metrics, columns, style, **options)
    return figure, axes, False


def _label_matrix(
    ax, row, column, rows, y_label, x_label, shift=None, columns=1, every_row=False, alone=False, same_x=False
) -> None:
    """Labels of a grid whose rows are metrics: the y label on the first column, the x label on
    the last row (on each, where `every_row`: the rows' x differ), the shift value over each
    column's top panel where there are several; every label on every panel where `alone`.
    Where every column has the same x (`same_x`), only the first column names it: side by side at
    a column's width, the same long label ran into its neighbour's."""
    if column == 0 or alone:
        ax.set_ylabel(y_label)
    if ((row == rows - 1 or every_row) and (column == 0 or not same_x)) or alone:
        ax.set_xlabel(x_label)
    if (row == 0 or alone) and shift is not None and (columns > 1 or shift.family != "none"):
        ax.set_title(shift.label)
    ax.grid(alpha=0.3)


def method_style(number: int) -> dict:
    """A method's marker and dash of its own, open markers: methods that coincide stay visible."""
    marker, dash = METHOD_LOOKS[number % len(METHOD_LOOKS)]
    return {"marker": marker, "linestyle": dash, "markerfacecolor": "none", "color": f"C{number % 10}"}


def curve_families(study) -> list[str]:
    """The shift families evaluated at two values or more: each gets a row of curves."""
    families = [s.family for s in study.shifts if s.family != "none"]
    return [f for f in dict.fromkeys(families) if families.count(f) > 1]


def write(study, output: Path, style: Style | None = None) -> list[Path]:
    """Draw the figures `study` has data for next to `output`: FIG-reliability.png, FIG-shift.png
    (a shift family at two values or more), FIG-compute.png (methods at several forward passes per
    example), FIG-selective.png; the paths written."""
    path = written_paths(output)
    drawn = {"reliability": reliability(study, style)}
    if curve_families(study):
        drawn["shift"] = shift_curves(study, style)
    if len(set(study.passes.values())) > 1:
        drawn["compute"] = compute_curves(study, style)
    drawn["selective"] = selective_curves(study, style)
    for name, figure in drawn.items():
        save(figure, path[name])
    return [path[name] for name in drawn]


def check_output(output: Path) -> None:
    """Refuse, before any work, a figure name that could not be written, or a missing matplotlib."""
    if output.suffix != ".png":
        raise DropcliError(f"-o {output}: name a .png file, e.g. -o calibration.png")
    for path in written_paths(output).values():  # every file -o may name, checked before any work
        check_writable(path, "-o")
    load_pyplot()


def _dropout_text(model) -> str:
    # A plain net keeps the config's rates but uses none of them.
    return "no dropout" if model.kind == "none" else f"dropout {'/'.join(f'{p:g}' for p in model.dropout)}"
