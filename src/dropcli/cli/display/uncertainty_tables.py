"""Rich tables of evaluate's uncertainty study (study.py): a table per metric, method x shift."""

from rich.table import Table

from dropcli.runtime import count_text
from dropcli.uncertainty.calibration import METRICS

# Column heading and one-line definition of each metric (also in --help and docs/uncertainty.md).
METRIC_TITLES = {
    "accuracy": ("accuracy", "fraction of examples whose most probable class is right; higher is better"),
    "nll": ("NLL", "mean -log p(true class), nats; lower is better"),
    "brier": ("Brier", "squared error of p against the one-hot label, summed over classes, mean over examples; lower is better"),
    "ece": (
        "ECE",
        "15 equal-width bins of top-label confidence, mean |accuracy - confidence| weighted by bin size; lower is better",
    ),
    "entropy": ("entropy", "mean predictive entropy, nats"),
}


def header(study) -> str:
    """One line: what was scored, on what."""
    members = study.members
    first = members[0]
    runs = (
        str(first.checkpoint)
        if len(members) == 1
        else f"{len(members)} runs (seeds {', '.join(str(m.config.seed) for m in members)})"
    )
    parts = [
        f"{runs}: {first.config.model.kind}, {count_text(first.epoch, 'epoch')}; {len(study.labels):,} {study.split} images of {study.source}"
    ]
    if study.mc_samples:
        parts.append(f"MC dropout with {study.mc_samples} passes")
    if study.temperatures is not None:
        parts.append(
            "temperature " + ", ".join(f"{t:.3f}" for t in study.temperatures) + " (fitted on each run's validation split)"
        )
    if len(members) > 1:
        parts.append("single-model rows: mean over the runs")
    return "; ".join(parts)


def tables(study) -> list:
    """The header, the metric tables and the selective-prediction table."""
    parts: list = [header(study)]
    if len(study.shifts) == 1:
        parts.append(_methods_by_metric(study, study.shifts[0]))
    else:
        parts += [_metric_by_shift(study, metric) for metric in METRICS]
    parts.append(_selective(study, study.shifts[0]))
    return parts


def _methods_by_metric(study, shift) -> Table:
    table = Table(title=f"calibration on {study.split} ({shift.label})", header_style="bold")
    table.add_column("method", no_wrap=True)
    for metric in METRICS:
        table.add_column(METRIC_TITLES[metric][0], justify="right")
    for method in study.methods:
        scores = study.scores[method, shift]
        table.add_row(method, *(f"{getattr(scores, metric):.4f}" for metric in METRICS))
    return table


def _metric_by_shift(study, metric: str) -> Table:
    # A row per shift value, a column per method: 13 angles would not fit across a terminal.
    title, meaning = METRIC_TITLES[metric]
    table = Table(title=f"{title} ({meaning})", header_style="bold")
    table.add_column("shift", no_wrap=True)
    for method in study.methods:
        table.add_column(method, justify="right")
    for shift in study.shifts:
        table.add_row(shift.label, *(f"{getattr(study.scores[method, shift], metric):.4f}" for method in study.methods))
    return table


def _selective(study, shift) -> Table:
    coverages = list(study.scores[study.methods[0], shift].selective)
    table = Table(
        title=f"selective prediction ({shift.label}): accuracy on the most certain examples (lowest predictive entropy), by coverage",
        header_style="bold",
    )
    table.add_column("method", no_wrap=True)
    for coverage in coverages:
        table.add_column(f"{coverage:.0%}", justify="right")
    for method in study.methods:
        table.add_row(method, *(f"{study.scores[method, shift].selective[c]:.4f}" for c in coverages))
    return table
