"""The round-2 study's headline figure: the change in NLL against the deterministic net of the same
runs, over each shift family's intensity, for every method, with seed-level bands (Ovadia et al.
2019's fig. 2, read as a difference so that the seeds' shared offset cancels).

    python -m benchmarks.uncertainty_headline OUT FIG.png NAME [NAME ...]

A line per evaluation and method (each method at its largest K or M); x = 0 is the unshifted test
set (rotate=0). The band is the 95 % two-level bootstrap interval of the paired difference (runs,
then test images; uncertainty/seeds.py), an ensemble paired with the mean of its members' nets.
Needs OUT/NAME-units.pt (written by benchmarks/uncertainty_plan.py, not committed).
"""

import math
import re
import sys
from pathlib import Path

from benchmarks.uncertainty_round2 import Evaluation
from dropcli.cli.display.figure import load_pyplot, save
from dropcli.uncertainty import seeds

NLL = seeds.UNIT_METRICS.index("nll")
ORIGIN = "rotate=0"


def representatives(methods: list[str]) -> list[str]:
    """Each method family at its largest K or M, the deterministic net (the reference) left out."""
    size = lambda m: int(re.search(r"[KM]=(\d+)", m).group(1)) if re.search(r"[KM]=(\d+)", m) else 0  # noqa: E731
    best: dict[str, str] = {}
    for method in methods:
        family = re.sub(r" [KM]=\d+", "", method)
        if method != "deterministic" and (family not in best or size(method) > size(best[family])):
            best[family] = method
    return list(best.values())


def paired_difference(evaluation: Evaluation, method: str, shift: str) -> tuple[float, float, float]:
    """(estimate, low, high) of method - deterministic in NLL, paired on the same runs."""
    units, reference = evaluation.units[f"{method}|{shift}"].double(), evaluation.units[f"deterministic|{shift}"].double()
    point, base = evaluation.point(method, shift, "nll"), evaluation.point("deterministic", shift, "nll")
    if len(units) != len(reference):  # an ensemble: against the mean of its members' nets
        size = len(reference) // len(units)
        reference, base = seeds.grouped(reference, size), base[: len(units) * size].view(-1, size).mean(dim=1)
    drawn = seeds.draws(len(units), units.shape[1])
    difference = seeds.two_level(units, drawn)[:, NLL] - seeds.two_level(reference, drawn)[:, NLL]
    low, high = seeds.interval(difference)
    return float(point.mean() - base.mean()), low, high


def draw(out: Path, path: Path, names: list[str]) -> Path | None:
    evaluations = [Evaluation(out, n) for n in names if (out / f"{n}.json").is_file() and (out / f"{n}-units.pt").is_file()]
    evaluations = [e for e in evaluations if ORIGIN in e.shifts]
    families = list(dict.fromkeys(s.split("=")[0] for e in evaluations for s in e.shifts if s != "no shift"))
    if not evaluations or not families:
        return None
    pyplot = load_pyplot()
    columns = min(4, len(families))
    rows = math.ceil(len(families) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows + 0.6), squeeze=False)
    styles = dict(zip((e.name for e in evaluations), ("-", "--", ":", "-.")))
    colours = pyplot.get_cmap("tab20").colors
    for ax, family in zip(axes.flat, families):
        for number, evaluation in enumerate(evaluations):
            points = [ORIGIN, *(s for s in evaluation.shifts if s.split("=")[0] == family and s != ORIGIN)]
            x = [float(s.split("=")[1]) for s in points]
            for index, method in enumerate(representatives(evaluation.methods)):
                found = [paired_difference(evaluation, method, s) for s in points]
                colour = colours[(3 * number + index) % len(colours)]
                label = f"{evaluation.name}: {method}"
                ax.plot(
                    x,
                    [f[0] for f in found],
                    styles.get(evaluation.name, "-"),
                    color=colour,
                    marker="o",
                    markersize=3,
                    label=label,
                )
                ax.fill_between(x, [f[1] for f in found], [f[2] for f in found], color=colour, alpha=0.12)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xlabel(f"{family} intensity")
        ax.set_ylabel("NLL − deterministic net's (nats)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(families) :]:
        ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    # Below the panels (the saved figure's tight box takes it in): inside, it would hide the x labels.
    figure.legend(handles, labels, loc="upper center", ncol=4, fontsize="x-small", bbox_to_anchor=(0.5, 0.0))
    figure.suptitle(
        "Change in NLL against the deterministic net of the same runs; bands: 95 % two-level bootstrap (runs, then images)"
    )
    save(figure, path)
    return path


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
