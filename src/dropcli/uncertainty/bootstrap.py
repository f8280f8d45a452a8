"""Bootstrap intervals over test examples for calibration.METRICS (Efron & Tibshirani 1993).

A replicate draws n examples with replacement from the n scored; it is held as each example's
multiplicity, a row of `weights` (replicates, n), so that every mean-type metric of every
replicate is one matrix product. The same weights serve every method and shift of a study: the
replicates are paired, and a difference between two methods can be read off replicate by replicate.
The interval is the percentile interval: the (1 - level) / 2 and (1 + level) / 2 quantiles of the
replicates. With several runs (or ensembles), each replicate's value is the mean over them on the
same resampled examples: the interval is about the test set, and the spread over seeds is separate.
ECE is not a mean over examples: resampling adds noise to each bin's gap, so its replicates are
biased upward, and for a well-calibrated net its interval can sit above the estimate. Read an
ECE interval as the size of its sampling noise, not as a range that must hold the estimate.
"""

from dataclasses import dataclass
from functools import partial

import torch

from dropcli.uncertainty import calibration

SEED = 20261205  # fixed: the same replicates for every method, shift and run
# Replicates scored at a time: (128, n) temporaries are reused by the allocator and stay in cache,
# where (1000, n) ones are fresh pages each time (2x faster on a study's 10,000 images).
CHUNK = 128


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def weights(
    n: int, replicates: int, device: torch.device | str = "cpu", seed: int = SEED, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(replicates, n): how often each example is drawn in each replicate; each row sums to n.

    float32 by default: the counts are exact in it, every replicate's sums come out to about 1e-6
    of their value (far inside any interval's width) and the (replicates, n) arithmetic of a study
    takes half the memory traffic of float64. Pass float64 to check a replicate against a reference.
    """
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, n, (replicates, n), generator=generator)
    counts = torch.zeros(replicates, n, dtype=dtype)
    counts.scatter_add_(1, drawn, torch.ones_like(drawn, dtype=dtype))
    return counts.to(device)


@torch.no_grad()
def per_example(p: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """What calibration.score averages, example by example: (n,) float64 each."""
    p = p.double()
    confidence, predicted = p.max(dim=1)
    true_p = p.gather(1, labels[:, None]).squeeze(1)
    one_hot = torch.nn.functional.one_hot(labels, p.shape[1]).double()
    return {
        "correct": (predicted == labels).double(),
        "nll": -true_p.clamp_min(calibration.PROBABILITY_FLOOR).log(),
        "brier": (p - one_hot).square().sum(dim=1),
        "entropy": calibration.entropy_of(p),
        "confidence": confidence,
    }


@torch.no_grad()
def replicates(parts: list[dict[str, torch.Tensor]], weights_: torch.Tensor, bins: int = calibration.BINS) -> torch.Tensor:
    """(replicates, len(METRICS)): each metric on each replicate, the mean over `parts` (runs,
    each from `per_example`) scored on the same resampled examples."""
    total = torch.zeros(len(weights_), len(calibration.METRICS), dtype=torch.float64, device=weights_.device)
    for part in parts:
        total += in_chunks(partial(_one, part, bins=bins), weights_)
    return total / len(parts)


def in_chunks(function, *weights_: torch.Tensor) -> torch.Tensor:
    """`function(*weights_)` of row-wise arithmetic, called on CHUNK replicates (rows) at a time
    and the results stacked: the numbers of one call, in a fraction of the memory."""
    rows = max(len(w) for w in weights_)
    return torch.cat([function(*(w[start : start + CHUNK] for w in weights_)) for start in range(0, rows, CHUNK)])


@torch.no_grad()
def unit_values(parts: list[dict[str, torch.Tensor]], weights_: torch.Tensor) -> torch.Tensor:
    """(parts, replicates, 3): each part's accuracy, NLL and Brier (seeds.UNIT_METRICS) on each
    replicate, float32 on the CPU, for seeds.py's two-level bootstrap."""
    n = weights_.shape[1]
    out = []
    for part in parts:
        columns = torch.stack([part["correct"], part["nll"], part["brier"]], dim=1).to(weights_)  # (n, 3)
        out.append((weights_ @ columns / n).float().cpu())
    return torch.stack(out)


def _one(part: dict[str, torch.Tensor], w: torch.Tensor, bins: int) -> torch.Tensor:
    n = w.shape[1]
    columns = torch.stack([part["correct"], part["nll"], part["brier"], part["entropy"]], dim=1).to(w)  # (n, 4)
    means = w @ columns / n  # (replicates, 4)
    correct, confidence = part["correct"].to(w), part["confidence"].to(w)
    # Equal-width bins: the per-bin sums of each replicate as one product with the bins' indicator.
    indicator = torch.nn.functional.one_hot(calibration.bin_index(confidence, bins), bins).to(w)  # (n, bins)
    correct_sums, confidence_sums = (
        w @ (indicator * correct[:, None]),
        w @ (indicator * confidence[:, None]),
    )  # (replicates, bins)
    ece = (correct_sums - confidence_sums).abs().sum(dim=1) / n
    debiased = calibration.debiased_ece(w @ indicator, confidence_sums, correct_sums, n)
    # Equal-mass bins: in confidence order, a drawn copy's rank is where it falls in the running
    # count; each example goes to the bin of its copies' middle rank (copies of one example
    # straddle a bin edge only at that edge).
    order = torch.sort(confidence, stable=True).indices
    w_sorted = w[:, order]  # (replicates, n)
    # In place: the (replicates, n) temporaries dominate the cost.
    index = w_sorted.cumsum(dim=1).sub_(w_sorted.add(1).mul_(0.5))  # mean rank of the copies, from 0
    index = index.clamp_(min=0).mul_(bins / n).floor_().clamp_(max=bins - 1).long()
    signed = w_sorted.mul_((correct - confidence)[order])
    adaptive = torch.zeros(len(w), bins, dtype=w.dtype, device=w.device).scatter_add_(1, index, signed).abs().sum(dim=1) / n
    accuracy, nll, brier, entropy = means.unbind(dim=1)
    aurc = calibration.aurc(part["entropy"].to(w), correct, w)
    by_name = {
        "accuracy": accuracy,
        "nll": nll,
        "brier": brier,
        "ece": ece,
        "ece_adaptive": adaptive,
        "entropy": entropy,
        "aurc": aurc,
        "ece_debiased": debiased,
    }
    return torch.stack([by_name[metric] for metric in calibration.METRICS], dim=1)


def intervals(values: torch.Tensor, level: float = 0.95) -> list[Interval]:
    """The percentile interval of each column of `values` (replicates, columns)."""
    quantiles = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=values.dtype, device=values.device)
    low, high = torch.quantile(values, quantiles, dim=0).tolist()
    return [Interval(a, b) for a, b in zip(low, high)]


def interval(values: torch.Tensor, level: float = 0.95) -> Interval:
    """The percentile interval of `values` (replicates,)."""
    return intervals(values[:, None], level)[0]


@torch.no_grad()
def threshold_accuracies(parts: list[dict[str, torch.Tensor]], weights_: torch.Tensor) -> torch.Tensor:
    """(replicates, len(calibration.THRESHOLDS)): accuracy on the examples whose confidence is
    >= t in each replicate, the mean over `parts` (from `per_example`); NaN where a replicate
    keeps no example above t."""
    t = torch.tensor(calibration.THRESHOLDS, dtype=weights_.dtype, device=weights_.device)
    total = torch.zeros(len(weights_), len(t), dtype=weights_.dtype, device=weights_.device)
    for part in parts:
        above = (part["confidence"].to(weights_)[:, None] >= t).to(weights_)  # (n, thresholds)
        kept = weights_ @ above  # (replicates, thresholds)
        total += (weights_ @ (above * part["correct"].to(weights_)[:, None])) / kept
    return total / len(parts)


def nan_intervals(values: torch.Tensor, level: float = 0.95) -> list[Interval | None]:
    """The percentile interval of each column of `values` (replicates, columns) over the
    replicates that are not NaN; None for a column with none."""
    quantiles = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=values.dtype, device=values.device)
    low, high = torch.nanquantile(values, quantiles, dim=0).tolist()
    return [None if a != a else Interval(a, b) for a, b in zip(low, high)]  # a != a: NaN


@torch.no_grad()
def selective_accuracies(parts: list[dict[str, torch.Tensor]], weights_: torch.Tensor) -> torch.Tensor:
    """(replicates, len(calibration.COVERAGES)): selective accuracy at each coverage in each
    replicate, the mean over `parts` (from `per_example`): of the round(c * n) drawn copies with
    the lowest entropy (ties: the earlier example first, as calibration's), the fraction correct."""
    n = weights_.shape[1]
    kept = torch.tensor([max(1, round(c * n)) for c in calibration.COVERAGES], dtype=weights_.dtype, device=weights_.device)
    total = torch.zeros(len(weights_), len(kept), dtype=weights_.dtype, device=weights_.device)
    for part in parts:
        order = torch.sort(part["entropy"], stable=True).indices
        correct = part["correct"].to(weights_)[order]
        total += in_chunks(partial(_selective, order, correct, kept), weights_)
    return total / len(parts)


def _selective(order: torch.Tensor, correct: torch.Tensor, kept: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(replicates, coverages) selective accuracies of one part: `order` ranks its examples most
    certain first, `correct` (n,) is in that order, `kept` the copies each coverage keeps."""
    n = w.shape[1]
    w = w[:, order]
    copies = w.cumsum(dim=1)  # copies up to and including each example
    hits = w.mul_(correct).cumsum(dim=1)
    # The example whose copies reach the k-th: the first where the running count is >= k; of its
    # copies, those past k are left out (all right or all wrong, as the example is).
    last = torch.searchsorted(copies, kept.expand(len(copies), -1).contiguous()).clamp_(max=n - 1)
    return (hits.gather(1, last) - (copies.gather(1, last) - kept) * correct[last]) / kept
