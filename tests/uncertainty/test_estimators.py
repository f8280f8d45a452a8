"""AURC and the debiased ECE against references written out example by example."""

import itertools
import math

import numpy as np
import pytest
import torch

from dropcli.uncertainty import bootstrap, calibration


def aurc_reference(entropy: np.ndarray, correct: np.ndarray) -> float:
    """Every order of the tied examples, equally likely: the mean over them of (1/n) sum_k errors(k)/k."""
    groups = [np.flatnonzero(entropy == value) for value in np.unique(entropy)]
    total, count = 0.0, 0
    for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
        ranked = np.concatenate([np.array(order, dtype=int) for order in orders])
        errors = np.cumsum(1 - correct[ranked])
        total += np.mean(errors / np.arange(1, len(ranked) + 1))
        count += 1
    return total / count


def test_aurc_without_ties_is_the_mean_risk_over_coverage():
    entropy = torch.tensor([0.3, 0.1, 0.9, 0.5, 0.2], dtype=torch.float64)
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    # Ranked 0.1, 0.2, 0.3, 0.5, 0.9: right, right, right, wrong, wrong -> risks 0, 0, 0, 1/4, 2/5.
    expected = (1 / 4 + 2 / 5) / 5
    assert float(calibration.aurc(entropy, correct, torch.ones(1, 5, dtype=torch.float64))) == pytest.approx(expected)


def test_aurc_counts_ties_in_every_order():
    generator = np.random.default_rng(3)
    entropy = generator.integers(0, 3, 7).astype(np.float64)  # three values among seven: ties
    correct = generator.integers(0, 2, 7).astype(np.float64)
    got = calibration.aurc(torch.tensor(entropy), torch.tensor(correct), torch.ones(1, 7, dtype=torch.float64))
    assert float(got) == pytest.approx(aurc_reference(entropy, correct), abs=1e-12)


def test_a_weighted_aurc_is_the_resampled_set():
    generator = np.random.default_rng(4)
    entropy, correct = generator.random(300), (generator.random(300) < 0.7).astype(np.float64)
    drawn = generator.integers(0, 300, 300)
    weights = torch.tensor(np.bincount(drawn, minlength=300), dtype=torch.float64)[None]
    got = calibration.aurc(torch.tensor(entropy), torch.tensor(correct), weights)
    # The copies of one example are tied: in any order they are all right or all wrong.
    ranked = drawn[np.argsort(entropy[drawn], kind="stable")]
    expected = np.mean(np.cumsum(1 - correct[ranked]) / np.arange(1, 301))
    assert float(got) == pytest.approx(expected, abs=1e-12)


def debiased_reference(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    total = 0.0
    for b in range(bins):
        inside = (confidence > b / bins) & (confidence <= (b + 1) / bins)
        n_b = inside.sum()
        if n_b == 0:
            continue
        a, c = correct[inside].mean(), confidence[inside].mean()
        noise = a * (1 - a) / (n_b - 1) if n_b > 1 else 0.0
        total += n_b / len(confidence) * ((a - c) ** 2 - noise)
    return math.sqrt(max(total, 0.0))


def test_debiased_ece_against_the_reference_and_near_zero_when_calibrated():
    generator = torch.Generator().manual_seed(5)
    p = torch.softmax(2 * torch.randn(4000, 10, generator=generator, dtype=torch.float64), dim=1)
    # Labels drawn from p itself: calibrated by construction.
    labels = torch.multinomial(p, 1, generator=generator).squeeze(1)
    scores = calibration.score(p, labels)
    confidence, predicted = p.max(dim=1)
    expected = debiased_reference(confidence.numpy(), (predicted == labels).double().numpy())
    assert scores.ece_debiased == pytest.approx(expected, abs=1e-12)
    # The plug-in ECE carries the bins' sampling noise; the debiased l2 removes most of it.
    assert scores.ece_debiased < scores.ece


def test_unit_weights_reproduce_aurc_and_the_debiased_ece():
    generator = torch.Generator().manual_seed(6)
    p = torch.softmax(2 * torch.randn(800, 10, generator=generator), dim=1)
    labels = torch.randint(0, 10, (800,), generator=generator)
    scores = calibration.score(p, labels)
    values = bootstrap.replicates([bootstrap.per_example(p, labels)], torch.ones(1, 800, dtype=torch.float64))[0]
    for metric in ("aurc", "ece_debiased"):
        assert float(values[calibration.METRICS.index(metric)]) == pytest.approx(getattr(scores, metric), abs=1e-12)
