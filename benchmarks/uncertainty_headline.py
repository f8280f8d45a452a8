"""The round-2 study's headline figure: the change in NLL against the deterministic net of the same
runs, over each shift family's intensity, for every method, with seed-level bands (Ovadia et al.
2019's fig. 2, read as a difference so that the seeds' shared offset cancels).

    python -m benchmarks.uncertainty_headline OUT FIG.png NAME [NAME ...]

A line per evaluation and method (each method at its largest K or M, combinations left out); x = 0 is the unshifted test
set (rotate=0). The band is the 95 % two-level bootstrap interval of the paired difference (runs,
then test images; uncertainty/seeds.py), an ensemble paired with the mean of its members' nets.
Needs OUT/NAME-units.pt (written by benchmarks/uncertainty_plan.py, not committed).
"""

import re
import sys
from pathlib import Path

from benchmarks.uncertainty_round2 import Evaluation
from dropcli.cli.display.figure import Style, finish, load_pyplot, panel_columns, panels, save, top_legend
from dropcli.cli.display.uncertainty_plots import family as method_family
from dropcli.uncertainty import seeds

NLL = seeds.UNIT_METRICS.index("nll")
ORIGIN = "rotate=0"
TWO_COLUMNS = 6.75  # inches: the full width of a two-column paper


def representatives(methods: list[str]) -> list[str]:
    """Each method family at its largest K or M; left out: the deterministic net (the reference) and
    the combinations ("ensemble M=10 + temperature"), which the tables have: with them the figure
    held some 16 lines."""
    size = lambda m: int(re.search(r"[KM]=(\d+)", m).group(1)) if re.search(r"[KM]=(\d+)", m) else 0  # noqa: E731
    best: dict[str, str] = {}
    for method in methods:
        family = method_family(method)
        if method != "deterministic" and " + " not in method and (family not in best or size(method) > size(best[family])):
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
    style = Style(width=TWO_COLUMNS)  # the study's headline: the full width of a page
    figure, axes = panels(len(families), style, aspect=0.8, min_width=1.6)
    columns = panel_columns(len(families), style, 1.6)
    # A colour per method and a line style per group of nets, so that "temperature" reads the same
    # in every group (colours by position gave two groups' different methods near-equal shades).
    styles = dict(zip((e.name for e in evaluations), ("-", "--", ":", "-.")))
    palette = load_pyplot(style).get_cmap("tab10").colors
    families_of_methods = list(dict.fromkeys(method_family(m) for e in evaluations for m in representatives(e.methods)))
    colour_of = {family: palette[i % len(palette)] for i, family in enumerate(families_of_methods)}
    for number_of_panel, (ax, family) in enumerate(zip(axes, families)):
        for evaluation in evaluations:
            points = [ORIGIN, *(s for s in evaluation.shifts if s.split("=")[0] == family and s != ORIGIN)]
            x = [float(s.split("=")[1]) for s in points]
            for method in representatives(evaluation.methods):
                found = [paired_difference(evaluation, method, s) for s in points]
                colour = colour_of[method_family(method)]
                line_style = styles.get(evaluation.name, "-")
                label = f"{evaluation.name}: {method}"
                ax.plot(x, [f[0] for f in found], line_style, color=colour, marker="o", markersize=2.5, label=label)
                ax.fill_between(x, [f[1] for f in found], [f[2] for f in found], color=colour, alpha=0.12)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xlabel(f"{family} intensity")
        if number_of_panel % columns == 0:
            ax.set_ylabel("NLL − the net's (nats)")
        ax.grid(alpha=0.3)
    top_legend(figure, *axes[0].get_legend_handles_labels(), style, most_columns=3)
    figure.suptitle("Change in NLL against the deterministic net of the same runs, over shift intensity")
    names = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dotted"}
    lines = ", ".join(f"{names[styles[e.name]]} {e.name}" for e in evaluations)
    caption = (
        f"Colour: the method; line: the nets ({lines}). Each method at its largest K or M; an ensemble against the "
        "mean of its members' nets. x = 0: the test set as it is. Bands: 95 % two-level bootstrap interval (runs, "
        "then test images)."
    )
    finish(figure, caption, style)
    save(figure, path)
    return path


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
