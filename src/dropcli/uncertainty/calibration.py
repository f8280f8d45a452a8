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
- entropy: the mean predictive entropy -sum_c p_c log p_c, in nats (0 log 0 = 0);
- selective accuracy at coverage c: keep the fraction c of examples with the lowest
  predictive entropy (ties: the earlier example first), score accuracy on those alone.
"""

from dataclasses import dataclass

import torch

BINS = 15
COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
PROBABILITY_FLOOR = 1e-12
METRICS = ("accuracy", "nll", "brier", "ece", "entropy")


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
    entropy: float
    selective: dict[float, float]  # coverage -> accuracy on the kept examples
    bins: list[Bin]


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
    selective = _selective(correct, entropy, coverages)
    # One transfer to the host for everything.
    head = torch.stack([correct.mean(), nll.mean(), brier.mean(), gaps, entropy.mean()]).tolist()
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
    return Scores(*head, selective=dict(zip(coverages, selective.tolist())), bins=reliability)


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
    pooled = []
    for parts in zip(*(s.bins for s in scores)):
        count = sum(b.count for b in parts)
        confidence = sum(b.confidence * b.count for b in parts if b.count) / count if count else None
        accuracy = sum(b.accuracy * b.count for b in parts if b.count) / count if count else None
        pooled.append(Bin(parts[0].lower, parts[0].upper, count, confidence, accuracy))
    return Scores(*head, selective=selective, bins=pooled)
