"""Rich tables of evaluate's uncertainty study (study.py): a table per metric, method x shift."""

from dropcli.cli.display.fit import Column, Fitted
from dropcli.runtime import count_text, seeds_text
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
    "ece_adaptive": (
        "adaptive ECE",
        "15 equal-mass bins of top-label confidence, mean |accuracy - confidence| weighted by bin size; lower is better",
    ),
    "entropy": ("entropy", "mean predictive entropy, nats"),
}
# The terminal's metric tables: what fits 80 columns. AURC heads the selective-prediction table;
# the debiased ECE is in --json (and the study's CSV).
TABLE_METRICS = tuple(METRIC_TITLES)
OOD_MEASURES = (("auroc", "AUROC"), ("aupr", "AUPR"), ("fpr95", "FPR@95"))
OOD_SCORES = {"max probability": "1 - max p", "entropy": "entropy", "mutual information": "MI"}


def header(study) -> str:
    """One line: what was scored, on what."""
    members = study.members
    first = members[0]
    runs = str(first.checkpoint) if len(members) == 1 else f"{len(members)} runs ({seeds_text([m.config.seed for m in members])})"
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
        parts.append("single-model rows: mean over the runs (ensemble rows: over disjoint ensembles)")
    if study.replicates:
        parts.append(f"± half the {study.level:.0%} bootstrap interval over test examples ({study.replicates} resamples)")
    return "; ".join(parts + study.notes)


def tables(study) -> list:
    """The header, the metric tables, the selective-prediction table and out-of-distribution detection."""
    parts: list = [header(study)]
    if len(study.shifts) == 1 or study.intervals or len(study.methods) > 5:
        parts += [_methods_by_metric(study, shift) for shift in study.shifts]
    else:
        parts += [_metric_by_shift(study, metric) for metric in TABLE_METRICS]
    parts.append(_selective(study, study.shifts[0]))
    parts += [_detection(study, source) for source in study.ood_sources]
    return parts


def cell(study, method, shift, metric: str) -> str:
    """The metric's value, and under it ± half its bootstrap interval when there is one."""
    value = f"{getattr(study.scores[method, shift], metric):.4f}"
    if (method, shift) not in study.intervals:
        return value
    return f"{value}\n±{study.intervals[method, shift][METRICS.index(metric)].half_width:.4f}"


def _methods_by_metric(study, shift) -> Fitted:
    # The passes go under the method's name: a column of their own would not fit 80 columns.
    names = []
    for method in study.methods:
        passes = study.passes.get(method, 1)
        names.append(f"{method}\n({passes} pass{'es' if passes > 1 else ''})")
    columns = [Column("method (forward passes)", names, justify="left", keep=True, prose=True)]
    for metric in TABLE_METRICS:
        columns.append(Column(METRIC_TITLES[metric][0], [cell(study, m, shift, metric) for m in study.methods]))
    return Fitted(columns, title=f"calibration on {study.split} ({shift.label})")


def _detection(study, source: str) -> Fitted:
    scores = list(dict.fromkeys(score for found, _, score in study.ood if found == source))
    title = (
        f"out-of-distribution detection: {study.split} images against {source}, by each score "
        "(1 - max p; entropy; MI, mutual information: entropy minus the mean entropy of the passes or members); AUROC and "
        "AUPR: higher is better; FPR@95, in-distribution images flagged where 95 % of the others are: lower is better; "
        "mean over runs" + (f", ± half the {study.level:.0%} bootstrap interval" if study.replicates else "")
    )
    columns = [Column("method", list(study.methods), justify="left", keep=True, prose=True)]  # wraps between words
    for score in scores:
        for key, title_of_measure in OOD_MEASURES:
            texts = []
            for method in study.methods:
                found = study.ood.get((source, method, score))
                interval = getattr(found, f"{key}_interval") if found else None
                texts.append(
                    "" if found is None else f"{getattr(found, key):.4f}" + (f"\n±{interval.half_width:.4f}" if interval else "")
                )
            columns.append(Column(f"{title_of_measure} {OOD_SCORES[score]}", texts))
    return Fitted(columns, title=title)


def _metric_by_shift(study, metric: str) -> Fitted:
    # A row per shift value, a column per method: 13 angles would not fit across a terminal.
    title, meaning = METRIC_TITLES[metric]
    columns = [Column("shift", [shift.label for shift in study.shifts], justify="left", keep=True)]
    for method in study.methods:
        columns.append(Column(method, [cell(study, method, shift, metric) for shift in study.shifts]))
    return Fitted(columns, title=f"{title} ({meaning})")


def _selective(study, shift) -> Fitted:
    coverages = list(study.scores[study.methods[0], shift].selective)
    columns = [Column("method", list(study.methods), justify="left", keep=True, prose=True)]  # wraps between words
    for coverage in coverages:
        values = [f"{study.scores[method, shift].selective[coverage]:.4f}" for method in study.methods]
        columns.append(Column(f"{coverage:.0%}", values, keep=coverage == 1))
    columns.append(Column("AURC", [cell(study, method, shift, "aurc") for method in study.methods], keep=True))
    return Fitted(
        columns,
        title=f"selective prediction ({shift.label}): accuracy on the most certain examples (lowest predictive entropy), by coverage; "
        "AURC, the error rate of the most certain examples averaged over every coverage (lower is better)",
    )
