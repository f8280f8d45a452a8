"""Out-of-distribution detection in a study: every method's scores (ood.py) on the in-distribution
test images and on each out-of-distribution set, measured by AUROC, AUPR and FPR@95, each with a
bootstrap interval (in- and out-of-distribution images resampled separately) and the spread over
runs (or ensembles)."""

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

from dropcli.uncertainty import bootstrap, ood
from dropcli.uncertainty import lineup as lineup_module


@dataclass(frozen=True)
class Detection:
    """How well one score of one method tells one out-of-distribution set from the in-distribution
    images: per measure (ood.MEASURES), the mean over runs (or ensembles), its bootstrap interval,
    and the spread (std) over them."""

    auroc: float
    aupr: float
    auroc_interval: bootstrap.Interval | None
    aupr_interval: bootstrap.Interval | None
    auroc_spread: float | None
    aupr_spread: float | None
    fpr95: float = float("nan")
    fpr95_interval: bootstrap.Interval | None = None
    fpr95_spread: float | None = None
    per_run: list[list[float]] = field(default_factory=list)  # per run (or ensemble): the measures


def detect(study, lineup, inside, label: str, outside_X: torch.Tensor, fitted, replicates: int) -> None:
    """Score every method of `study` on `outside_X` against `inside` (all_outputs on the
    in-distribution images, computed once for every set) into study.ood[label, method, score]."""
    outside, _ = lineup_module.all_outputs(lineup, study.members, outside_X, fitted)
    n_in = len(next(iter(inside.values()))[0][0])
    device = outside_X.device
    w_in = bootstrap.weights(n_in, replicates, device) if replicates else None
    w_out = bootstrap.weights(len(outside_X), replicates, device, seed=bootstrap.SEED + 1) if replicates else None
    for method in study.methods:
        per_score: dict[str, list[tuple[torch.Tensor, torch.Tensor | None]]] = {}
        for (p_in, h_in), (p_out, h_out) in zip(inside[method], outside[method]):
            scores_in, scores_out = ood.scores(p_in, h_in), ood.scores(p_out, h_out)
            for name in scores_in:
                point = ood.measures(scores_in[name], scores_out[name])[0]
                resampled = (
                    bootstrap.in_chunks(partial(ood.measures, scores_in[name], scores_out[name]), w_in, w_out)
                    if replicates
                    else None
                )
                per_score.setdefault(name, []).append((point, resampled))
        for name, parts in per_score.items():
            points = torch.stack([point for point, _ in parts])  # (parts, measures)
            bounds = [None] * len(ood.MEASURES)
            if replicates:
                bounds = bootstrap.intervals(torch.stack([r for _, r in parts]).mean(dim=0), study.level)
            spread = points.std(dim=0).tolist() if len(parts) > 1 else [None] * len(ood.MEASURES)
            mean = points.mean(dim=0).tolist()
            study.ood[label, method, name] = Detection(
                mean[0], mean[1], bounds[0], bounds[1], spread[0], spread[1], mean[2], bounds[2], spread[2], points.tolist()
            )


def to_json(detection: Detection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for measure in ood.MEASURES:
        interval = getattr(detection, f"{measure}_interval")
        out[measure] = getattr(detection, measure)
        out[f"{measure}_interval"] = [interval.low, interval.high] if interval is not None else None
        out[f"{measure}_spread"] = getattr(detection, f"{measure}_spread")
    out["per_run"] = [dict(zip(ood.MEASURES, values)) for values in detection.per_run] if len(detection.per_run) > 1 else None
    return out
