"""tune --objective: a study scored by NLL or ECE, or by several objectives (a Pareto front, the
point --pick names in best.yaml, every objective of the final seeds on the test set); what Optuna
cannot prune is refused in one line."""

import json
import re

import pytest

from conftest import accepted, refusal
from dropcli.errors import DropcliError
from dropcli.experiments import tune_objectives

pytest.importorskip("optuna")

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--space", "model.dropout=0:0.8"]
POINTS = [(0, [0.80, 0.10]), (1, [0.90, 0.20]), (2, [0.70, 0.30]), (3, [0.85, 0.05])]
OBJECTIVES = ("accuracy", "ece")


def test_the_front_holds_the_points_no_other_dominates():
    # 3 dominates 0 (more accurate and better calibrated) and 2; 1 is the most accurate.
    assert [number for number, _ in tune_objectives.front(POINTS, OBJECTIVES)] == [1, 3]
    swapped = [(number, values[::-1]) for number, values in POINTS]
    assert [number for number, _ in tune_objectives.front(swapped, ("ece", "accuracy"))] == [1, 3]  # the order does not matter
    assert [n for n, _ in tune_objectives.front([(0, [0.5, 0.2]), (1, [0.5, 0.2])], OBJECTIVES)] == [0, 1]  # ties: both


@pytest.mark.parametrize(
    "text, number",
    [(None, 1), ("accuracy", 1), ("ece", 3), ("ece<=0.1", 3), ("ece<=0.25", 1), ("3", 3), ("ece<=0.01", None)],
)
def test_pick_takes_the_point_of_the_front_it_names(text, number):
    front = tune_objectives.front(POINTS, OBJECTIVES)
    pick = accepted(f"--pick {text}", tune_objectives.parse_pick, text, OBJECTIVES)
    chosen = accepted(f"--pick {text} of a point on the front", tune_objectives.picked, front, OBJECTIVES, pick)
    assert (chosen[0] if chosen else None) == number


@pytest.mark.parametrize("objectives", [("accuracy", "ece"), ("nll", "ece")])
def test_of_points_alike_on_the_objective_a_pick_takes_the_earliest_trial(objectives):
    tied = [(4, [0.3, 0.1]), (7, [0.3, 0.1])]  # two trials that scored the same: both on the front
    assert tune_objectives.picked(tied, objectives, None)[0] == 4  # the first, as max() keeps for one objective


def test_a_pick_off_the_front_or_of_another_objective_is_refused():
    front = tune_objectives.front(POINTS, OBJECTIVES)
    with pytest.raises(DropcliError, match=re.escape("trial 0 is not on the front (1, 3)")):
        tune_objectives.picked(front, OBJECTIVES, tune_objectives.parse_pick("0", OBJECTIVES))
    with pytest.raises(DropcliError, match="an objective of the study"):
        tune_objectives.parse_pick("nll", OBJECTIVES)


def test_a_study_of_accuracy_and_ece_prints_its_front_and_picks_by_the_rule(in_tmp, invoke, small_args):
    args = [*small_args(epochs=1), *SEARCH, "--objective", "accuracy,ece", "--trials", 4, "--sampler", "random"]
    result = invoke("tune", *args, "--final-seeds", 2, "--pareto", "front.png", "--pick", "ece", "-q")
    assert result.exit_code == 0, result.output
    assert "the Pareto front of accuracy, ece" in result.output and "* best.yaml: the best ece on the front" in result.output
    assert re.search(
        r"final, every objective on the test set over 2 seeds: accuracy \d\.\d{4} ± \d\.\d{4}, nll [\d.]+ ± [\d.]+, ece",
        result.output,
    )
    assert (in_tmp / "front.png").stat().st_size > 0
    directory = in_tmp / "runs" / "tune-default"
    from dropcli.experiments.tune_results import found
    from dropcli.experiments.tune_stored import stored_search

    search = stored_search([], {}, {"storage": None, "study": None, "run_dir": directory}, print)
    assert search.objectives == OBJECTIVES  # the study keeps its objectives
    from dropcli.experiments.tune import open_study

    rows = found(open_study(search, None, None), search=search).front
    lowest = min(rows, key=lambda row: row.objective_values[1])
    best = (directory / "best.yaml").read_text()
    assert f"# Best: trial {lowest.number}, validation accuracy" in best and "picked as the best ece on the front" in best
    trained = invoke("train", "-c", directory / "best.yaml", "--run-dir", in_tmp / "again", "-q")
    assert trained.exit_code == 0, trained.output
    # --summary alone repeats the final seeds' result, every objective included.
    shown = invoke("tune", "--summary", "--run-dir", directory, "--pick", "ece", "--slice", "s.pdf", "--contour", "c.svg")
    assert shown.exit_code == 0, shown.output
    final_lines = [line.split(" (runs in")[0] for line in result.output.splitlines() if line.startswith("final")]
    assert len(final_lines) == 2 and all(line in shown.output for line in final_lines), shown.output
    assert (in_tmp / "s.pdf").stat().st_size > 0 and (in_tmp / "c.svg").stat().st_size > 0
    # The same study, read again with another rule: best.yaml follows it.
    again = invoke("tune", *args, "--pick", "accuracy", "-q")
    assert again.exit_code == 0 and "this command trained 0 trials" in again.output
    most_accurate = max(rows, key=lambda row: row.objective_values[0])
    assert f"# Best: trial {most_accurate.number}," in (directory / "best.yaml").read_text()


def test_each_trial_begins_with_the_best_so_far_on_the_first_objective(in_tmp, invoke, small_args):
    result = invoke("tune", *small_args(epochs=1), *SEARCH, "--objective", "nll,accuracy", "--trials", 2, "--sampler", "random")
    assert result.exit_code == 0, result.output
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(in_tmp / "runs" / "tune-default" / "study.journal")))
    first = optuna.load_study(study_name="default", storage=storage).trials[0]
    assert f"trial 2 of 2 (#1): best val nll {first.values[0]:.4f} (#0)" in result.output, result.output


def test_a_study_of_nll_alone_is_pruned_on_it_and_keeps_the_lowest(in_tmp, invoke, small_args):
    result = invoke("tune", *small_args(epochs=2), *SEARCH, "--objective", "nll", "--trials", 3, "--pruner", "median", "-q")
    assert result.exit_code == 0, result.output
    best = (in_tmp / "runs" / "tune-default" / "best.yaml").read_text()
    value = float(re.search(r"validation nll (\d\.\d+)", best).group(1))
    losses = []
    for summary in (in_tmp / "runs" / "tune-default").glob("trial-*/summary.json"):
        record = json.loads(summary.read_text())
        if record["status"] == "finished":
            losses.append(record["final"]["val_loss"])
    assert value == pytest.approx(min(losses), abs=1e-4)
    assert "by validation nll" in result.output and re.search(rf"best: trial \d+, val nll {value:.4f}", result.output), (
        result.output
    )
    # Each finished trial's scores (calibration's, in float64, from its checkpoint) agree with the
    # epoch loop's own validation loss and accuracy: the same model scored two ways.
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal = JournalStorage(JournalFileBackend(str(in_tmp / "runs" / "tune-default" / "study.journal")))
    for trial in optuna.load_study(study_name="default", storage=journal).trials:
        if trial.state.name == "COMPLETE":
            record = json.loads((in_tmp / "runs" / "tune-default" / trial.user_attrs["run"] / "summary.json").read_text())
            assert trial.value == record["final"]["val_loss"]
            scores = trial.user_attrs.get("scores")
            assert scores is not None, f"trial {trial.number} kept no scores"
            assert scores["nll"] == pytest.approx(record["final"]["val_loss"], rel=1e-4)
            assert scores["accuracy"] == pytest.approx(record["final"]["val_acc"], abs=1e-9)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--objective", "accuracy,ece", "--pruner", "asha"], "Optuna cannot prune a study of several objectives"),
        (["--objective", "ece", "--pruner", "median"], "ece, scored once after a trial's last epoch"),
        (["--objective", "f1"], "--objective 'f1': 'f1' is not an objective; choose from accuracy, nll, ece, aece"),
        (["--objective", "ece,ece"], "name each objective once"),
        (["--objective", "accuracy,ece", "--pick", "brier<=0.1"], "give a trial number of the front"),
    ],
)
def test_what_cannot_be_searched_is_one_line(in_tmp, invoke, small_args, extra, words):
    result = invoke("tune", *small_args(), *SEARCH, "--trials", 2, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (in_tmp / "runs").exists()


def test_a_pick_reads_back_as_its_rule_and_its_rule_is_said_in_words():
    assert tune_objectives.parse_pick("ece<=0.1", OBJECTIVES) == tune_objectives.Pick(objective="ece", bound=0.1)
    assert tune_objectives.parse_pick(" 3 ", OBJECTIVES) == tune_objectives.Pick(number=3)
    assert tune_objectives.Pick().text(OBJECTIVES) == "the best accuracy on the front"
    assert tune_objectives.Pick(objective="ece").text(OBJECTIVES) == "the best ece on the front"
    rule = tune_objectives.Pick(objective="ece", bound=0.03).text(OBJECTIVES)
    assert rule == "the best accuracy on the front with ece <= 0.03"
    assert tune_objectives.Pick(number=3).text(OBJECTIVES) == "trial 3, named by --pick"


def test_a_bad_pick_says_what_to_give_with_an_example_of_the_studys_own():
    with pytest.raises(DropcliError, match=re.escape("e.g. --pick ece<=0.03")):
        tune_objectives.parse_pick("nll", OBJECTIVES)
    line = refusal(tune_objectives.parse_pick, "ece<=1e-2.5", OBJECTIVES)  # one line, never Python's own ValueError
    assert "the bound must be a number" in line
    assert line.endswith("e.g. --pick ece<=0.03")  # the objective it named, with a number


def test_a_point_as_good_on_one_objective_and_better_on_the_other_takes_it_off_the_front():
    # Trials 0 and 1 tie on accuracy; 1 has the lower ECE, so it dominates 0. Trial 2 trades one for the other.
    points = [(0, [0.90, 0.05]), (1, [0.90, 0.03]), (2, [0.91, 0.06])]
    assert [number for number, _ in tune_objectives.front(points, OBJECTIVES)] == [1, 2]
    # By the first objective, a tie keeps the earlier of the tied points.
    assert tune_objectives.picked([(3, [0.9, 0.05]), (4, [0.9, 0.04])], OBJECTIVES, None)[0] == 3


def test_the_pruner_is_asha_by_default_where_the_objective_can_be_pruned():
    assert tune_objectives.pruner_for(("accuracy",), None) == "asha"  # the default bench-tune chose
    assert tune_objectives.pruner_for(("nll",), "median") == "median"
    assert tune_objectives.pruner_for(("accuracy", "ece"), None) == "none"  # several objectives: no pruner can judge


def test_a_bad_pick_is_answered_with_an_example_of_the_studys_last_objective():
    for objectives, example in ((("accuracy",), "accuracy"), (("accuracy", "nll", "ece"), "ece")):
        message = refusal(tune_objectives.parse_pick, "brier", objectives)
        assert message.endswith(f"e.g. --pick {example}<=0.03"), message


def test_a_pick_by_number_finds_trials_past_256():
    points = [(300, [0.9, 0.05]), (301, [0.8, 0.02])]
    number = int("301")  # as --pick gives it: an int of its own, equal to the front's 301
    chosen = accepted(
        "--pick 301, on the front,", tune_objectives.picked, points, OBJECTIVES, tune_objectives.Pick(number=number)
    )
    assert chosen == (301, [0.8, 0.02])
