"""What `evaluate`'s study does with its request, beyond the scores: the notes it writes for
ensemble sizes and held-out splits, the spread over runs, what it asks of the Monte Carlo time
estimate, its defaults, and the single run's MC dropout line (uncertainty/study.py)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import accepted
from dropcli.config import load_config
from dropcli.errors import DropcliError
from dropcli.uncertainty import calibration, evaluation, methods, shifts, study

RUN = ["--set", "data.val_split=0.1"]
CPU = {"device": ("--device", "cpu")}


def nets(build, count: int) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(model=build("scratch", seed=seed), config=load_config(None, [f"seed={seed}"])) for seed in range(count)
    ]


def planned(request: study.Request, members, vals=()):
    result, _ = study._plan(request, members, None, torch.zeros(10, dtype=torch.long), list(vals))
    return result


def test_ensemble_sizes_are_noted_where_they_make_fewer_than_three_ensembles(build):
    notes = planned(study.Request([], ensemble_sizes=(1, 2, 3)), nets(build, 3)).notes
    assert [note for note in notes if note.startswith("ensembles of")] == [
        "ensembles of 2: 1 disjoint of 3 runs (no spread); the last 1 runs are in none, so these rows "
        "and the single-model rows average different runs",
        "ensembles of 3: 1 disjoint of 3 runs (no spread)",
    ]  # M = 1 makes three ensembles: nothing to say
    notes = planned(study.Request([], ensemble_sizes=(2,)), nets(build, 4)).notes
    assert [note for note in notes if note.startswith("ensembles of")] == ["ensembles of 2: 2 disjoint of 4 runs"]


def test_runs_with_their_own_validation_splits_are_noted_on_the_test_split_however_it_is_spelled(build):
    generator = torch.Generator().manual_seed(0)
    vals = [
        SimpleNamespace(X=torch.rand(20, 784, generator=generator), y=torch.randint(0, 10, (20,), generator=generator))
        for _ in range(2)
    ]
    split = "".join(["te", "st"])  # as a command line gives it: equal to "test", not the same object
    notes = planned(study.Request([], split=split, temperature=True), nets(build, 2), vals).notes
    assert "the runs trained on different subsets (each held out its own validation split)" in notes
    notes = planned(study.Request([], split="val", temperature=True), nets(build, 2), vals).notes
    assert not any("different subsets" in note for note in notes)


def test_a_request_asks_for_95_percent_intervals_unless_told(build):
    assert planned(study.Request([]), nets(build, 1)).level == 0.95
    assert planned(study.Request([], level=0.9), nets(build, 1)).level == 0.9


def scored_study(outputs, y):
    result = SimpleNamespace(methods=list(outputs), member_scores={}, scores={}, spread={})
    study._score_shift(result, outputs, y, shifts.NONE, None)
    return result


def test_the_spread_is_each_metrics_standard_deviation_over_the_runs_and_none_for_one_run():
    generator = torch.Generator().manual_seed(2)
    y = torch.randint(0, 10, (300,), generator=generator)
    parts = [(torch.softmax(3 * torch.randn(300, 10, generator=generator), dim=1), None) for _ in range(3)]
    result = scored_study({"three": parts, "two": parts[:2], "one": parts[:1]}, y)
    assert ("one", shifts.NONE) not in result.spread  # one run has no spread
    by_hand = np.array([[getattr(calibration.score(p, y), metric) for metric in calibration.METRICS] for p, _ in parts])
    assert result.spread["three", shifts.NONE] == pytest.approx(by_hand.std(axis=0, ddof=1).tolist())
    assert ("two", shifts.NONE) in result.spread  # two runs have one
    assert result.spread["two", shifts.NONE] == pytest.approx(by_hand[:2].std(axis=0, ddof=1).tolist())


def test_kept_predictions_are_each_runs_block_and_one_ensemble_block_as_run_minus_1():
    generator = torch.Generator().manual_seed(3)
    parts = [(torch.softmax(torch.randn(5, 10, generator=generator), dim=1), None) for _ in range(2)]
    ensemble = f"{methods.ENSEMBLE} M=1"  # two ensembles of one run: only the first is kept
    result = SimpleNamespace(methods=["deterministic", ensemble], predictions=[])
    study._keep(result, {"deterministic": parts, ensemble: parts}, shifts.NONE)
    assert [(block.method, block.member) for block in result.predictions] == [
        ("deterministic", 0),
        ("deterministic", 1),
        (ensemble, -1),
    ]
    assert torch.equal(result.predictions[2].probabilities, parts[0][0])


@pytest.fixture
def one_run(in_tmp, invoke, small_args):
    result = invoke("train", *small_args(2, train=1500, test=400), *RUN, "--run-dir", "r", "-q")
    assert result.exit_code == 0, result.output
    return in_tmp / "r"


def test_the_time_estimate_is_asked_for_the_largest_k_every_run_and_shift_and_the_fitting(one_run, monkeypatch):
    asked, heard = [], []
    monkeypatch.setattr(
        evaluation,
        "check_mc_time",
        lambda model, X, samples, precision, repeats, fitting: asked.append((samples, repeats, fitting)) or 7.0,
    )
    three = shifts.parse("rotate=0,15,30")
    request = study.Request([one_run], mc_sweep=(1, 3), last_layer=True, temperature=True, shifts=three)
    result, _ = study.run(request, CPU, lambda done, total, estimate: heard.append((done, total, estimate)))
    validation = 150  # 10 % of 1,500 training images
    assert asked == [(3 * 2, 3, 3 * validation)]  # K = 3, twice (all layers, then the last); 1 run x 3 shifts
    assert heard[0] == (0, 3, 7.0) and heard[-1] == (3, 3, 7.0)
    asked.clear()
    study.run(request, CPU, None, fitted=result.fitted)
    assert asked == [(3 * 2, 3, 0)]  # temperatures fitted already: no fitting passes
    heard.clear()
    study.run(study.Request([one_run], shifts=three), CPU, lambda done, total, estimate: heard.append((done, total, estimate)))
    assert heard[0] == (0, 3, 0.0)  # no Monte Carlo: nothing to estimate


def test_a_single_runs_mc_dropout_line_is_its_mc_dropout_row_with_or_without_a_sweep(one_run):
    outcome = study.evaluate(study.Request([one_run], mc_samples=3), CPU)
    row = outcome.study.scores["mc dropout", shifts.NONE]
    assert outcome.evaluation.mc_samples == 3 and (outcome.evaluation.mc_accuracy, outcome.evaluation.mc_loss) == (
        row.accuracy,
        row.nll,
    )
    outcome = study.evaluate(study.Request([one_run], mc_samples=3, mc_sweep=(1, 3)), CPU)
    row = outcome.study.scores["mc dropout K=3", shifts.NONE]
    assert (outcome.evaluation.mc_accuracy, outcome.evaluation.mc_loss) == (row.accuracy, row.nll)


def test_a_study_keeps_no_predictions_unless_asked(one_run):
    result, _ = study.run(study.Request([one_run]), CPU)
    assert result.predictions == []
    result, _ = study.run(study.Request([one_run], keep_predictions=True), CPU)
    assert result.predictions


def test_a_request_asks_for_no_intervals_unless_told_and_is_accepted(build):
    members = nets(build, 1)
    assert planned(study.Request([]), members).replicates == 0
    accepted("the default request", study.check, study.Request([]), members)


def test_no_mc_dropout_rows_is_noted_only_for_nets_without_noise(build):
    with_noise = planned(study.Request([], mc_samples=4), nets(build, 1)).notes
    assert not any(note.startswith("no MC dropout rows") for note in with_noise)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))  # no noise layer at all
    silent = [SimpleNamespace(model=linear, config=load_config(None, []))]
    note = "no MC dropout rows: scratch nets have no noise layer to leave on"
    for asked in ({"mc_samples": 4}, {"mc_sweep": (1, 3)}, {"last_layer": True}):  # each of the three asks for MC rows
        assert note in planned(study.Request([], **asked), silent).notes, asked


def test_temperature_scaled_ensembles_are_noted_missing_only_when_asked_for(build):
    generator = torch.Generator().manual_seed(0)
    vals = [
        SimpleNamespace(X=torch.rand(20, 784, generator=generator), y=torch.randint(0, 10, (20,), generator=generator))
        for _ in range(2)
    ]
    note = "no temperature-scaled ensembles: the runs hold out different validation splits (set data.val_seed)"
    assert note in planned(study.Request([], temperature=True), nets(build, 2), vals).notes
    assert note not in planned(study.Request([], temperature=False), nets(build, 2), vals).notes


def test_an_ensemble_on_the_test_split_is_accepted_however_test_is_spelled(build):
    split = "".join(["te", "st"])  # as a command line gives it: equal to "test", not the same object
    accepted(f"an ensemble on --split {split}", study.check, study.Request([], split=split), nets(build, 2))


def test_a_run_without_a_val_split_is_refused_on_split_val_however_val_is_spelled(build):
    split = "".join(["v", "al"])  # as a command line gives it: equal to "val", not the same object
    (run,) = nets(build, 1)
    assert run.config.data.val_split == 0
    with pytest.raises(DropcliError, match="this run has no val split"):
        study.check(study.Request([], split=split), [run])
