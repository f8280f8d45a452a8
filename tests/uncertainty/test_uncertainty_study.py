"""evaluate's study as a reviewer asks for it: bootstrap intervals, adaptive ECE, out-of-distribution
detection, MC dropout sweeps and last-layer dropout, ensembles by size, compute-matched rows."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import idx_bytes, only
from dropcli import data
from dropcli.uncertainty import bootstrap, calibration, methods, ood

RUN = ["--set", "data.val_split=0.1", "--set", "data.val_seed=7"]
# Means over examples: their percentile interval holds the estimate. ECE's need not: resampling
# adds noise to every bin's gap, so its replicates sit above the estimate when the net is calibrated.
MEANS = ("accuracy", "nll", "brier", "entropy")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def test_auroc_is_the_rank_formula_with_ties():
    generator = np.random.default_rng(0)
    inside = generator.integers(0, 20, 300).astype(np.float64)  # many ties
    outside = generator.integers(5, 25, 200).astype(np.float64)
    ranks = average_ranks(np.concatenate([inside, outside]))
    # Mann-Whitney: (sum of the positives' ranks - n_out (n_out + 1) / 2) / (n_in n_out)
    expected = (ranks[300:].sum() - 200 * 201 / 2) / (300 * 200)
    assert float(ood.auroc(torch.tensor(inside), torch.tensor(outside))) == pytest.approx(expected, abs=1e-12)
    # Perfect separation, and the coin flip of identical scores.
    assert float(ood.auroc(torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.9]))) == 1.0
    assert float(ood.auroc(torch.tensor([0.5, 0.5]), torch.tensor([0.5]))) == 0.5


def test_aupr_against_a_hand_computed_case():
    # Scores: out 0.9, in 0.8, out 0.7, in 0.1. Flagging from the top: precision 1 at recall 1/2,
    # then 2/3 at recall 1: AP = 1/2 * 1 + 1/2 * 2/3.
    inside, outside = torch.tensor([0.8, 0.1]), torch.tensor([0.9, 0.7])
    assert float(ood.aupr(inside, outside)) == pytest.approx(0.5 + 1 / 3, abs=1e-12)
    # A tie between an in and an out image is one threshold: precision 1/2 there.
    assert float(ood.aupr(torch.tensor([0.5]), torch.tensor([0.5]))) == pytest.approx(0.5)


def test_weights_count_examples_as_repeats():
    inside, outside = torch.tensor([0.1, 0.4, 0.4, 0.8]), torch.tensor([0.3, 0.5, 0.9])
    w_in, w_out = torch.tensor([[2.0, 0, 1, 1]]), torch.tensor([[1.0, 3, 0]])
    repeated_in, repeated_out = torch.tensor([0.1, 0.1, 0.4, 0.8]), torch.tensor([0.3, 0.5, 0.5, 0.5])
    for measure in (ood.auroc, ood.aupr):
        assert float(measure(inside, outside, w_in, w_out)) == pytest.approx(float(measure(repeated_in, repeated_out)))


def test_ood_scores_and_mutual_information():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    passes_entropy = torch.tensor([0.0, 0.0])  # each pass certain, so the disagreement is all epistemic
    scores = ood.scores(p, passes_entropy)
    assert scores["max probability"].tolist() == [0.0, 0.5]
    assert scores["mutual information"].tolist() == pytest.approx([0.0, math.log(2)])
    # Passes unsure themselves: the mutual information is the mean's entropy less theirs.
    unsure = ood.scores(torch.tensor([[0.5, 0.5]]), torch.tensor([0.3]))
    assert unsure["mutual information"].tolist() == pytest.approx([math.log(2) - 0.3])
    assert "mutual information" not in ood.scores(p, None)


def test_adaptive_ece_on_a_toy_case():
    # Six examples, 3 equal-mass bins of two, by confidence: (0.3, 0.4), (0.6, 0.7), (0.9, 1.0).
    confidence = torch.tensor([0.9, 0.3, 0.6, 1.0, 0.4, 0.7], dtype=torch.float64)
    correct = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    # Bin gaps: |0.5 - 0.35| = 0.15, |0.5 - 0.65| = 0.15, |1 - 0.95| = 0.05; each weighs 2/6.
    assert float(calibration.adaptive_ece(confidence, correct, bins=3)) == pytest.approx((0.15 + 0.15 + 0.05) / 3)
    # Through score(): two classes, confidence = p of the predicted class.
    p = torch.stack([confidence, 1 - confidence], dim=1)
    labels = torch.where(correct.bool(), 0, 1)
    assert calibration.score(p, labels, bins=3).ece_adaptive == pytest.approx((0.15 + 0.15 + 0.05) / 3)


def test_accuracy_above_a_confidence_threshold():
    # float64, so that the confidence 0.6 is the threshold 0.6 exactly (in float32 it is 0.6000000238,
    # above it, and the test would pass with > as with >=).
    p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    scores = calibration.score(p, labels)
    assert scores.thresholds[0.0] == (0.75, 1.0)
    assert scores.thresholds[0.6] == (pytest.approx(2 / 3), 0.75)  # 0.9, 0.6 (wrong), 0.8
    assert scores.thresholds[0.99] == (None, 0.0)


def test_every_threshold_the_tables_show_has_its_accuracy_and_coverage_by_hand():
    p, y = random_predictions(2000, 3)
    confidence, correct = p.max(dim=1).values.double(), (p.argmax(dim=1) == y).double()
    scores = calibration.score(p, y)
    shown = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)  # docs/uncertainty.md's table
    assert list(scores.thresholds) == list(shown)
    for t in shown:
        kept = confidence >= t
        by_hand = (float(correct[kept].mean()) if kept.any() else None, float(kept.double().mean()))
        accuracy, coverage = scores.thresholds.get(t, ("missing", None))
        assert coverage == pytest.approx(by_hand[1]) and (accuracy == by_hand[0] or accuracy == pytest.approx(by_hand[0])), t


def random_predictions(n: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    p = torch.softmax(2 * torch.randn(n, 10, generator=generator), dim=1)
    return p, torch.randint(0, 10, (n,), generator=generator)


def test_unit_weights_reproduce_every_metric():
    p, y = random_predictions(1000, 0)
    scores = calibration.score(p, y)
    values = bootstrap.replicates([bootstrap.per_example(p, y)], torch.ones(1, 1000, dtype=torch.float64))[0]
    assert values.tolist() == pytest.approx([getattr(scores, metric) for metric in calibration.METRICS], abs=1e-12)


def test_a_weighted_replicate_is_the_resampled_set():
    p, y = random_predictions(500, 1)
    drawn = torch.randint(0, 500, (500,), generator=torch.Generator().manual_seed(2))
    weights = torch.bincount(drawn, minlength=500).double()[None, :]
    values = bootstrap.replicates([bootstrap.per_example(p, y)], weights)[0]
    resampled = calibration.score(p[drawn], y[drawn])
    for index, metric in enumerate(calibration.METRICS):
        # Equal-mass bins may cut between copies of one example differently: close, not equal.
        tolerance = 0.01 if metric == "ece_adaptive" else 1e-12
        assert float(values[index]) == pytest.approx(getattr(resampled, metric), abs=tolerance), metric


def test_the_interval_holds_the_estimate_and_shrinks_with_n():
    widths = []
    for n in (400, 1600, 6400):
        p, y = random_predictions(n, 3)
        scores = calibration.score(p, y)
        intervals = bootstrap.intervals(bootstrap.replicates([bootstrap.per_example(p, y)], bootstrap.weights(n, 400)))
        for metric, interval in zip(calibration.METRICS, intervals):
            if metric in MEANS:
                assert interval.low <= getattr(scores, metric) <= interval.high, metric
        widths.append(intervals[calibration.METRICS.index("nll")].half_width)
    # The standard error goes as 1 / sqrt(n): a quarter of the width at 16 times the examples.
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] / widths[0] == pytest.approx(0.25, rel=0.3)


def test_mc_sweep_shares_its_passes_and_matches_mc_dropout(build):
    model = build("scratch")
    X = torch.rand(64, 784, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(0)
    swept = methods.mc_sweep(model, X, [1, 3, 5])
    torch.manual_seed(0)
    alone = only(methods.mc_sweep(model, X, [5]))
    assert torch.equal(swept[2][0], alone[0]) and torch.equal(swept[2][1], alone[1])
    torch.manual_seed(0)
    assert torch.allclose(alone[0], methods.mc_probabilities(model, X, 5), atol=1e-6)
    assert not torch.allclose(swept[0][0], swept[2][0], atol=1e-4)
    assert not model.training and not any(m.training for m in methods.stochastic_modules(model))


def test_a_sweep_past_one_batched_forward_goes_in_groups_and_carries_its_sums(build, monkeypatch):
    monkeypatch.setattr(methods, "ROWS_PER_PASS", 5)  # one example at a time, 5 copies a forward: K = 12 takes 3 groups
    assert methods.stacked_shape(3, 12) == (1, 5)
    X = torch.rand(3, 784, generator=torch.Generator().manual_seed(6))
    plain = build("scratch", dropout=(0.0, 0.0))  # every pass the same: each K must average back to it
    expected = methods.scaled(methods.logits(plain, X))
    fractions = []
    for (p, inner), k in zip(methods.mc_sweep(plain, X, [1, 5, 7, 12], done=fractions.append), [1, 5, 7, 12]):
        assert torch.allclose(p, expected, atol=1e-6), k
        assert torch.allclose(inner, calibration.entropy_of(expected.double()), atol=1e-6), k
    assert fractions == sorted(fractions) and len(fractions) == 3 * 3 and fractions[-1] == 1  # 3 examples, 3 groups each
    noisy = build("scratch")
    torch.manual_seed(0)
    swept = methods.mc_sweep(noisy, X, [7, 12])  # K = 7 ends inside the second group
    torch.manual_seed(0)
    alone = only(methods.mc_sweep(noisy, X, [12]))
    assert torch.equal(swept[1][0], alone[0]) and torch.equal(swept[1][1], alone[1])
    assert not torch.allclose(swept[0][0], swept[1][0], atol=1e-4)


def test_last_layer_dropout_leaves_only_the_last_noise_layer_on(build):
    model = build("scratch", dropout=(0.5, 0.0))  # noise in the first layer only
    X = torch.rand(64, 784, generator=torch.Generator().manual_seed(5))
    deterministic = methods.scaled(methods.logits(model, X))
    ((last, inner),) = methods.mc_sweep(model, X, [4], last_layer_only=True)
    assert torch.allclose(last, deterministic, atol=1e-6)
    assert torch.allclose(inner, calibration.entropy_of(deterministic.double()), atol=1e-6)
    ((full, _),) = methods.mc_sweep(model, X, [4])
    assert not torch.allclose(full, deterministic, atol=1e-4)


def write_ood_images(directory, n: int = 300):
    """A stand-in for another data set's test images: checkerboards, nothing like the garments."""
    directory.mkdir()
    board = (torch.arange(28)[:, None] // 4 + torch.arange(28)[None, :] // 4) % 2 * 255
    images = board.repeat(n, 1, 1)
    images[n // 2 :] = 255 - images[n // 2 :]
    (directory / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, data.IMAGES_MAGIC))
    return directory


@pytest.fixture
def three_runs(in_tmp, invoke, small_args):
    """Seeds 0, 1 and 2 of one cell that share one validation split."""
    result = invoke("compare", "scratch", *small_args(2, train=1500, test=400), *RUN, "--seeds", 3, "--run-dir", "exp", "-q")
    assert result.exit_code == 0, result.output
    return in_tmp / "exp"


def test_the_full_study_in_one_call(three_runs, invoke, in_tmp):
    ood_dir = write_ood_images(in_tmp / "other")
    args = ["--mc-sweep", "1,3", "--ensemble-sizes", "1,2", "--temperature", "--last-layer", "--bootstrap", "50"]
    result = invoke("evaluate", three_runs, *args, "--shift", "rotate=0,45", "--ood", ood_dir, "--json", "-o", in_tmp / "f.png")
    assert result.exit_code == 0, result.output
    study = json.loads(result.stdout)["uncertainty"]
    assert study["bootstrap"] == {"replicates": 50, "level": 0.95}
    assert study["forward_passes"] == {
        "deterministic": 1,
        "temperature": 1,
        "mc dropout K=1": 1,
        "mc dropout K=3": 3,
        "mc dropout + temperature": 3,
        "last-layer mc dropout": 3,
        "ensemble M=1": 1,
        "ensemble M=1 + temperature": 1,
        "ensemble M=1 + mc dropout": 3,
        "ensemble M=2": 2,
        "ensemble M=2 + temperature": 2,
        "ensemble M=2 + mc dropout": 6,
    }
    by_key = {(r["method"], r["shift"]["value"]): r for r in study["results"]}
    for row in study["results"]:
        for metric in MEANS:
            low, high = row["interval"][metric]
            assert low <= row[metric] <= high, (row["method"], metric)
    # An ensemble of one is the single net; three runs make three of them (spread), and one of two.
    assert by_key["ensemble M=1", 0.0]["nll"] == pytest.approx(by_key["deterministic", 0.0]["nll"])
    assert len(by_key["ensemble M=1", 0.0]["per_run"]) == 3 and by_key["ensemble M=2", 0.0]["per_run"] is None
    assert by_key["deterministic", 0.0]["spread"]["nll"] > 0
    images_file = str(ood_dir / "t10k-images-idx3-ubyte")  # a directory's set is named by the file read
    assert study["ood"] is not None, "--ood was given: the study scores it"
    assert study["ood"]["data"] == [images_file] and {r["data"] for r in study["ood"]["results"]} == {images_file}
    detection = {(r["method"], r["score"]): r for r in study["ood"]["results"]}
    assert ("mc dropout K=1", "mutual information") not in detection  # one pass: no disagreement to measure
    assert ("ensemble M=1", "mutual information") not in detection
    for row in detection.values():
        assert 0 <= row["auroc"] <= 1 and row["auroc_interval"][0] <= row["auroc"] <= row["auroc_interval"][1]
    assert detection["deterministic", "entropy"]["auroc"] > 0.5  # checkerboards look unlike the training images
    for suffix in ("reliability", "shift", "compute", "selective"):
        assert (in_tmp / f"f-{suffix}.png").stat().st_size > 10_000
    # The terminal tables carry the intervals and the out-of-distribution table.
    text = invoke("evaluate", three_runs, "--mc-samples", "2", "--bootstrap", "40", "--ood", ood_dir).stdout
    assert "±" in text and "AUROC" in text and "mutual information" in text


def test_ensembles_that_leave_runs_out_say_so(three_runs, invoke):
    result = invoke("evaluate", three_runs, "--ensemble-sizes", "2", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    assert "ensemble M=2: 1 disjoint ensemble of 2 runs, so the last 1 run of 3 is in none" in said, result.stdout
    result = invoke("evaluate", three_runs, "--ensemble-sizes", "1,3", "--bootstrap", "0", "--json")
    assert result.exit_code == 0, result.output  # an ensemble of every run given is allowed
    study = json.loads(result.stdout)
    assert not any("in none" in note for note in study["uncertainty"]["notes"])  # 1 and 3 divide 3 runs


def test_plain_nets_get_no_mc_dropout_rows(in_tmp, invoke, small_args):
    result = invoke("compare", "none", *small_args(1, train=1500, test=400), *RUN, "--seeds", 2, "--run-dir", "plain", "-q")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", in_tmp / "plain", "--mc-samples", "5", "--temperature", "--bootstrap", "0", "--json")
    study = json.loads(result.stdout)["uncertainty"]
    assert study["methods"] == ["deterministic", "temperature", "ensemble", "ensemble + temperature"]
    assert "no MC dropout rows" in study["notes"][0] and study["results"][0]["interval"] is None
    assert study["bootstrap"] is None  # --bootstrap 0: no resamples, no level


BAD = [
    (["--mc-sweep", "1,x"], "--mc-sweep 1,x: expected distinct whole numbers >= 1"),
    (["--mc-sweep", "0,3"], "--mc-sweep 0,3: expected distinct whole numbers >= 1"),
    (["--ensemble-sizes", "2,2"], "--ensemble-sizes 2,2: expected distinct whole numbers >= 1"),
    (["--ensemble-sizes", "4"], "--ensemble-sizes 4: only 3 runs were given"),
    (["--last-layer"], "--last-layer is MC dropout with only the last noise layer on"),
    (["--ood", "nowhere"], "--ood nowhere: not a directory, nor one of fashion-mnist, mnist, kmnist"),
    (["--ood", "."], "--ood .: no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz in ."),
    (["--bootstrap", "1"], "--bootstrap 1: a 95% interval needs at least 40 resamples"),
    (["--bootstrap", "39"], "--bootstrap 39: a 95% interval needs at least 40 resamples"),
    (["--bootstrap", "199", "--level", "0.99"], "--bootstrap 199: a 99% interval needs at least 200 resamples"),
    (["--ood", "empty"], "--ood empty: empty/t10k-images-idx3-ubyte holds no images"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_study_options_are_one_line_and_write_nothing(three_runs, invoke, in_tmp, args, message):
    write_ood_images(in_tmp / "empty", n=0)  # a test file of 0 images
    before = sorted(in_tmp.rglob("*"))
    result = invoke("evaluate", three_runs, *args, "-o", "fig.png", "--predictions", "p.npz")
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert sorted(in_tmp.rglob("*")) == before


def test_help_documents_every_option_with_an_example():
    from typer.testing import CliRunner

    from dropcli.cli import app

    output = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"}).stdout
    text = " ".join(output.replace("│", " ").split())
    for example in (
        "--mc-sweep 1,3,10,50",
        "--ensemble-sizes 1,3,5",
        "--mc-samples 50 --last-layer",
        "--bootstrap 1000",
        "--level 0.9",
        "--ood ~/data/mnist",
        "t10k-images-idx3-ubyte[.gz]",
        "--shift rotate=0,15,45,90 --ood mnist",
    ):
        assert example in text, example


def test_mc_sweep_progress_is_the_share_of_rows_done(build, monkeypatch):
    monkeypatch.setattr(methods, "ROWS_PER_PASS", 16)  # 6 examples, K = 4: chunks of 4 and 2 examples, 4 copies each
    fractions = []
    methods.mc_sweep(build("builtin"), torch.rand(6, 784), [2, 4], done=fractions.append)
    assert fractions == [pytest.approx(16 / 24), pytest.approx(1.0)]
    fractions.clear()
    model, X = build("dropconnect"), torch.rand(6, 784)
    torch.manual_seed(0)
    swept = methods.mc_sweep(model, X, [2, 4], done=fractions.append)  # a pass at a time: one weight mask each
    assert fractions == [pytest.approx(k / 4) for k in (1, 2, 3, 4)]
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        passes = torch.stack([torch.softmax(model(X), dim=1).double() for _ in range(4)])  # (4, n, classes)
    model.eval()
    entropies = calibration.entropy_of(passes.view(-1, 10)).view(4, 6)
    for (p, inner), k in zip(swept, [2, 4]):
        assert torch.allclose(p.double(), passes[:k].mean(dim=0), atol=1e-6)
        assert torch.allclose(inner, entropies[:k].mean(dim=0), atol=1e-9)


def test_runs_share_a_validation_set_only_when_its_images_and_labels_are_the_same():
    from types import SimpleNamespace

    from dropcli.uncertainty.study import _shared

    X, y = torch.rand(5, 784), torch.tensor([0, 1, 2, 3, 4])
    same = SimpleNamespace(X=X.clone(), y=y.clone())
    assert _shared([SimpleNamespace(X=X, y=y), same, same])
    assert not _shared([SimpleNamespace(X=X, y=y), SimpleNamespace(X=X, y=y.flip(0))])  # other labels
    assert not _shared([SimpleNamespace(X=X, y=y), SimpleNamespace(X=X + 1, y=y)])  # other images
    assert not _shared([])


def test_the_runs_left_out_of_ensembles_are_counted_with_the_ensembles():
    from dropcli.uncertainty import lineup, study

    plan = lineup.plan([], [2, 3, 5], False, False, swept_mc=False, swept_ensembles=True, ensemble_temperature=False)
    assert study._left_out_of_ensembles(plan, 5) == [
        "ensemble M=2: 2 disjoint ensembles of 2 runs, so the last 1 run of 5 is in none",
        "ensemble M=3: 1 disjoint ensemble of 3 runs, so the last 2 runs of 5 are in none",
    ]


def test_monte_carlo_ticks_are_passed_on_at_most_ten_a_second(monkeypatch):
    import itertools
    from types import SimpleNamespace

    from dropcli.uncertainty import study

    readings = itertools.count()  # a clock that moves 0.06 s each time it is read
    monkeypatch.setattr(study, "time", SimpleNamespace(monotonic=lambda: 0.06 * next(readings)))
    heard = []
    tick = study._ticker(lambda done, steps, estimate: heard.append(done), 4, 8, 1.0)
    for fraction in (0.1, 0.2, 0.3, 0.4, 0.5):
        tick(1, fraction)
    assert heard == [4 + 1 + 0.2, 4 + 1 + 0.4]  # the ticks read 0.1 s or more after the last one passed on
