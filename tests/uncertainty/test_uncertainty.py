"""evaluate's uncertainty study: calibration metrics, MC dropout, temperature, ensembles, shifts."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import accepted, only, refusal
from dropcli.config import load_config
from dropcli.errors import DropcliError
from dropcli.uncertainty import calibration, methods, shifts

RUN = ["--set", "data.val_split=0.1"]


def hand_example():
    """Four examples, four classes: ties on the bin edges 0.5, 0.75 and 1 (4 bins), one empty bin,
    one certain mistake."""
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.25, 0.75, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    return p, torch.tensor([0, 0, 0, 2])


def test_metrics_against_hand_computed_values():
    p, y = hand_example()
    scores = calibration.score(p, y, bins=4, coverages=(1.0, 0.75, 0.5))
    assert scores.accuracy == 0.5
    # -log p(label): log 2, log 4, 0, and the floor 1e-12 for the certain mistake.
    assert scores.nll == pytest.approx((math.log(2) + math.log(4) + 0 + -math.log(1e-12)) / 4, abs=1e-12)
    # (0.25 + 0.0625 + 0.0625) + (0.5625 + 0.5625) + 0 + (1 + 1), over 4
    assert scores.brier == pytest.approx(3.5 / 4, abs=1e-12)
    # A confidence on an edge goes to the lower bin: 0.5 -> (0.25, 0.5], 0.75 -> (0.5, 0.75], 1 -> (0.75, 1].
    assert [b.count for b in scores.bins] == [0, 1, 1, 2]
    assert [(b.lower, b.upper) for b in scores.bins] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert scores.bins[0].confidence is None and scores.bins[0].accuracy is None
    assert [(b.confidence, b.accuracy) for b in scores.bins[1:]] == [(0.5, 1.0), (0.75, 0.0), (1.0, 0.5)]
    assert scores.ece == pytest.approx((1 * 0.5 + 1 * 0.75 + 2 * 0.5) / 4, abs=1e-12)
    entropies = [0.5 * math.log(2) + 0.5 * math.log(4), 0.25 * math.log(4) + 0.75 * math.log(4 / 3), 0.0, 0.0]
    assert scores.entropy == pytest.approx(sum(entropies) / 4, abs=1e-12)
    # Most certain first (entropy 0: examples 2 then 3), then 1, then 0.
    assert scores.selective == pytest.approx({1.0: 0.5, 0.75: 1 / 3, 0.5: 0.5})
    # Two examples: half keeps the more certain one (example 1, a mistake), a quarter rounds to
    # none and keeps it too.
    two = calibration.score(p[:2], y[:2], bins=4, coverages=(1.0, 0.5, 0.25))
    assert two.selective == pytest.approx({1.0: 0.5, 0.5: 0.0, 0.25: 0.0})


def reference_ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Guo et al. 2017, written out bin by bin: bins ((m-1)/M, m/M]."""
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    total = 0.0
    for m in range(1, bins + 1):
        inside = (confidence > (m - 1) / bins) & (confidence <= m / bins)
        if inside.any():
            total += inside.sum() / len(y) * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_ece_and_brier_match_a_numpy_reference_on_random_predictions():
    generator = torch.Generator().manual_seed(0)
    p = torch.softmax(3 * torch.randn(2000, 10, generator=generator), dim=1)
    y = torch.randint(0, 10, (2000,), generator=generator)
    scores = calibration.score(p, y)
    p64, y64 = p.double().numpy(), y.numpy()
    assert scores.ece == pytest.approx(reference_ece(p64, y64), abs=1e-12)
    assert scores.brier == pytest.approx(((p64 - np.eye(10)[y64]) ** 2).sum(axis=1).mean(), abs=1e-12)
    assert scores.nll == pytest.approx(-np.log(p64[np.arange(2000), y64]).mean(), abs=1e-12)
    assert sum(b.count for b in scores.bins) == 2000 and len(scores.bins) == 15


def test_temperature_one_changes_nothing_and_the_fit_lowers_nll():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3000, 10, generator=generator) * 2
    y = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator).squeeze(1)  # calibrated at T = 1
    assert torch.equal(methods.scaled(logits, 1.0), torch.softmax(logits, dim=1))
    overconfident = logits * 3
    temperature = methods.fit_temperature(overconfident, y)
    assert 2.5 < temperature < 3.5
    nll = lambda t: float(torch.nn.functional.cross_entropy(overconfident / t, y))  # noqa: E731
    assert nll(temperature) < nll(1.0) - 0.1
    assert nll(temperature) <= min(nll(temperature * 0.95), nll(temperature * 1.05))


@pytest.mark.parametrize("kind", ["scratch", "builtin", "gaussian", "dropconnect"])
def test_mc_dropout_with_every_rate_zero_is_the_deterministic_net(build, kind):
    model = build(kind, dropout=(0.0, 0.0))
    X = torch.rand(300, 784, generator=torch.Generator().manual_seed(2))
    deterministic = methods.scaled(methods.logits(model, X))
    assert torch.equal(methods.mc_probabilities(model, X, 7), deterministic)
    assert not model.training and not any(layer.training for layer in methods.stochastic_modules(model))


def test_mc_dropout_samples_differ_and_batching_matches_one_pass_per_sample(build):
    model = build("builtin")
    X = torch.rand(50, 784, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    averaged = methods.mc_probabilities(model, X, 4)
    assert not torch.allclose(averaged, methods.scaled(methods.logits(model, X)), atol=1e-4)  # the noise was on
    # The same masks drawn one pass at a time: stacked sample k is rows k*50 ... k*50+49.
    torch.manual_seed(0)
    model.train()
    one_by_one = torch.softmax(model(X.repeat(4, 1)), dim=1).view(4, 50, 10).double().mean(dim=0).float()
    model.eval()
    assert torch.allclose(averaged, one_by_one, atol=1e-6)


def test_rotation_by_zero_is_the_identity_and_quarter_turns_are_exact():
    X = torch.rand(20, 784, generator=torch.Generator().manual_seed(4))
    assert torch.equal(shifts.apply(X, shifts.Shift("rotate", 0.0)), X)
    assert torch.equal(shifts.apply(X, shifts.Shift("rotate", 360.0)), X)  # through the resampling
    images = X.view(20, 28, 28)
    quarter = shifts.apply(X, shifts.Shift("rotate", 90.0)).view(20, 28, 28)
    assert torch.equal(quarter, torch.rot90(images, 1, dims=(1, 2)))  # counter-clockwise
    assert torch.equal(shifts.apply(X, shifts.Shift("rotate", 180.0)).view(20, 28, 28), torch.rot90(images, 2, dims=(1, 2)))
    moved = shifts.apply(X, shifts.Shift("translate", 2.0)).view(20, 28, 28)
    assert torch.equal(moved[:, :, 2:], images[:, :, :-2]) and not moved[:, :, :2].any()
    rotated = shifts.apply(X, shifts.Shift("rotate", 45.0))
    assert rotated.shape == X.shape and 0 <= rotated.min() and rotated.max() <= 1 and not torch.equal(rotated, X)


def test_noise_is_the_same_for_every_method_and_clipped():
    X = torch.rand(10, 784, generator=torch.Generator().manual_seed(5))
    first, second = (shifts.apply(X, shifts.Shift("noise", 0.3)) for _ in range(2))
    assert torch.equal(first, second) and not torch.equal(first, X)
    assert first.min() >= 0 and first.max() <= 1


def test_shift_syntax():
    assert [s.value for s in shifts.parse("rotate=0:180:15")] == [15.0 * k for k in range(13)]
    assert [s.value for s in shifts.parse("noise=0,0.5,1")] == [0.0, 0.5, 1.0]
    assert shifts.parse_all([]) == [shifts.NONE]


def train(invoke, small_args, name, seed, *extra):
    result = invoke("train", *small_args(2, train=1500, test=400), *RUN, "--seed", seed, *extra, "--run-dir", name, "-q")
    assert result.exit_code == 0, result.output


@pytest.fixture
def two_runs(in_tmp, invoke, small_args):
    """An experiment directory of one cell, seeds 0 and 1, with a validation split."""
    result = invoke("compare", "scratch", *small_args(2, train=1500, test=400), *RUN, "--seeds", 2, "--run-dir", "exp", "-q")
    assert result.exit_code == 0, result.output
    return in_tmp / "exp"


def study_json(invoke, *args):
    result = invoke("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rows(report, method, family="none", value=0.0):
    return [
        r for r in report["uncertainty"]["results"] if r["method"] == method and r["shift"] == {"family": family, "value": value}
    ]


def test_an_ensemble_of_one_run_is_that_run(two_runs, invoke):
    runs = sorted(p for p in two_runs.iterdir() if p.is_dir())
    alone = study_json(invoke, runs[0])
    assert alone["uncertainty"]["methods"] == ["deterministic"]
    # Ensembles of one, scored as ensembles: each is its run, metric for metric.
    both = study_json(invoke, two_runs, "--ensemble-sizes", 1)
    single = only(rows(both, "deterministic"))
    ensembles = only(rows(both, "ensemble M=1"))
    assert len(ensembles["per_run"]) == 2 and ensembles["per_run"] == single["per_run"]
    assert single["per_run"][0]["nll"] == alone["uncertainty"]["results"][0]["nll"]
    # The single run's loss and accuracy are what evaluate always reported.
    assert {"loss", "accuracy"} <= alone.keys(), alone.keys()
    assert (alone["loss"], alone["accuracy"]) == pytest.approx(
        (rows(alone, "deterministic")[0]["nll"], rows(alone, "deterministic")[0]["accuracy"])
    )


def test_progress_counts_each_run_under_each_shift_in_order(two_runs, monkeypatch):
    import itertools
    from types import SimpleNamespace

    from dropcli.uncertainty import shifts, study

    # A clock that moves a second each time it is read: every Monte Carlo tick is passed on (not
    # ten a second), so each shift's ticks are seen.
    readings = itertools.count()
    monkeypatch.setattr(study, "time", SimpleNamespace(monotonic=lambda: float(next(readings))))
    reports = []
    # 200 passes of 400 images: more rows than one batched forward takes, so a run's ticks come in parts.
    request = study.Request([two_runs], mc_samples=200, shifts=shifts.parse("rotate=0,45"))
    study.run(request, {"device": ("--device", "cpu")}, lambda done, total, estimate: reports.append((done, total)))
    assert {total for _, total in reports} == {4}  # two runs under two shifts
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 4
    assert 2 in done  # the first shift's end: two of four
    assert any(0 < d < 1 for d in done) and any(2 < d < 3 for d in done)  # ticks within a run, in each shift


def test_two_runs_with_their_own_validation_splits_are_said_to_have_trained_on_different_subsets(two_runs, invoke):
    notes = study_json(invoke, two_runs, "--temperature", "--bootstrap", "0")["uncertainty"]["notes"]
    assert "the runs trained on different subsets (each held out its own validation split)" in notes


def test_one_run_under_shifts_is_scored_per_shift_without_the_unshifted_tables(two_runs, invoke):
    run = sorted(p for p in two_runs.iterdir() if p.is_dir())[0]
    report = study_json(invoke, run, "--shift", "rotate=0,45", "--bootstrap", "0")
    assert len(rows(report, "deterministic", "rotate", 0.0)) == len(rows(report, "deterministic", "rotate", 45.0)) == 1
    assert "loss" not in report  # the single run's own tables are for the unshifted split only


def test_an_ood_directory_that_holds_no_images_is_refused_before_any_scoring(two_runs, invoke, in_tmp, monkeypatch):
    from dropcli.uncertainty import lineup

    scored = []
    monkeypatch.setattr(lineup, "all_outputs", lambda *args, **kwargs: scored.append(1))
    (in_tmp / "Empty").mkdir()  # its path sorts before "heldout": read, and refused, before any work like any other
    result = invoke("evaluate", two_runs, "--ood", in_tmp / "Empty", "--ood", "noise", "--bootstrap", "0")
    assert result.exit_code == 2 and "no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz in" in result.stderr
    assert scored == []


def test_temperature_fitting_counts_in_the_monte_carlo_time_bound(two_runs, invoke, monkeypatch):
    from dropcli.uncertainty import evaluation

    seen = []
    bound = evaluation.check_mc_time
    monkeypatch.setattr(evaluation, "check_mc_time", lambda *args: (seen.append(args), bound(*args))[1])
    study_json(invoke, two_runs, "--mc-samples", 3, "--temperature")
    study_json(invoke, two_runs, "--mc-samples", 3)
    # Two runs, each with 150 validation images (10 % of 1,500), scored 3 times to fit T for MC dropout.
    assert [args[5:] for args in seen] == [(3 * 2 * 150,), (0,)]


def test_the_time_bound_refuses_fitting_passes_that_do_not_fit(build):
    from dropcli.errors import DropcliError
    from dropcli.uncertainty.evaluation import MC_TIME_LIMIT_S, check_mc_time

    model, X = build("scratch"), torch.rand(100, 784)
    scoring = check_mc_time(model, X, 3, "fp32")
    assert 0 < scoring < MC_TIME_LIMIT_S
    with pytest.raises(DropcliError, match=r"--mc-samples 3: .* \(and 1,000,000,000,000,000 image-passes to fit temperatures"):
        check_mc_time(model, X, 3, "fp32", fitting=10**15)  # no machine does that in an hour


def test_predictions_read_back_reproduce_every_printed_metric(two_runs, invoke, in_tmp):
    args = [two_runs, "--mc-samples", 3, "--temperature", "--shift", "rotate=0:90:45", "--shift", "noise=0.2"]
    report = study_json(invoke, *args, "--predictions", in_tmp / "p.npz", "-o", in_tmp / "fig.png")
    study = report["uncertainty"]
    assert study["methods"] == [
        "deterministic",
        "temperature",
        "mc dropout",
        "mc dropout + temperature",
        "ensemble",
        "ensemble + mc dropout",
    ]
    assert len(study["temperatures"]) == 2 and all(t > 0 for t in study["temperatures"])
    saved = np.load(in_tmp / "p.npz")
    assert saved["probabilities"].shape == (400 * 4 * (4 * 2 + 2), 10)
    for result in study["results"]:
        shift = result["shift"]
        chosen = (
            (saved["method"] == result["method"])
            & (saved["shift_family"] == shift["family"])
            & (saved["shift_value"] == shift["value"])
        )
        per_run = []
        for run in sorted(set(saved["run"][chosen])):
            here = chosen & (saved["run"] == run)
            per_run.append(numpy_scores(saved["probabilities"][here], saved["label"][here]))
        for metric in ("accuracy", "nll", "brier", "ece"):
            assert np.mean([s[metric] for s in per_run]) == pytest.approx(result[metric], abs=1e-9), (
                result["method"],
                shift,
                metric,
            )
    # The ensemble is the mean of its runs' probabilities.
    ensemble = (saved["method"] == "ensemble") & (saved["shift_family"] == "rotate") & (saved["shift_value"] == 0)
    members = [
        (saved["method"] == "deterministic")
        & (saved["shift_value"] == 0)
        & (saved["shift_family"] == "rotate")
        & (saved["run"] == str(two_runs / f"kind=scratch_seed{seed}"))
        for seed in (0, 1)
    ]
    mean = (saved["probabilities"][members[0]].astype(np.float64) + saved["probabilities"][members[1]]) / 2
    assert np.allclose(saved["probabilities"][ensemble], mean, atol=1e-6)
    # The CSV holds the same numbers.
    invoke("evaluate", *args, "--predictions", in_tmp / "p.csv")
    with open(in_tmp / "p.csv") as file:
        table = list(csv.DictReader(file))
    assert len(table) == len(saved["label"]) and table[0]["method"] == "deterministic"
    first = np.array([[float(row[f"p{c}"]) for c in range(10)] for row in table[:400]])
    assert np.array_equal(first, saved["probabilities"][:400].astype(np.float64))
    for suffix in ("reliability", "shift"):
        assert_png(in_tmp / f"fig-{suffix}.png")


def numpy_scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    p = p.astype(np.float64)
    return {
        "accuracy": (p.argmax(axis=1) == y).mean(),
        "nll": -np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean(),
        "brier": ((p - np.eye(p.shape[1])[y]) ** 2).sum(axis=1).mean(),
        "ece": reference_ece(p, y),
    }


def assert_png(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= 600 and height >= 400  # one column (3.25 in) at 200 dpi is 650 pixels wide
    assert image[..., :3].std() > 0.05  # not blank


def test_temperature_lowers_validation_nll_of_a_run(in_tmp, invoke, small_args, fake_data):
    from dropcli import data
    from dropcli.cli.options import flags as _flags
    from dropcli.uncertainty import ensembles

    train(invoke, small_args, "r", 0)
    member = only(ensembles.load([in_tmp / "r"], _flags({"device": "cpu", "data_dir": fake_data})))
    val = data.load(member.config.data, member.config.seed, torch.device("cpu")).val
    z = methods.logits(member.model, val.X)
    temperature = methods.fit_temperature(z, val.y)
    nll = lambda t: calibration.score(methods.scaled(z, t), val.y).nll  # noqa: E731
    assert temperature != 1.0 and nll(temperature) < nll(1.0)


BAD = [
    (["--shift", "rotate=0:400:15"], "375 is out of range; rotate takes -360 to 360 degrees"),
    (["--shift", "rotate=a:180:15"], "'a' is not a number"),
    (["--shift", "spin=0:180:15"], "FAMILY one of rotate, translate, noise"),
    (["--shift", "rotate=0:90:45", "--shift", "rotate=90"], "rotate=90 is named twice"),
    (["--mc-samples", "0"], "--mc-samples 0: K must be at least 1"),
    (["--mc-samples", "-3"], "--mc-samples -3: K must be at least 1"),
    (["-o", "fig.jpg"], "name a .png file"),
    (["--predictions", "p.txt"], "name a .npz (numpy) or .csv (pandas) file"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_options_are_one_line_and_write_nothing(two_runs, invoke, in_tmp, args, message):
    before = sorted(in_tmp.rglob("*"))
    outputs = [] if {"-o", "--predictions"} & set(args) else ["-o", "fig.png", "--predictions", "p.npz"]
    result = invoke("evaluate", two_runs, *args, *outputs)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert sorted(in_tmp.rglob("*")) == before


def test_an_ood_data_set_not_on_this_machine_is_named_with_what_to_give_instead(two_runs, invoke, no_system_data):
    result = invoke("evaluate", two_runs, "--ood", "mnist")
    assert result.exit_code == 2 and result.stderr.startswith("error: --ood mnist: MNIST not found"), result.output
    assert "name a directory holding its t10k-images-idx3-ubyte[.gz] instead (--ood DIR)" in result.stderr
    assert "--data-dir" not in result.stderr  # that option names the runs' data, not the other set


def test_runs_that_differ_beyond_the_seed_are_refused(in_tmp, invoke, small_args):
    train(invoke, small_args, "a", 0)
    train(invoke, small_args, "b", 1, "--set", "model.dropout_1=0.2")
    train(invoke, small_args, "c", 2, "--set", "data.test_limit=300")
    train(invoke, small_args, "plain", 3, "--set", "data.val_split=0")
    before = sorted(in_tmp.rglob("*"))
    cases = [
        (["a", "b"], "runs differ in more than the seed (model.dropout: [0.5, 0.5] vs [0.2, 0.5]"),
        (["a", "c"], "runs on different data sets (data.test_limit: 400 vs 300"),
        (["a", "a"], "a run is named twice"),
        (
            ["plain", "--temperature"],
            "--temperature fits T on the run's validation split, and plain/checkpoints/last.pt has none",
        ),
        (["a", "--split", "val", "--temperature"], "--split val would score T on the examples it was fitted to"),
    ]
    for args, message in cases:
        result = invoke("evaluate", *args, "-o", "fig.png", "--predictions", "p.npz")
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert result.stderr.count("\n") == 1
    assert sorted(in_tmp.rglob("*")) == before


def test_an_ensembles_members_load_on_the_device_the_first_runs_config_names(in_tmp, invoke, small_args, monkeypatch):
    from dropcli.cli.options import flags as _flags
    from dropcli.parallel.workers import Workers
    from dropcli.uncertainty import ensembles

    train(invoke, small_args, "r0", 0, "--device", "cpu")
    train(invoke, small_args, "r1", 1, "--device", "auto")  # the device is free among members: both are CPU here
    asked = []
    monkeypatch.setattr(Workers, "device", lambda self, spec: asked.append(spec) or torch.device("cpu"))
    ensembles.load([in_tmp / "r0", in_tmp / "r1"], _flags({}))
    assert asked == ["cpu"]
    asked.clear()
    ensembles.load([in_tmp / "r1", in_tmp / "r0"], _flags({}))
    assert asked == ["auto"]


def test_an_ensembles_runs_must_have_trained_the_same_epochs_in_either_order():
    from dropcli.uncertainty.ensembles import check_same_recipe

    configs = [load_config(None, ["seed=0"]), load_config(None, ["seed=1"])]
    paths = [Path("a/last.pt"), Path("b/last.pt")]
    check_same_recipe(paths, configs, [3, 3])
    for epochs in ([3, 2], [2, 3]):
        with pytest.raises(DropcliError, match="epochs trained"):
            check_same_recipe(paths, configs, epochs)
    with pytest.raises(DropcliError, match="two runs share a seed"):
        check_same_recipe(paths, [configs[0], configs[0]], [3, 3])


def test_a_refused_ensemble_names_the_first_run_the_one_that_differs_and_the_first_key():
    from dropcli.uncertainty.ensembles import check_same_recipe

    paths = [Path("a/last.pt"), Path("b/last.pt"), Path("c/last.pt")]
    same = [load_config(None, [f"seed={seed}"]) for seed in (0, 1)]
    other = load_config(None, ["seed=2", "model.dropout_1=0.2", "optim.lr=0.3"])
    assert "(model.dropout: [0.5, 0.5] vs [0.2, 0.5] in a/last.pt and c/last.pt)" in refusal(
        check_same_recipe, paths, [*same, other], [3] * 3
    )
    elsewhere = load_config(None, ["seed=2", "data.name=mnist", "data.test_limit=300"])  # data.name: not the run's own name
    assert "runs on different data sets (data.name: fashion-mnist vs mnist in a/last.pt and c/last.pt)" in refusal(
        check_same_recipe, paths, [*same, elsewhere], [3] * 3
    )
    assert "(epochs trained: 3 vs 2 in a/last.pt and b/last.pt)" in refusal(
        check_same_recipe, paths, [*same, load_config(None, ["seed=2"])], [3, 2, 2]
    )


def test_an_ensemble_of_long_runs_or_many_runs_is_not_refused():
    from dropcli.uncertainty.ensembles import check_same_recipe

    configs = [load_config(None, [f"seed={seed}"]) for seed in range(300)]
    # Counts past 256 are distinct int objects (as a checkpoint's epochs are): compared by value.
    paths = [Path(f"r{seed}/last.pt") for seed in range(300)]
    accepted(
        "300 runs of 300 epochs, each once and of another seed,",
        check_same_recipe,
        paths,
        configs,
        [int("300") for _ in range(300)],
    )


def test_last_layer_mc_dropout_leaves_every_earlier_noise_layer_off(build):
    """Three noise layers (inputs and two hidden): only the last is on, however many come before."""
    model = build("scratch", dropout_input=0.5, dropout=(0.5, 0.5))
    X = torch.rand(30, 784, generator=torch.Generator().manual_seed(4))
    first, second, last = methods.stochastic_modules(model)
    torch.manual_seed(0)
    ((got, _),) = methods.mc_sweep(model, X, [8], last_layer_only=True)
    # By hand: eval mode with only the last layer's noise, eight passes one at a time, same masks.
    model.eval()
    last.train()
    torch.manual_seed(0)
    stacked = model[: list(model).index(last)](X).repeat(8, 1)  # the noise-free part once, copied as mc_sweep does
    with torch.no_grad():
        expected = torch.softmax(model[list(model).index(last) :](stacked), dim=1).view(8, 30, -1).double().mean(dim=0)
    model.eval()
    assert torch.allclose(got.double(), expected, atol=1e-6)
    assert not first.training and not second.training and not last.training  # all off again afterwards


def test_mc_dropout_runs_the_noise_free_first_layer_once_per_example(build):
    prefix, rest = methods.split_at_first_noise(build("scratch"))
    assert isinstance(prefix, torch.nn.Sequential) and len(prefix) > 0  # the 784 x 256 product, not repeated K times
    assert not methods.stochastic_modules(prefix) and methods.stochastic_modules(rest)


def test_evaluation_logits_are_float32_without_a_graph_at_any_precision(build):
    model = build("scratch")
    X = torch.rand(16, 784, generator=torch.Generator().manual_seed(2))
    for precision in ("fp32", "bf16"):
        z = methods.logits(model, X, precision)
        assert z.dtype == torch.float32 and not z.requires_grad, precision


def test_a_temperature_of_two_halves_the_logits():
    z = torch.randn(20, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(methods.scaled(z, 2.0), torch.softmax(z / 2.0, dim=1))
    assert torch.equal(methods.scaled(z), torch.softmax(z, dim=1)) and not torch.allclose(
        methods.scaled(z, 2.0), methods.scaled(z)
    )
