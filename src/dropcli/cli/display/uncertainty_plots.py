"""evaluate's figures (needs matplotlib: dropcli[plot]): a reliability diagram per method, and
accuracy, ECE and NLL against the size of each shift, a line per method (Ovadia et al. 2019, fig. 1)."""

from pathlib import Path

from dropcli.cli.display.figure import load_pyplot, save
from dropcli.errors import DropcliError
from dropcli.files import check_writable
from dropcli.runtime import count_text
from dropcli.uncertainty.methods import DETERMINISTIC, MC_DROPOUT, TEMPERATURE

SHIFT_AXES = {
    "rotate": "rotation angle (degrees)",
    "translate": "translation (pixels)",
    "noise": "Gaussian noise std (pixel intensity, [0, 1] scale)",
}
SINGLE_MODEL = (DETERMINISTIC, TEMPERATURE, MC_DROPOUT)
CURVES = (("accuracy", "accuracy"), ("ece", "ECE (15 bins)"), ("nll", "NLL (nats)"))


def paths(output: Path) -> tuple[Path, Path]:
    """The two files `-o FIG.png` names: FIG-reliability.png and FIG-shift.png."""
    return output.with_name(f"{output.stem}-reliability.png"), output.with_name(f"{output.stem}-shift.png")


def caption(study) -> str:
    members = study.members
    first = members[0]
    run = first.checkpoint.parent.parent
    name = run.parent.name if len(members) > 1 else run.name
    seeds = ", ".join(str(m.config.seed) for m in members)
    mc = f"; MC dropout K = {study.mc_samples}" if study.mc_samples else ""
    return (
        f"{name}: {first.config.model.kind} MLP, dropout {'/'.join(f'{p:g}' for p in first.config.model.dropout)}, "
        f"{count_text(first.epoch, 'epoch')}, seed{'s' if len(members) > 1 else ''} {seeds}; Fashion-MNIST {study.split}, {len(study.labels):,} images{mc}"
    )


def reliability(study):
    """A Figure: per method, accuracy against confidence per bin (with the gap to the diagonal)
    above, the number of examples per bin below; on the first shift evaluated."""
    pyplot = load_pyplot()
    shift = study.shifts[0]
    count = len(study.methods)
    figure, axes = pyplot.subplots(
        2,
        count,
        figsize=(3.2 * count + 0.6, 5.6),
        sharex=True,
        sharey="row",
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    for column, method in enumerate(study.methods):
        scores = study.scores[method, shift]
        top, bottom = axes[0][column], axes[1][column]
        filled = [b for b in scores.bins if b.count]
        width = [b.upper - b.lower for b in filled]
        top.bar(
            [b.lower for b in filled],
            [b.accuracy for b in filled],
            width=width,
            align="edge",
            color="tab:blue",
            edgecolor="black",
            linewidth=0.5,
            label="accuracy",
        )
        gaps = [b.confidence - b.accuracy for b in filled]
        top.bar(
            [b.lower for b in filled],
            gaps,
            bottom=[b.accuracy for b in filled],
            width=width,
            align="edge",
            fill=False,
            hatch="///",
            edgecolor="tab:red",
            linewidth=0.5,
            label="gap to mean confidence",
        )
        top.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
        pooled = f" ({len(study.members)} runs pooled)" if len(study.members) > 1 and method in SINGLE_MODEL else ""
        top.set_title(f"{method}{pooled}\nECE {scores.ece:.3f}, accuracy {scores.accuracy:.3f}", fontsize="medium")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        bottom.bar(
            [b.lower for b in filled],
            [b.count for b in filled],
            width=width,
            align="edge",
            color="gray",
            edgecolor="black",
            linewidth=0.5,
        )
        bottom.set_yscale("log")
        bottom.set_xlabel("confidence (top-label probability)")
        if column == 0:
            top.set_ylabel("accuracy in bin")
            bottom.set_ylabel("examples in bin")
            top.legend(fontsize="small", loc="upper left")
    figure.suptitle(f"Reliability diagrams, {study.split} set ({shift.label})")
    return _with_caption(figure, caption(study))


def shift_curves(study):
    """A Figure: accuracy, ECE and NLL against each shift family's values, a line per method."""
    pyplot = load_pyplot()
    families = curve_families(study)
    figure, axes = pyplot.subplots(len(families), len(CURVES), figsize=(13, 3.6 * len(families) + 0.6), squeeze=False)
    for row, family in enumerate(families):
        points = [s for s in study.shifts if s.family == family]
        for column, (metric, label) in enumerate(CURVES):
            ax = axes[row][column]
            for method in study.methods:
                ax.plot(
                    [s.value for s in points],
                    [getattr(study.scores[method, s], metric) for s in points],
                    marker="o",
                    markersize=3,
                    label=method,
                )
            ax.set_xlabel(SHIFT_AXES[family])
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if family == "rotate":
                ax.set_xticks([s.value for s in points][:: max(1, len(points) // 7)])
    axes[0][0].legend(fontsize="small")
    figure.suptitle("Accuracy and calibration under shift")
    return _with_caption(figure, caption(study))


def curve_families(study) -> list[str]:
    """The shift families evaluated at two values or more: each gets a row of curves."""
    families = [s.family for s in study.shifts if s.family != "none"]
    return [family for family in dict.fromkeys(families) if families.count(family) > 1]


def _with_caption(figure, text: str):
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.text(0.5, 0.01, text, ha="center", va="bottom", fontsize="small")
    return figure


def write(study, output: Path) -> list[Path]:
    """Draw the figures `study` has data for next to `output`; the paths written."""
    reliability_path, shift_path = paths(output)
    save(reliability(study), reliability_path)
    written = [reliability_path]
    if curve_families(study):
        save(shift_curves(study), shift_path)
        written.append(shift_path)
    return written


def check_output(output: Path) -> None:
    """Refuse, before any work, a figure name that could not be written, or a missing matplotlib."""
    if output.suffix != ".png":
        raise DropcliError(f"-o {output}: name a .png file, e.g. -o calibration.png")
    for path in paths(output):  # the files -o names: FIG-reliability.png and FIG-shift.png
        check_writable(path, "-o")
    load_pyplot()
