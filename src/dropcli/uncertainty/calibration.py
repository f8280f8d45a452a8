"""Scores of predicted class probabilities: accuracy, NLL, Brier, ECE, entropy, and more.

Everything is computed from `(probabilities, labels)` on their device in one pass, and read
back to the host once. The definitions (also in docs/uncertainty.md):

- accuracy: the fraction of examples whose most probable class is the label;
- NLL: the mean of -log p(label), with p floored at `PROBABILITY_FLOOR` so that one certain
  mistake costs 27.6 nats instead of infinity;
- Brier: the squared distance between p and the one-hot label, summed over the classes and
  averaged over the examples (0 is perfect, 2 the worst);
- ECE (Guo et al. 2017): the top-label confidence max_c p_c falls in one of `BINS` equal-width
  bins ((0, 1/15], (1/15, 2/15], ..., a value on an edge goes to the lower bin); ECE is the
  mean over examples of |accuracy of the bin - mean confidence of the bin|, i.e. the bins'
  gaps weighted by their share of examples. Empty bins weigh nothing;
- adaptive ECE (equal-mass bins, Nixon et al. 2019): the examples sorted by confidence (ties:
  the earlier example first) and cut into `BINS` bins of equal count (example of rank r, from
  0, goes to bin floor(r * BINS / n)); then the same weighted mean of |accuracy - confidence|.
  Equal-width bins leave the low-confidence bins nearly empty for an accurate net; equal-mass
  bins spend their resolution where the examples are;
- entropy: the mean predictive entropy -sum_c p_c log p_c, in nats (0 log 0 = 0);
- selective accuracy at coverage c: keep the fraction c of examples with the lowest
  predictive entropy (ties: the earlier example first), score accuracy on those alone;
- accuracy above a confidence threshold t: accuracy on the examples with max_c p_c >= t, and
  the fraction of examples that is (Ovadia et al. 2019, fig. 3's "accuracy vs confidence");
- AURC (Geifman et al. 2019): the area under the risk-coverage curve of selective prediction by
  predictive entropy, (1/n) sum over k = 1..n of the error rate of the k most certain examples;
  examples of equal entropy count in a random order, in expectation (so ties, such as many
  predictions of probability 1, cannot favour any example); 0 best, the error rate of a
  random ranking about the error rate itself;
- debiased ECE: the l2 calibration error over the same equal-width bins with each bin's
  squared gap debiased (Kumar et al. 2019): sqrt(max(0, sum_b (n_b / n) [(acc_b - conf_b)^2
  - acc_b (1 - acc_b) / (n_b - 1)])). The plug-in gap is inflated by the binomial noise of a
  bin's accuracy; this removes that noise's expected square, so a calibrated net scores near
  0 however few its examples. It is an l2 quantity: compare it with itself, not with ECE.
"""

from dataclasses import dataclass, field

import torch

BINS = 15
COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
PROBABILITY_FLOOR = 1e-12
METRICS = ("accuracy", "nll", "brier", "ece", "ece_adaptive", "entropy", "aurc", "ece_debiased")


@dataclass(frozen=True)
class Bin:
    """One bin of the reliability diagram, (lower, upper]."""

    lower: float
    upper: float
    count: int
    confidence: float | None  # mean top-label confidence; None for an empty bin
    accuracy: float | None


@dataclass(frozen=True)
class Scores:
    accuracy: float
    nll: float
    brier: float
    ece: float
    ece_adaptive: float
    entropy: float
    aurc: float
    ece_debiased: float
    selective: dict[float, float]  # coverage -> accuracy on the kept examples
    bins: list[Bin]
    # threshold t -> (accuracy on the examples with confidence >= t or None when there are none, their fraction)
    thresholds: dict[float, tuple[float | None, float]] = field(default_factory=dict)


@torch.no_grad()
def score(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS, coverages=COVERAGES) -> Scores:
    """Every score of `probabilities` (n, classes), rows summing to 1, against `labels` (n,)."""
    p = probabilities.double()  # sums of 10,000 terms: float64 keeps the last digits honest
    n, classes = p.shape
    confidence, predicted = p.max(dim=1)  # (n,)
    correct = (predicted == labels).double()  # (n,)
    true_p = p.gather(1, labels[:, None]).squeeze(1)  # (n,)
    nll = -true_p.clamp_min(PROBABILITY_FLOOR).log()
    one_hot = torch.nn.functional.one_hot(labels, classes).double()
    brier = (p - one_hot).square().sum(dim=1)
    entropy = entropy_of(p)
    counts, confidence_sums, correct_sums = _binned(confidence, correct, bins)
    gaps = (correct_sums - confidence_sums).abs().sum() / n
    adaptive = adaptive_ece(confidence, correct, bins)
    selective = _selective(correct, entropy, coverages)
    above = confidence[None, :] >= torch.tensor(THRESHOLDS, dtype=p.dtype, device=p.device)[:, None]  # (thresholds, n)
    kept = above.sum(dim=1)
    hits = (above * correct).sum(dim=1)
    # One transfer to the host for everything.
    ones = torch.ones(1, n, dtype=p.dtype, device=p.device)
    aurc_ = aurc(entropy, correct, ones)[0]
    debiased = debiased_ece(counts[None].double(), confidence_sums[None], correct_sums[None], n)[0]
    head = torch.stack([correct.mean(), nll.mean(), brier.mean(), gaps, adaptive, entropy.mean(), aurc_, debiased]).tolist()
    kept, hits = kept.tolist(), hits.tolist()
    thresholds = {t: (hits[i] / kept[i] if kept[i] else None, kept[i] / n) for i, t in enumerate(THRESHOLDS)}
    counts, confidence_sums, correct_sums = counts.tolist(), confidence_sums.tolist(), correct_sums.tolist()
    edges = [index / bins for index in range(bins + 1)]
    reliability = [
        Bin(
            edges[b],
            edges[b + 1],
            int(counts[b]),
            confidence_sums[b] / counts[b] if counts[b] else None,
            correct_sums[b] / counts[b] if counts[b] else None,
        )
        for b in range(bins)
    ]
    return Scores(*head, selective=dict(zip(coverages, selective.tolist())), bins=reliability, thresholds=thresholds)


def adaptive_ece(confidence: torch.Tensor, correct: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """ECE over `bins` equal-mass bins of the examples sorted by `confidence` (n,); `correct` (n,) is 0 or 1."""
    n = len(confidence)
    order = torch.sort(confidence, stable=True).indices
    index = torch.arange(n, device=confidence.device) * bins // n  # (n,): the bin of each rank
    gaps = torch.bincount(index, correct[order], minlength=bins) - torch.bincount(index, confidence[order], minlength=bins)
    return gaps.abs().sum() / n


def aurc(entropy: torch.Tensor, correct: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(replicates,) AURC of examples ranked by `entropy` (n,), lowest first, `correct` (n,) 0 or 1,
    each example counted `weights` (replicates, n) times.

    Examples of one entropy form a group; within a group the order is random, so the expected
    errors among its first j are the errors before it plus j times its error rate r. The group's
    terms, sum over j = 1..m of (E + j r) / (B + j) with B examples and E errors before it, are
    (E - r B)(H(B + m) - H(B)) + r m, H the harmonic numbers: digamma differences.
    """
    values, group = torch.unique(entropy, return_inverse=True)  # ascending: the most certain first
    w = weights if weights.is_floating_point() else weights.double()
    wrong = 1 - correct.to(w)
    # In place where it can be: each (replicates, groups) temporary costs as much as the arithmetic.
    if len(values) == len(entropy):  # no ties: a group per example, its error rate its own
        order = torch.empty_like(group)
        order[group] = torch.arange(len(group), device=group.device)
        m, rate = w[:, order], wrong[order]  # (replicates, n), (n,)
        e = m * rate
    else:
        m = torch.zeros(len(w), len(values), dtype=w.dtype, device=w.device).index_add_(1, group, w)  # (replicates, groups)
        e = torch.zeros_like(m).index_add_(1, group, w * wrong)
        rate = e / m.clamp_min(1)  # any value where m = 0: that group's terms are 0
    errors = e.sum(dim=1)  # the sum over groups of r m
    before = m.cumsum(dim=1).sub_(m)
    terms = e.cumsum(dim=1).sub_(e).sub_(before * rate)  # E - r B
    del e
    harmonic = torch.add(before, m).add_(1).digamma_().sub_(before.add_(1).digamma_())
    return (terms.mul_(harmonic).sum(dim=1) + errors) / w.sum(dim=1)


def debiased_ece(counts: torch.Tensor, confidence_sums: torch.Tensor, correct_sums: torch.Tensor, n) -> torch.Tensor:
    """(replicates,) the debiased l2 ECE from each replicate's per-bin counts and sums (replicates, bins)."""
    filled = counts > 0
    accuracy = torch.where(filled, correct_sums / counts.clamp_min(1), 0)
    confidence = torch.where(filled, confidence_sums / counts.clamp_min(1), 0)
    # A bin of one example has accuracy 0 or 1: no binomial noise to remove (and no n_b - 1 to divide by).
    noise = torch.where(counts > 1, accuracy * (1 - accuracy) / (counts - 1).clamp_min(1), 0)
    squared = (counts / n * ((accuracy - confidence).square() - noise)).sum(dim=1)
    return squared.clamp_min(0).sqrt()


def entropy_of(p: torch.Tensor) -> torch.Tensor:
    """Predictive entropy in nats of each row of `p` (n, classes); 0 log 0 counts as 0."""
    return -torch.where(p > 0, p * p.clamp_min(torch.finfo(p.dtype).tiny).log(), torch.zeros_like(p)).sum(dim=1)


def bin_index(confidence: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """The bin of each confidence: b such that b/bins < confidence <= (b+1)/bins."""
    inner_edges = torch.arange(1, bins, dtype=confidence.dtype, device=confidence.device) / bins
    return torch.bucketize(confidence, inner_edges, right=False)


def _binned(confidence: torch.Tensor, correct: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    index = bin_index(confidence, bins)  # (n,)
    counts = torch.bincount(index, minlength=bins)
    return counts, torch.bincount(index, confidence, minlength=bins), torch.bincount(index, correct, minlength=bins)


def _selective(correct: torch.Tensor, entropy: torch.Tensor, coverages) -> torch.Tensor:
    order = torch.sort(entropy, stable=True).indices
    hits = correct[order].cumsum(0)  # hits among the k most certain examples
    kept = torch.tensor([max(1, round(c * len(correct))) for c in coverages], device=correct.device)
    return hits[kept - 1] / kept


def mean(scores: list[Scores]) -> Scores:
    """The scores of several models of one method as one: each number averaged over the models,
    the reliability bins pooled (counts added, confidence and accuracy weighted by counts)."""
    if len(scores) == 1:
        return scores[0]
    head = [sum(getattr(s, metric) for s in scores) / len(scores) for metric in METRICS]
    selective = {c: sum(s.selective[c] for s in scores) / len(scores) for c in scores[0].selective}
    thresholds = {}
    for t in scores[0].thresholds:
        kept = [s.thresholds[t] for s in scores if s.thresholds[t][0] is not None]
        accuracy = sum(a for a, _ in kept) / len(kept) if kept else None
        thresholds[t] = (accuracy, sum(s.thresholds[t][1] for s in scores) / len(scores))
    pooled = []
    for parts in zip(*(s.bins for s in scores)):
        count = sum(b.count for b in parts)
        confidence = sum(b.confidence * b.count for b in parts if b.count) / count if count else None
        accuracy = sum(b.accuracy * b.count for b in parts if b.count) / count if count else None
        pooled.append(Bin(parts[0].lower, parts[0].upper, count, confidence, accuracy))
    return Scores(*head, selective=selective, bins=pooled, thresholds=thresholds)


def pooled_ece(bins: list[Bin]) -> float:
    """The ECE of (possibly pooled) reliability bins: what a pooled reliability diagram shows."""
    total = sum(b.count for b in bins)
    return sum(b.count * abs(b.accuracy - b.confidence) for b in bins if b.count) / total
