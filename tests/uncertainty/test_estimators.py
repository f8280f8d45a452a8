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

    try:  # the same counts as whole numbers (a bincount's int64): the same AURC
        counted = calibration.aurc(torch.tensor(entropy), torch.tensor(correct), weights.long())
    except RuntimeError as error:
        pytest.fail(f"AURC refused whole-number counts: {error}")
    assert float(counted) == pytest.approx(expected, abs=1e-12)


def test_scoring_a_models_output_keeps_no_autograd_graph():
    # Probabilities straight from a model (requires_grad): score() saves nothing for a backward
    # pass, which over 10,000 examples and every threshold would be memory held for nothing.
    probabilities = torch.softmax(torch.randn(50, 10, generator=torch.Generator().manual_seed(0)).requires_grad_(), dim=1)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        calibration.score(probabilities, torch.arange(50) % 10)
    assert saved == []


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


@pytest.mark.parametrize(
    "n, bins, run", [(800, 15, 1), (30, 15, 1), (12, 15, 1), (30, 15, 2)]
)  # 30: two a bin; 12: fewer examples than bins
def test_unit_weights_reproduce_every_metric(n, bins, run):
    generator = torch.Generator().manual_seed(6)
    p = torch.softmax(2 * torch.randn(n, 10, generator=generator, dtype=torch.float64), dim=1)
    confidence, predicted = p.max(dim=1)
    # Right and wrong by turns of `run` in confidence order: equal-mass bins hold gaps of both
    # signs (run 1) or whole bins of each sign by turns (run 2, two a bin), so the bin each
    # example falls in, the last one's too, changes the adaptive ECE.
    rank = torch.empty(n, dtype=torch.long)
    rank[torch.sort(confidence, stable=True).indices] = torch.arange(n)
    labels = torch.where(rank // run % 2 == 0, predicted, (predicted + 1) % 10)
    scores = calibration.score(p, labels, bins=bins)
    values = bootstrap.replicates([bootstrap.per_example(p, labels)], torch.ones(1, n, dtype=torch.float64), bins=bins)[0]
    for metric in calibration.METRICS:
        assert float(values[calibration.METRICS.index(metric)]) == pytest.approx(getattr(scores, metric), abs=1e-12), metric


def test_a_replicates_equal_mass_bins_take_tied_confidences_in_example_order():
    # Three examples to each confidence and two to each equal-mass bin: ties straddle bin edges,
    # right and wrong within a tie, so which tied example lands in which bin changes the adaptive
    # ECE. The bootstrap's bins take tied examples in their order, as calibration's do.
    n = 60
    confidence = torch.linspace(0.3, 0.95, n // 3, dtype=torch.float64).repeat_interleave(3)
    confidence = confidence[torch.randperm(n, generator=torch.Generator().manual_seed(9))]
    p = torch.cat([confidence[:, None], ((1 - confidence) / 9)[:, None].expand(n, 9)], dim=1)
    labels = torch.arange(n) % 2  # class 0 is every prediction: right and wrong by turns
    expected = calibration.score(p, labels).ece_adaptive
    got = bootstrap.replicates([bootstrap.per_example(p, labels)], torch.ones(1, n, dtype=torch.float64))[0]
    assert float(got[calibration.METRICS.index("ece_adaptive")]) == pytest.approx(expected, abs=1e-12)


def test_the_replicates_of_two_runs_are_their_mean_and_their_unit_values_each_ones():
    generator = torch.Generator().manual_seed(8)
    labels = torch.randint(0, 10, (200,), generator=generator)
    runs = [torch.softmax(scale * torch.randn(200, 10, generator=generator, dtype=torch.float64), dim=1) for scale in (1, 4)]
    scores = [calibration.score(p, labels) for p in runs]
    parts = [bootstrap.per_example(p, labels) for p in runs]
    ones = torch.ones(1, 200, dtype=torch.float64)
    values = bootstrap.replicates(parts, ones)[0]
    for index, metric in enumerate(calibration.METRICS):
        expected = (getattr(scores[0], metric) + getattr(scores[1], metric)) / 2
        assert float(values[index]) == pytest.approx(expected, abs=1e-12), metric
    units = bootstrap.unit_values(parts, ones)  # (runs, replicates, accuracy / nll / brier)
    assert units.shape == (2, 1, 3)
    for run, s in enumerate(scores):
        assert units[run, 0].tolist() == pytest.approx([s.accuracy, s.nll, s.brier], rel=1e-6)


def test_debiased_ece_of_an_overconfident_net_with_bins_of_one_two_and_many():
    """Examples placed in chosen bins (15): one of a single example, one of two, a few of more,
    the net overconfident, so the debiased error is well above 0 and no clamp hides a wrong term."""
    placed = [(0.30, [1]), (0.50, [1, 0]), (0.76, [1, 0, 0, 1, 0]), (0.95, [1] * 20 + [0] * 10)]
    confidences, correct = [], []
    for start, outcomes in placed:
        confidences += [start + 0.001 * i for i in range(len(outcomes))]
        correct += outcomes
    confidence = torch.tensor(confidences, dtype=torch.float64)
    p = torch.cat([confidence[:, None], ((1 - confidence) / 9)[:, None].expand(-1, 9)], dim=1)  # class 0 predicted
    labels = torch.tensor([0 if hit else 1 for hit in correct])
    scores = calibration.score(p, labels)
    assert [b.count for b in scores.bins if b.count] == [1, 2, 5, 30]
    expected = debiased_reference(confidence.numpy(), np.array(correct, dtype=float))
    assert expected > 0.1
    assert scores.ece_debiased == pytest.approx(expected, abs=1e-12)


def two_parts(n: int = 60):
    generator = torch.Generator().manual_seed(8)
    parts = []
    for sharpness in (1.0, 3.0):
        p = torch.softmax(sharpness * torch.randn(n, 10, generator=generator, dtype=torch.float64), dim=1)
        p[:5] = p[:5].round(decimals=1)  # ties in entropy, which keep the examples' order
        parts.append(bootstrap.per_example(p, torch.randint(0, 10, (n,), generator=generator)))
    return parts


def test_a_replicates_selective_accuracy_is_that_of_its_resampled_set_most_certain_first():
    parts, n = two_parts(), 60
    w = bootstrap.weights(n, 20, dtype=torch.float64)
    got = bootstrap.selective_accuracies(parts, w)
    for r in range(len(w)):
        expected = []
        for part in parts:
            order = torch.sort(part["entropy"], stable=True).indices
            copies = torch.repeat_interleave(part["correct"][order], w[r, order].long())  # the drawn copies in order
            expected.append([copies[: max(1, round(c * n))].mean().item() for c in calibration.COVERAGES])
        assert got[r].tolist() == pytest.approx(np.mean(expected, axis=0).tolist(), abs=1e-12), r


def test_a_replicates_threshold_accuracy_keeps_a_confidence_equal_to_the_threshold():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2])
    scores = calibration.score(p, labels)
    got = bootstrap.threshold_accuracies([bootstrap.per_example(p, labels)], torch.ones(1, 4, dtype=torch.float64))[0]
    for t, value in zip(calibration.THRESHOLDS, got.tolist()):
        accuracy = scores.thresholds[t][0]
        assert (value != value) if accuracy is None else value == pytest.approx(accuracy, abs=1e-12), t
    assert scores.thresholds[0.9][0] == 0.0  # the example at exactly 0.9, a mistake, is kept


def test_a_replicate_of_a_set_of_two_keeps_the_one_more_certain_example_at_the_lower_coverages():
    p = torch.tensor([[0.6, 0.4], [0.99, 0.01]], dtype=torch.float64)  # the second, more certain, is wrong
    part = bootstrap.per_example(p, torch.tensor([0, 1]))
    got = bootstrap.selective_accuracies([part], torch.ones(1, 2, dtype=torch.float64))[0].tolist()
    # round(c * 2): two examples at coverage 0.8 and above, one (the wrong one) below
    assert got == [0.5 if c >= 0.8 else 0.0 for c in calibration.COVERAGES]


def test_a_replicate_keeps_the_earlier_of_examples_equally_certain_as_calibration_does():
    # 200 predictions all alike (one entropy), the first 100 right and the rest wrong: a coverage
    # of c keeps the first round(c * 200), whatever order an unstable sort would leave the ties in.
    p = torch.tensor([[0.7, 0.3]], dtype=torch.float64).expand(200, 2)
    labels = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    got = bootstrap.selective_accuracies([bootstrap.per_example(p, labels)], torch.ones(1, 200, dtype=torch.float64))[0]
    expected = [min(100, round(c * 200)) / round(c * 200) for c in calibration.COVERAGES]
    assert got.tolist() == pytest.approx(expected, abs=1e-12)
    scored = calibration.score(p, labels).selective  # the point estimate breaks ties alike
    assert got.tolist() == pytest.approx([scored[c] for c in calibration.COVERAGES], abs=1e-12)


def test_a_replicates_threshold_accuracy_over_several_runs_is_the_mean_of_theirs():
    parts = two_parts(12)
    w = bootstrap.weights(12, 7, dtype=torch.float64)
    each = [bootstrap.threshold_accuracies([part], w) for part in parts]  # each checked against calibration above
    assert torch.allclose(bootstrap.threshold_accuracies(parts, w), (each[0] + each[1]) / 2, equal_nan=True)


def test_bootstrap_weights_draw_every_example_and_n_copies_a_replicate():
    w = bootstrap.weights(5, 400)
    assert w.sum(dim=1).tolist() == [5.0] * 400
    assert (w.sum(dim=0) > 0).all()  # no example is never drawn
    assert w.mean(dim=0).tolist() == pytest.approx([1.0] * 5, abs=0.15)  # each drawn once a replicate on average
