"""evaluate's figures (needs matplotlib: dropcli[plot]): reliability diagrams per method and shift
value; accuracy, ECE and NLL against the size of each shift, a line per method (Ovadia et al. 2019,
fig. 1); the metrics against forward passes per example (compute-matched); selective prediction."""

import re
from pathlib import Path

from dropcli.cli.display.figure import load_pyplot, save
from dropcli.data import dataset
from dropcli.errors import DropcliError
from dropcli.files import check_writable
from dropcli.runtime import count_text
from dropcli.uncertainty.calibration import METRICS

SHIFT_AXES = {
    "rotate": "rotation angle (degrees)",
    "translate": "translation (pixels)",
    "noise": "Gaussian noise std (pixel intensity, [0, 1] scale)",
}
CURVES = (("accuracy", "accuracy"), ("ece", "ECE (15 bins)"), ("nll", "NLL (nats)"))


FIGURES = ("reliability", "shift", "compute", "selective")


def written_paths(output: Path) -> dict[str, Path]:
    """The files `-o FIG.png` may name: FIG-reliability.png, FIG-shift.png, FIG-compute.png, FIG-selective.png."""
    return {figure: output.with_name(f"{output.stem}-{figure}.png") for figure in FIGURES}


def caption(study, intervals: bool = True) -> str:
    members = study.members
    first = members[0]
    run = first.checkpoint.parent.parent
    name = run.parent.name if len(members) > 1 else run.name
    seeds = ", ".join(str(m.config.seed) for m in members)
    mc = f"; MC dropout K = {study.mc_samples}" if study.mc_samples else ""
    bands = f"; bands/bars: {study.level:.0%} bootstrap interval over test examples" if study.intervals and intervals else ""
    return (
        f"{name}: {first.config.model.kind} MLP, {_dropout_text(first.config.model)}, "
        f"{count_text(first.epoch, 'epoch')}, seed{'s' if len(members) > 1 else ''} {seeds}; "
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
    """Up to `most` shift values, evenly spread over those evaluated, the first and last included."""
    points = study.shifts
    if len(points) <= most:
        return list(points)
    return [points[round(i * (len(points) - 1) / (most - 1))] for i in range(most)]


def reliability(study):
    """A Figure: a row per shift value (up to four), a column per method: accuracy against
    confidence per bin, with the gap to the diagonal. With several runs the bins are pooled over
    them, and so is the ECE in the title (the tables give the mean of per-run ECEs)."""
    pyplot = load_pyplot()
    chosen, rows = headline(study), picked_shifts(study)
    figure, axes = pyplot.subplots(
        len(rows), len(chosen), figsize=(2.6 * len(chosen) + 0.6, 2.6 * len(rows) + 1.0), sharex=True, sharey=True, squeeze=False
    )
    for row, shift in enumerate(rows):
        for column, method in enumerate(chosen):
            _reliability_panel(axes[row][column], study, method, shift, first=(row, column) == (0, 0))
            if column == 0:
                axes[row][column].set_ylabel(f"{shift.label}\naccuracy in bin")
            if row == len(rows) - 1:
                axes[row][column].set_xlabel("confidence")
    figure.suptitle(f"Reliability diagrams, {study.split} set, per shift value")
    return _with_caption(figure, caption(study, intervals=False))


def _reliability_panel(ax, study, method, shift, first: bool) -> None:
    scores = study.scores[method, shift]
    filled = [b for b in scores.bins if b.count]
    width = [b.upper - b.lower for b in filled]
    left = [b.lower for b in filled]
    ax.bar(
        left,
        [b.accuracy for b in filled],
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        linewidth=0.4,
        label="accuracy",
    )
    ax.bar(
        left,
        [b.confidence - b.accuracy for b in filled],
        bottom=[b.accuracy for b in filled],
        width=width,
        align="edge",
        fill=False,
        hatch="///",
        edgecolor="tab:red",
        linewidth=0.4,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    parts = len(study.member_scores[method, shift])
    # The tables' ECE (the mean of the runs' ECEs), not the pooled bins' own: one number, one meaning.
    ece = f"ECE {scores.ece:.3f}" + (f" (mean of {parts}; bins pooled)" if parts > 1 else "")
    ax.set_title(f"{method}\n{ece}", fontsize="small")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if first:
        ax.legend(fontsize="x-small", loc="upper left")


def shift_curves(study):
    """A Figure: accuracy, ECE and NLL against each shift family's values, a line per method,
    with a band for the bootstrap interval."""
    pyplot = load_pyplot()
    families = curve_families(study)
    figure, axes = pyplot.subplots(len(families), len(CURVES), figsize=(13, 3.6 * len(families) + 0.6), squeeze=False)
    for row, shift_family in enumerate(families):
        points = [s for s in study.shifts if s.family == shift_family]
        for column, (metric, label) in enumerate(CURVES):
            ax = axes[row][column]
            for method in headline(study):
                x = [s.value for s in points]
                (line,) = ax.plot(
                    x, [getattr(study.scores[method, s], metric) for s in points], marker="o", markersize=3, label=method
                )
                if all((method, s) in study.intervals for s in points):
                    bounds = [study.intervals[method, s][METRICS.index(metric)] for s in points]
                    ax.fill_between(x, [b.low for b in bounds], [b.high for b in bounds], color=line.get_color(), alpha=0.2)
            ax.set_xlabel(SHIFT_AXES[shift_family])
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if shift_family == "rotate":
                ax.set_xticks([s.value for s in points][:: max(1, len(points) // 7)])
    axes[0][0].legend(fontsize="small")
    figure.suptitle("Accuracy and calibration under shift")
    return _with_caption(figure, caption(study))


def compute_curves(study):
    """A Figure: NLL, Brier and accuracy against multiply-adds per test example (compute.py: MC
    dropout's passes share the layers before the first noise layer), a line per method family (MC
    dropout over K, ensembles over M), a row per shift value, bars for the intervals."""
    pyplot = load_pyplot()
    rows = picked_shifts(study)
    metrics = (("nll", "NLL (nats)"), ("brier", "Brier"), ("accuracy", "accuracy"))
    figure, axes = pyplot.subplots(len(rows), len(metrics), figsize=(13, 3.2 * len(rows) + 0.8), squeeze=False)
    families = list(dict.fromkeys(family(m) for m in study.methods))
    for row, shift in enumerate(rows):
        for column, (metric, label) in enumerate(metrics):
            ax = axes[row][column]
            for index, name in enumerate(families):
                members = sorted((m for m in study.methods if family(m) == name), key=lambda m: cost(study, m))
                x = [cost(study, m) * (1 + 0.03 * (index - len(families) / 2)) for m in members]  # nudged apart
                y = [getattr(study.scores[m, shift], metric) for m in members]
                errors = None
                if all((m, shift) in study.intervals for m in members):
                    bounds = [study.intervals[m, shift][METRICS.index(metric)] for m in members]
                    errors = [[v - b.low for v, b in zip(y, bounds)], [b.high - v for v, b in zip(y, bounds)]]
                ax.errorbar(x, y, yerr=errors, marker="o" if len(members) > 1 else "s", markersize=4, capsize=2, label=name)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("multiply-adds per example (millions)")
            ax.set_ylabel(f"{label}, {shift.label}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    figure.suptitle("At equal compute: each method against its multiply-adds per test example")
    return _with_caption(figure, caption(study))


def cost(study, method: str) -> float:
    """Millions of multiply-adds per example; forward passes where the study has no count."""
    return study.multiply_adds[method] / 1e6 if method in study.multiply_adds else study.passes.get(method, 1)


def selective_curves(study):
    """A Figure: a row per shift value; accuracy on the examples above a confidence threshold,
    the fraction of examples that is, and accuracy against coverage (most certain first)."""
    pyplot = load_pyplot()
    rows = picked_shifts(study)
    figure, axes = pyplot.subplots(len(rows), 3, figsize=(13, 3.0 * len(rows) + 0.8), squeeze=False)
    for row, shift in enumerate(rows):
        for method in headline(study):
            scores = study.scores[method, shift]
            kept = [(t, a, f) for t, (a, f) in scores.thresholds.items() if a is not None]
            axes[row][0].plot([t for t, _, _ in kept], [a for _, a, _ in kept], marker="o", markersize=3, label=method)
            axes[row][1].plot(list(scores.thresholds), [f for _, f in scores.thresholds.values()], marker="o", markersize=3)
            coverages = sorted(scores.selective)
            axes[row][2].plot(coverages, [scores.selective[c] for c in coverages], marker="o", markersize=3)
        for column, (x, y) in enumerate(
            (
                ("confidence threshold t", "accuracy, confidence >= t"),
                ("confidence threshold t", "fraction with confidence >= t"),
                ("coverage (most certain by entropy)", "selective accuracy"),
            )
        ):
            axes[row][column].set_xlabel(x)
            axes[row][column].set_ylabel(f"{y}\n({shift.label})" if column == 0 else y)
            axes[row][column].grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    figure.suptitle("Selective prediction under shift")
    return _with_caption(figure, caption(study, intervals=False))


def curve_families(study) -> list[str]:
    """The shift families evaluated at two values or more: each gets a row of curves."""
    families = [s.family for s in study.shifts if s.family != "none"]
    return [f for f in dict.fromkeys(families) if families.count(f) > 1]


def _with_caption(figure, text: str):
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.text(0.5, 0.01, text, ha="center", va="bottom", fontsize="small")
    return figure


def write(study, output: Path) -> list[Path]:
    """Draw the figures `study` has data for next to `output`: FIG-reliability.png, FIG-shift.png
    (a shift family at two values or more), FIG-compute.png (methods at several forward passes per
    example), FIG-selective.png; the paths written."""
    path = written_paths(output)
    drawn = {"reliability": reliability(study)}
    if curve_families(study):
        drawn["shift"] = shift_curves(study)
    if len(set(study.passes.values())) > 1:
        drawn["compute"] = compute_curves(study)
    drawn["selective"] = selective_curves(study)
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
