"""tune's results read from a study: which key matters, in the objective's direction."""

import dataclasses
import math
import random

import pytest

from dropcli.experiments.tune_results import _importances

optuna = pytest.importorskip("optuna")


def two_objective_study(first_direction: str):
    """Forty trials of keys x and y: the best values of the first objective all lie at x near 0.9,
    the worst at y near 0.1, so which key matters depends on which end is the good one. The second
    objective is best at y near 0.5: a ranking by both (Optuna's own for several objectives, when
    given no target) would find y important too."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    study = optuna.create_study(directions=[first_direction, "minimize"])
    draw = random.Random(0)
    space = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    for _ in range(40):
        x, y = draw.random(), draw.random()
        accuracy = 0.8 + 0.1 * math.exp(-(((x - 0.9) / 0.05) ** 2)) - 0.3 * math.exp(-(((y - 0.1) / 0.05) ** 2))
        value = accuracy if first_direction == "maximize" else 1 - accuracy  # an error rate: lower is better
        values = [value, 1 - math.exp(-(((y - 0.5) / 0.1) ** 2)) + 0.01 * draw.random()]
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=values, params={"x": x, "y": y}, distributions=space))
    return study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_importance_in_a_study_of_several_objectives_is_the_first_objectives_in_its_direction(direction):
    study = two_objective_study(direction)
    importances = _importances(study, [None] * len(study.trials))
    assert importances is not None and set(importances) == {"x", "y"}
    assert importances["x"] > importances["y"], importances  # what reaches the good end is x, not y


def test_importance_is_withheld_below_its_minimum_of_complete_trials_and_given_at_it():
    study = two_objective_study("maximize")
    # The number docs/tune.md and --figure's help promise: withheld below 8 complete trials.
    assert _importances(study, [None] * 7) is None
    assert _importances(study, [None] * 8) is not None


def test_the_final_seeds_scores_are_a_mean_and_a_spread_with_none_for_one_seed():
    from dropcli.experiments import tune_objectives
    from dropcli.experiments.tune_results import mean_and_spread

    scores = [{name: 0.80 + seed / 100 for name in tune_objectives.DIRECTIONS} for seed in range(3)]
    mean, spread = mean_and_spread(scores)["accuracy"]
    assert mean == pytest.approx(0.81) and spread == pytest.approx(0.01)  # sample standard deviation
    assert mean_and_spread(scores[:1])["accuracy"] == (0.80, None)


def test_the_rungs_agreement_is_read_from_the_complete_trials_only():
    """Epoch 2 ranks the four complete trials as their end does (+1), epoch 1 in reverse (-1); the
    pruned trial, stopped at epoch 2 with the best value there, is no final value to agree with."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from dropcli.config import Config
    from dropcli.experiments.tune_results import found

    study = optuna.create_study(direction="maximize")
    space = {"params": {"x": 0.5}, "distributions": {"x": FloatDistribution(0, 1)}}
    space["user_attrs"] = {"config": dataclasses.asdict(Config())}  # what a trial keeps of its run
    for final in (0.70, 0.80, 0.85, 0.90):
        curve = {1: 1.6 - final, 2: final - 0.1, 4: final}
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=final, intermediate_values=curve, **space))
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.1, 2: 0.95}, **space))
    rungs = {r.epoch: (r.trials, r.spearman) for r in found(study, rung_epochs=[1, 2]).rungs}
    assert rungs[1][0] == rungs[2][0] == 4
    assert rungs[2][1] == pytest.approx(1.0) and rungs[1][1] == pytest.approx(-1.0)


def test_best_yaml_names_every_objectives_value_of_the_best_trial():
    from dropcli.experiments.tune_results import _values_text

    assert _values_text(("accuracy", "ece"), {"value": 0.9, "values": [0.9, 0.05]}) == "accuracy 0.9000, ece 0.0500"
    assert _values_text(("accuracy",), {"value": 0.9}) == "accuracy 0.9000"  # a study from before several objectives
