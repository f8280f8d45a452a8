"""calibration.mean, the scores of several runs as one, against the runs' predictions pooled by hand."""

import pytest
import torch

from dropcli.uncertainty import calibration


def two_runs():
    generator = torch.Generator().manual_seed(11)
    runs = []
    for sharpness in (1.0, 4.0):  # one hesitant net and one confident one: their bins differ
        p = torch.softmax(sharpness * torch.randn(300, 10, generator=generator, dtype=torch.float64), dim=1)
        runs.append((p, torch.randint(0, 10, (300,), generator=generator)))
    return runs


def test_the_mean_of_several_runs_pools_their_bins_and_averages_the_rest():
    runs = two_runs()
    scores = [calibration.score(p, y, bins=10) for p, y in runs]
    merged = calibration.mean(scores)
    for metric in calibration.METRICS:
        assert getattr(merged, metric) == pytest.approx((getattr(scores[0], metric) + getattr(scores[1], metric)) / 2, abs=1e-12)
    assert merged.selective.keys() == scores[0].selective.keys()
    for c, accuracy in merged.selective.items():
        assert accuracy == pytest.approx((scores[0].selective[c] + scores[1].selective[c]) / 2, abs=1e-12)
    # The bins of both runs' examples together are the pooled bins: the same as scoring them as one set.
    together = calibration.score(torch.cat([p for p, _ in runs]), torch.cat([y for _, y in runs]), bins=10)
    assert [b.count for b in merged.bins] == [b.count for b in together.bins]
    for pooled, whole in zip(merged.bins, together.bins):
        assert (pooled.confidence is None) == (whole.confidence is None)
        if whole.count:
            assert pooled.confidence == pytest.approx(whole.confidence, abs=1e-12)
            assert pooled.accuracy == pytest.approx(whole.accuracy, abs=1e-12)
    assert calibration.pooled_ece(merged.bins) == pytest.approx(together.ece, abs=1e-12)
    # A threshold's accuracy is the mean over the runs that keep any example; its fraction over all runs.
    for t in calibration.THRESHOLDS:
        kept = [s.thresholds[t][0] for s in scores if s.thresholds[t][0] is not None]
        accuracy, fraction = merged.thresholds[t]
        assert accuracy == (pytest.approx(sum(kept) / len(kept), abs=1e-12) if kept else None)
        assert fraction == pytest.approx((scores[0].thresholds[t][1] + scores[1].thresholds[t][1]) / 2, abs=1e-12)
    # Not vacuous: at 0.9 the hesitant run keeps no example, and the mean is the confident run's alone.
    assert scores[0].thresholds[0.9][0] is None and merged.thresholds[0.9][0] == scores[1].thresholds[0.9][0]


def test_the_mean_of_one_run_is_its_scores():
    p, y = two_runs()[0]
    scores = calibration.score(p, y, bins=10)
    assert calibration.mean([scores]) == scores


def test_each_default_coverage_keeps_the_most_certain_share_of_the_examples():
    p, y = two_runs()[1]
    scores = calibration.score(p, y)
    entropy = calibration.entropy_of(p)
    correct = (p.argmax(dim=1) == y).double()
    ranked = correct[torch.sort(entropy, stable=True).indices]
    assert list(scores.selective) == list(calibration.COVERAGES)
    for c in calibration.COVERAGES:
        kept = round(c * len(y))
        assert 1 <= kept <= len(y), c  # a share of the set, from all of it down
        assert scores.selective[c] == pytest.approx(ranked[:kept].mean().item(), abs=1e-12)
