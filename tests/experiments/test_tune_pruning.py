"""tune's pruning: the grace period, the pruners' settings, never at the last epoch, the rungs'
agreement with the final value, and a continued trial judged exactly as one never interrupted."""

from pathlib import Path

import pytest

from conftest import accepted, only
from dropcli import runs
from dropcli.config import load_config
from dropcli.errors import DropcliError
from dropcli.experiments import tune_pruning
from dropcli.experiments.tune_pruning import Pruning

optuna = pytest.importorskip("optuna")

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--space", "model.hidden=32x32,64"]


def study_trials(journal, name="default"):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))).get_trials()


@pytest.mark.parametrize(
    "keys, epochs, grace",
    [
        ({"optim.momentum_final": 0.99, "optim.momentum_epochs": 15}, 40, 16),  # after the ramp (best-any's base)
        ({"optim.momentum_final": 0.99, "optim.momentum_epochs": 15}, 100, 25),  # not before a quarter
        ({"optim.warmup_epochs": 5}, 12, 6),
        ({}, 10, 3),
        ({"optim.momentum_epochs": 15}, 8, 2),  # no momentum_final: no ramp
    ],
)
def test_the_default_grace_follows_the_ramp_and_a_quarter_of_the_epochs(keys, epochs, grace):
    config = load_config(overrides=[f"{key}={value}" for key, value in keys.items()])
    assert tune_pruning.grace_epochs(Pruning(), config, epochs) == grace


def test_a_grace_is_epochs_or_a_fraction_of_them():
    config = load_config()
    assert tune_pruning.grace_epochs(Pruning(grace=25), config, 100) == 25
    assert tune_pruning.grace_epochs(Pruning(grace=0.3), config, 40) == 12
    # From a plan: a fraction is taken as one, not refused as epochs that are not whole.
    _, pruning = accepted(
        "a fraction of the epochs", tune_pruning._settings, {"name": "asha", "grace": 0.25}, {}, Path("plan.yaml")
    )
    assert pruning.grace == 0.25


@pytest.mark.parametrize(
    "name, kind",
    [("median", "MedianPruner"), ("asha", "SuccessiveHalvingPruner"), ("hyperband", "HyperbandPruner"), ("none", "NopPruner")],
)
def test_each_pruner_named_is_optunas_own(name, kind):
    pruner = tune_pruning.pruner(optuna, name, Pruning(grace=2), load_config(), 8)
    assert isinstance(pruner, getattr(optuna.pruners, kind))


@pytest.mark.parametrize("grace", [0, -0.5, -3])
def test_a_plans_grace_of_zero_or_less_is_refused(grace):
    with pytest.raises(DropcliError, match="grace"):
        tune_pruning._settings({"name": "asha", "grace": grace}, {}, Path("plan.yaml"))


def test_the_median_pruner_judges_once_five_trials_are_complete():
    """Optuna's default, as docs/tune.md says: with five complete trials a bad one is stopped at the
    grace period, with four it goes on."""
    for complete, pruned in ((4, False), (5, True)):
        pruner = tune_pruning.pruner(optuna, "median", Pruning(grace=2), load_config(), 6)
        study = optuna.create_study(direction="maximize", pruner=pruner)
        for _ in range(complete):
            trial = study.ask()
            for epoch in range(1, 7):
                trial.report(0.8, epoch)
            study.tell(trial, 0.8)
        bad = study.ask()
        bad.report(0.1, 1)
        bad.report(0.1, 2)
        assert bad.should_prune() == pruned, complete


@pytest.mark.parametrize("name", ["asha", "hyperband", "median"])
def test_no_trial_is_pruned_before_the_grace_period(name):
    """The worst trial goes on until the grace period's epoch, and is stopped there (hyperband: if
    its bracket's first rung is there; the other's is at the last epoch, never judged)."""
    config = load_config()
    pruner = tune_pruning.pruner(optuna, name, Pruning(grace=3, reduction=2), config, 6)
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    for good in range(8):  # complete trials, good at every epoch
        trial = study.ask()
        for epoch in range(1, 7):
            trial.report(0.8 + good / 100, epoch)
            trial.should_prune()
        study.tell(trial, 0.8 + good / 100)
    worst = study.ask()
    asked = []
    for epoch in range(1, 6):
        worst.report(0.1, epoch)
        asked.append(worst.should_prune())
    assert asked[:2] == [False, False]
    assert asked[2] or name == "hyperband"


def test_the_last_epoch_is_never_judged(in_tmp, invoke, small_args, monkeypatch):
    monkeypatch.setattr(
        optuna.trial.Trial, "should_prune", lambda trial: True
    )  # a pruner that stops everything it is asked about
    result = invoke("tune", *small_args(epochs=1), *SEARCH, "--trials", 2, "--pruner", "median", "-q")
    assert result.exit_code == 0, result.output
    assert [t.state.name for t in study_trials(in_tmp / "runs" / "tune-default" / "study.journal")] == ["COMPLETE"] * 2


def test_a_trial_never_scores_the_test_set(in_tmp, invoke, small_args):
    result = invoke("tune", *small_args(epochs=2), *SEARCH, "--trials", 1, "--pruner", "none", "-q")
    assert result.exit_code == 0, result.output
    trial = in_tmp / "runs" / "tune-default" / "trial-0000"
    assert all(m["test_acc"] is None and m["test_loss"] is None for m in runs.read_metrics(trial))
    assert runs.read_summary(trial / runs.SUMMARY_FILE)["data"]["test"] == 0
    listed = invoke("runs", in_tmp / "runs" / "tune-default")  # the listing and a run's epochs show no test numbers
    shown = invoke("runs", trial)
    assert listed.exit_code == 0 and shown.exit_code == 0, listed.output + shown.output


def test_a_plans_pruner_mapping_sets_grace_reduction_and_bootstrap(in_tmp, invoke, small_args):
    plan = in_tmp / "plan.yaml"
    plan.write_text(
        "space:\n  optim.lr: '0.001:1:log'\ntrials: 3\nsampler: random\n"
        "pruner: {name: asha, grace: 2, reduction: 2, bootstrap: 1}\n"
    )
    result = invoke("tune", "--plan", plan, *small_args(epochs=4), "--set", "data.val_split=0.2")
    assert result.exit_code == 0, result.output
    best = (in_tmp / "runs" / "tune-default" / "best.yaml").read_text()
    assert "pruner: asha (grace 2 epochs, reduction 2, bootstrap 1)" in best
    assert "rungs against the final val acc" in result.output and "epoch 2:" in result.output
    for trial in study_trials(in_tmp / "runs" / "tune-default" / "study.journal"):
        assert trial.state.name == "COMPLETE" or trial.last_step >= 2  # none judged before the grace period
    # --grace on the command line overrides the plan's
    again = invoke("tune", "--plan", plan, *small_args(epochs=4), "--set", "data.val_split=0.2", "--grace", 3, "--summary")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--pruner", "asha", "--grace", 4], "the grace must end before it"),
        (["--pruner", "asha", "--grace", 2.5], "a whole number"),
        (["--pruner", "median", "--reduction", 3], "--reduction is a setting of the asha and hyperband pruners"),
        (["--pruner", "asha", "--reduction", 1], "N a whole number >= 2"),
    ],
)
def test_bad_pruner_settings_are_one_line_and_exit_2(in_tmp, invoke, small_args, extra, words):
    result = invoke("tune", *small_args(epochs=4), *SEARCH, "--trials", 2, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (in_tmp / "runs").exists()


def test_spearman_against_a_hand_count():
    assert tune_pruning.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert tune_pruning.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): Pearson of the ranks
    assert tune_pruning.spearman([0.1, 0.5, 0.5, 0.9], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)


def test_a_rung_or_an_end_where_every_trial_ties_has_no_correlation_and_no_division_by_zero():
    # The summary shows a rung's agreement for any study; one of ties must read "none", not crash it.
    # A rung of ties; every final value the same; both.
    for xs, ys in [([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [0.8, 0.8, 0.8]), ([2, 2, 2], [5, 5, 5])]:
        try:
            assert tune_pruning.spearman(xs, ys) is None
        except ZeroDivisionError:
            pytest.fail(f"spearman({xs}, {ys}) divided by zero")


def test_spearman_at_its_edges():
    assert tune_pruning.spearman([1, 2], [1, 2]) is None  # two trials say nothing
    assert tune_pruning.spearman([1, 2, 3], [3, 1, 2]) == pytest.approx(-0.5)  # three do
    # Ties among values computed apart (equal, not the same object), ranked at their mean.
    tied = [x / 10 for x in (5, 9, 5, 7)]
    assert tune_pruning._ranks(tied) == [0.5, 3.0, 0.5, 2.0]
    assert tune_pruning._ranks([0.8, 0.8, 0.8]) == [1.0, 1.0, 1.0]  # all tied: the middle rank
    many = [(i * 37) % 301 for i in range(301)]  # more trials than Python caches small ints for
    assert sorted(tune_pruning._ranks(many)) == [float(i) for i in range(301)]
    assert tune_pruning.spearman(many, many) == pytest.approx(1)


def test_the_pruner_does_not_see_interrupted_trials_but_sees_the_rest():
    from types import SimpleNamespace

    def trial(state, interrupted=False):
        return SimpleNamespace(state=SimpleNamespace(name=state), user_attrs={"interrupted": True} if interrupted else {})

    trials = [trial("COMPLETE"), trial("FAIL", interrupted=True), trial("FAIL"), trial("PRUNED"), trial("RUNNING")]
    inner = SimpleNamespace(get_all_trials=lambda study_id, deepcopy=True, states=None: trials)
    seen = tune_pruning._Trials(inner).get_all_trials(0)
    assert [t.state.name for t in seen] == ["COMPLETE", "FAIL", "PRUNED", "RUNNING"] and trials[1] not in seen


@pytest.mark.parametrize(
    "entry, given, words",
    [
        ({"name": "asha", "grace": 1.5}, {}, "plan.yaml: pruner grace 1.5: epochs are a whole number"),
        ({"name": "asha", "bootstrap": True}, {}, "plan.yaml: pruner bootstrap True: a number of trials"),
        ({"name": "asha", "bootstrap": -1}, {}, "plan.yaml: pruner bootstrap -1"),
        ({"name": "asha", "reduction": 2.5}, {}, "plan.yaml: pruner reduction 2.5: keep the top 1/N at each rung"),
        ({"name": "asha", "reduction": True}, {}, "plan.yaml: pruner reduction True: keep the top 1/N"),
        ({"name": "asha"}, {"grace": 2.5}, "--grace 2.5: epochs are a whole number"),  # the flag's, named as a flag
    ],
)
def test_a_pruners_bad_settings_are_named_where_they_were_given(entry, given, words):
    with pytest.raises(DropcliError, match=words):
        tune_pruning._settings(entry, given, Path("plan.yaml"))


def test_a_pruners_settings_from_a_plan_and_the_flags_over_them():
    name, pruning = tune_pruning._settings({"name": "asha", "grace": 2, "bootstrap": 1}, {"reduction": 4}, Path("plan.yaml"))
    assert (name, pruning) == ("asha", Pruning(grace=2, reduction=4, bootstrap=1))
    assert tune_pruning._settings("median", {}, None) == ("median", Pruning(grace=None, reduction=3, bootstrap=0))


def rungs_of(trial) -> dict:
    return {key: value for key, value in trial.system_attrs.items() if key.startswith("completed_rung")}


def test_a_continued_trial_reports_every_epoch_as_one_never_interrupted(in_tmp, invoke, small_args, monkeypatch):
    """Interrupted after its rung at epoch 2 (epoch 3 saved, not yet judged) and continued: its rungs
    hold epochs 1 and 2's values, as the same trial's trained in one go, and its epochs count once."""
    from dropcli.experiments import tune_search

    args = [*small_args(epochs=5), *SEARCH, "--trials", 1, "--pruner", "asha", "--grace", 1, "--reduction", 2, "-q"]
    assert invoke("tune", *args, "--run-dir", "whole").exit_code == 0
    whole = only(study_trials(in_tmp / "whole" / "study.journal"))

    real = tune_search._Judge.epoch_finished

    def interrupt_at_epoch_3(judge, metrics):
        if metrics.epoch == 3:
            raise KeyboardInterrupt
        real(judge, metrics)

    monkeypatch.setattr(tune_search._Judge, "epoch_finished", interrupt_at_epoch_3)
    assert invoke("tune", *args, "--run-dir", "parts").exit_code == 130
    monkeypatch.setattr(tune_search._Judge, "epoch_finished", real)
    resumed = invoke("tune", *args, "--run-dir", "parts")
    assert resumed.exit_code == 0, resumed.output
    first, retry = study_trials(in_tmp / "parts" / "study.journal")
    assert retry.user_attrs["retry_of"] == 0 and retry.state.name == "COMPLETE"
    assert retry.intermediate_values == whole.intermediate_values
    assert rungs_of(retry) == rungs_of(whole) and len(rungs_of(whole)) == 3  # rungs at epochs 1, 2 and 4
    metrics = runs.read_metrics(in_tmp / "parts" / "trial-0000")
    assert rungs_of(retry)["completed_rung_1"] == metrics[1]["val_acc"]  # epoch 2's, not the last epoch's
    assert "compute: 5 epochs trained in all" in resumed.output  # 3 by the interrupted trial, 2 by its continuation


def test_the_pruners_text_says_epoch_for_one_and_epochs_for_more():
    config = load_config(overrides=["train.epochs=8"])
    assert Pruning(grace=1).text("median", config, 8) == "median (grace 1 epoch)"
    assert Pruning(grace=2, reduction=4, bootstrap=2).text("asha", config, 8) == "asha (grace 2 epochs, reduction 4, bootstrap 2)"
    assert Pruning(grace=2).text("hyperband", config, 8) == "hyperband (grace 2 epochs, reduction 3)"  # no bootstrap said


def test_a_studys_stored_pruner_settings_read_back_and_an_old_studys_judged_from_epoch_1():
    from dropcli.experiments.tune_stored import _pruning

    assert _pruning(Pruning(grace=5, reduction=4).stored()) == Pruning(grace=5, reduction=4, bootstrap=0)
    assert _pruning({"grace": None, "reduction": 2}) == Pruning(grace=None, reduction=2, bootstrap=0)
    assert _pruning({}) == Pruning(grace=1)  # stored before the settings were kept


def test_the_rungs_a_trial_is_judged_at_before_its_last_epoch():
    config = load_config(overrides=["train.epochs=20"])
    assert tune_pruning.rung_epochs("none", Pruning(), config, 20) == [5, 10, 15]  # the quarters, shown for none
    assert tune_pruning.rung_epochs("median", Pruning(grace=5), config, 20) == [5]
    assert tune_pruning.rung_epochs("median", Pruning(grace=20), config, 20) == []  # never at the last epoch
    assert tune_pruning.rung_epochs("median", Pruning(grace=30), config, 20) == []  # nor after it
    assert tune_pruning.rung_epochs("asha", Pruning(grace=2, reduction=3), config, 20) == [2, 6, 18]
    assert tune_pruning.rung_epochs("hyperband", Pruning(grace=4, reduction=2), config, 16) == [4, 8]


def test_the_share_of_trials_expected_to_finish_under_each_pruner():
    config = load_config(overrides=["train.epochs=20"])
    assert tune_pruning.complete_fraction("none", Pruning(), config, 20) == 1.0
    assert tune_pruning.complete_fraction("median", Pruning(grace=5), config, 20) == 0.5
    assert tune_pruning.complete_fraction("asha", Pruning(grace=2, reduction=3), config, 20) == pytest.approx(1 / 27)  # 3 rungs
    assert tune_pruning.complete_fraction("hyperband", Pruning(grace=5, reduction=2), config, 20) == pytest.approx(1 / 4)


def test_tpes_random_start_expects_ten_complete_trials_within_a_quarter_of_the_budget():
    from dropcli.experiments import tune_sampling

    config = load_config(overrides=["train.epochs=20"])
    assert tune_sampling.startup_trials("none", Pruning(), config, 20, trials=200) == 10
    assert tune_sampling.startup_trials("median", Pruning(grace=5), config, 20, trials=200) == 20  # half finish
    quarter = tune_sampling.startup_trials("asha", Pruning(grace=2, reduction=3), config, 20, trials=101)
    assert quarter == 25 and isinstance(quarter, int)  # 270 wanted, a quarter of 101 allowed
    assert tune_sampling.startup_trials("asha", Pruning(grace=2, reduction=3), config, 20, trials=20) == 10
    # One rung of reduction 5: a fifth finish, 50 trials for 10 complete (10 // 0.2 is 49.0 in floats)
    assert tune_sampling.startup_trials("asha", Pruning(grace=4, reduction=5), config, 20, trials=1000) == 50


def test_tpe_models_the_keys_jointly_and_lies_about_running_trials():
    from dropcli.experiments import tune_sampling

    sampler = tune_sampling.tpe(pytest.importorskip("optuna"), seed=0, startup=12)
    assert sampler._multivariate and sampler._constant_liar and sampler._n_startup_trials == 12


def test_a_space_over_train_epochs_sets_the_most_epochs_a_trial_trains_however_the_key_is_spelled():
    from types import SimpleNamespace

    config = load_config(overrides=["train.epochs=3"])
    key = "".join(["train.", "epochs"])  # parsed from --space: equal to "train.epochs", not the same object
    assert tune_pruning.max_epochs(config, [SimpleNamespace(key=key, values=(2, 6))]) == 6
    assert tune_pruning.max_epochs(config, [SimpleNamespace(key="optim.lr", values=(0.1, 0.2))]) == 3
