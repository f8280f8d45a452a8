"""dropcli tune: a tiny search on the stand-in data prunes, continues when rerun, writes a config
that train takes; processes share one storage; bad input is one line and exit 2."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import assert_exactly, only, refusal, wait_for_a_trained_epoch
from dropcli import runs

pytest.importorskip("optuna")

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--space", "model.hidden=32x32,64"]


def study_trials(journal: Path, name: str = "default"):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_a_tiny_tune_prunes_and_writes_a_config_that_train_takes(in_tmp, invoke, small_args):
    result = invoke(
        "tune",
        *small_args(epochs=3),
        *SEARCH,
        "--trials",
        6,
        "--pruner",
        "asha",
        "--sampler",
        "random",
        "--figure",
        "t.svg",
        "--final-seeds",
        2,
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"final: 2 seeds on the whole training set: test acc \d\.\d{4} ± \d\.\d{4}", result.output)
    directory = in_tmp / "runs" / "tune-default"
    trials = study_trials(directory / "study.journal")
    states = [t.state.name for t in trials]
    assert len(trials) == 6 and "PRUNED" in states and "COMPLETE" in states
    for trial in trials:  # each trial is a normal run, and a pruned one says so in its summary
        summary = json.loads((directory / trial.user_attrs["run"] / runs.SUMMARY_FILE).read_text())
        assert summary["status"] == {"PRUNED": "pruned", "COMPLETE": "finished"}[trial.state.name]
        assert summary["epochs"] == trial.user_attrs["epochs"] == (3 if trial.state.name == "COMPLETE" else trial.last_step)
    assert (in_tmp / "t.svg").stat().st_size > 0
    complete = states.count("COMPLETE")  # under 8: the importance of each key is withheld, in one line
    assert f"importance of each key withheld: it rests on {complete} complete trial" in result.output
    listed = invoke("runs", directory, "--status", "pruned", "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == states.count("PRUNED")
    best = directory / "best.yaml"
    assert "validation accuracy" in best.read_text() and "pruner: asha" in best.read_text()
    trained = invoke("train", "-c", best, "--run-dir", in_tmp / "again", "-q")
    assert trained.exit_code == 0, trained.output
    summary = json.loads((in_tmp / "again" / runs.SUMMARY_FILE).read_text())
    assert summary["data"]["val"] == 0  # the best settings train on the whole training set
    final = json.loads((directory / "final" / "seed1" / runs.SUMMARY_FILE).read_text())
    assert final["data"]["val"] == 0 and final["seed"] == 1
    for command in (["plot", directory, "-o", "c.png"], ["evaluate", directory], ["predict", directory, "--index", 0]):
        result = invoke(*command)  # the study directory holds runs and is none: the line names one to give
        assert result.exit_code == 2 and f"it holds 6 runs: name one, e.g. {directory / 'trial-0000'}" in result.stderr


def test_a_rerun_continues_the_study_and_more_trials_extend_it(in_tmp, invoke, small_args, fake_data):
    plan = in_tmp / "plan.yaml"
    plan.write_text(
        "config: {data: {val_split: 0.2, train_limit: 600, test_limit: 200, root: " + str(fake_data) + "}, "
        "train: {epochs: 2}, device: cpu}\n"
        "space: {optim.lr: '0.01:1:log', model.dropout_1: [0.2, 0.5]}\ntrials: 3\npruner: median\nsampler: random\n"
    )
    first = invoke("tune", "--plan", plan, "-q")
    assert first.exit_code == 0, first.output
    again = invoke("tune", "--plan", plan, "-q")
    assert again.exit_code == 0 and "this command trained 0 trials" in again.output
    # A budget below what the study holds: nothing more (--timeout: a search that would not stop is cut short).
    fewer = invoke("tune", "--plan", plan, "--trials", 2, "--timeout", 20, "-q")
    assert fewer.exit_code == 0 and "this command trained 0 trials" in fewer.output, fewer.output
    more = invoke("tune", "--plan", plan, "--trials", 5, "-q")
    assert more.exit_code == 0 and "this command trained 2 trials" in more.output
    shown = invoke("tune", "--plan", plan, "--trials", 9, "--summary")  # the study as it stands: nothing trained
    assert shown.exit_code == 0 and "this command trained 0 trials" in shown.output and "best:" in shown.output
    trials = study_trials(in_tmp / "runs" / "tune-default" / "study.journal")
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert len({t.user_attrs["run"] for t in trials}) == 5
    # The study keeps its config and space: its directory alone is enough for --summary.
    alone = invoke("tune", "--summary", "--run-dir", "runs/tune-default")
    assert alone.exit_code == 0, alone.output
    assert alone.output.splitlines()[-2] == shown.output.splitlines()[-2]  # the same best line
    best = (in_tmp / "runs" / "tune-default" / "best.yaml").read_text()
    assert "optim.lr=0.01:1:log" in best and "pruner: median (grace 1 epoch); sampler: random" in best
    refused = invoke("tune", "--summary", "--run-dir", "runs/tune-default", "--study", "other")
    assert refused.exit_code == 2 and "--study other: no such study" in refused.stderr and "it holds default" in refused.stderr


def test_a_study_outlives_new_config_keys_but_not_a_changed_config(in_tmp, invoke, small_args):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    args = [*small_args(epochs=1), *SEARCH, "--pruner", "none", "-q"]
    assert invoke("tune", *args, "--trials", 1).exit_code == 0
    journal = in_tmp / "runs" / "tune-default" / "study.journal"
    study = optuna.load_study(study_name="default", storage=JournalStorage(JournalFileBackend(str(journal))))
    spec = study.user_attrs["dropcli"]
    del spec["config"]["data.val_seed"]  # as a dropcli from before data.val_seed stored it
    study.set_user_attr("dropcli", spec)
    more = invoke("tune", *args, "--trials", 2)
    assert more.exit_code == 0 and "this command trained 1 trial" in more.output, more.output
    changed = invoke("tune", *args, "--trials", 3, "--set", "optim.momentum=0.5")
    assert changed.exit_code == 2 and "was started with another config or space" in changed.output, changed.output
    assert len(study_trials(journal)) == 2


def test_one_epoch_is_said_in_the_singular(in_tmp, invoke, small_args):
    result = invoke("tune", *small_args(epochs=1), *SEARCH, "--trials", 1, "--pruner", "none")
    assert result.exit_code == 0, result.output
    best = (in_tmp / "runs" / "tune-default" / "best.yaml").read_text()
    assert "after 1 epoch: val acc" in result.output and "after 1 epoch (data.val_split" in best
    assert "1 epochs" not in result.output + best
    trained = invoke("train", *small_args(epochs=1), "--run-dir", in_tmp / "one")
    assert trained.exit_code == 0 and "1 epoch -> " in trained.output and "1 epochs" not in trained.output


def test_the_time_left_comes_from_the_trials_that_ended_in_any_session():
    from datetime import timedelta
    from types import SimpleNamespace

    from dropcli.experiments.tune_search import _progress

    def trial(number, state, seconds, value=None):
        return SimpleNamespace(number=number, state=SimpleNamespace(name=state), duration=timedelta(seconds=seconds), value=value)

    ended = [trial(0, "COMPLETE", 600, 0.8), trial(1, "PRUNED", 60), trial(2, "PRUNED", 30)]
    running = trial(3, "RUNNING", 0)  # no duration yet: not counted
    failed = trial(4, "FAIL", 5000)  # a crash or an interruption says nothing of a trial's pace
    assert _progress(ended[:2], 3, 10, 2, workers=1).remaining_seconds is None  # two trials say too little
    progress = _progress([*ended, running, failed], 5, 10, 4, workers=1)
    assert progress.remaining_seconds == pytest.approx(230 * 6)  # the mean of 600, 60 and 30 s, six trials left
    assert _progress([*ended, running], 5, 10, 4, workers=2).remaining_seconds == pytest.approx(230 * 3)
    assert _progress([*ended, running], 6, 10, 5, workers=4).remaining_seconds == pytest.approx(287.5)  # 230 * 5 / 4
    assert (progress.best_value, progress.best_number, progress.pruned) == (0.8, 0, 2)
    more = [*ended, trial(5, "PRUNED", 30)]  # four ended: the mean of all four, not only of three
    assert _progress(more, 6, 10, 6, workers=1).remaining_seconds == pytest.approx(180 * 5)
    odd = [*ended, trial(5, "PRUNED", 31)]  # a mean of 180.25 s: not whole
    assert _progress(odd, 6, 10, 6, workers=1).remaining_seconds == pytest.approx(180.25 * 5)
    assert _progress([*more, running, failed], 7, 10, 7, workers=1).pruned == 3  # neither failed nor complete ones


def test_the_best_so_far_follows_the_objectives_direction():
    from datetime import timedelta
    from types import SimpleNamespace

    from dropcli.cli.display.tune_view import trial_status
    from dropcli.experiments.tune_search import _progress

    ended = [
        SimpleNamespace(number=n, state=SimpleNamespace(name="COMPLETE"), duration=timedelta(seconds=9), value=v)
        for n, v in enumerate([0.40, 0.25, 0.30])
    ]
    assert _progress(ended, 4, 9, 3, workers=1, objective="nll").best_number == 1  # the lowest NLL
    assert _progress(ended, 4, 9, 3, workers=1, objective="accuracy").best_number == 0  # the highest accuracy
    # Several objectives: the first one's values, in its direction, shown under its name.
    two = [
        SimpleNamespace(number=n, state=SimpleNamespace(name="COMPLETE"), duration=None, values=v)
        for n, v in enumerate([[0.3, 0.9], [0.4, 0.1]])
    ]
    progress = _progress(two, 3, 9, 2, workers=1, objective="nll")
    assert (progress.best_number, progress.best_value) == (0, 0.3)
    assert trial_status(progress).startswith("best val nll 0.3000 (#0), 0 pruned")
    assert trial_status(_progress(two, 3, 9, 2, workers=1)).startswith("best val acc 0.4000 (#1)")


def test_each_trial_is_announced_with_its_place_in_the_search(in_tmp, invoke, small_args):
    result = invoke("tune", *small_args(epochs=1), *SEARCH, "--trials", 2, "--pruner", "none")
    assert result.exit_code == 0, result.output
    assert "trial 1 of 2 (#0)" in result.output and "trial 2 of 2 (#1)" in result.output, result.output


def test_a_trial_another_retries_is_listed_as_interrupted_and_a_value_is_the_first_objectives():
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from dropcli.experiments.tune_results import _row

    space = {"params": {"optim.lr": 0.1}, "distributions": {"optim.lr": FloatDistribution(0.01, 1)}}
    killed = create_trial(state=TrialState.FAIL, **space)  # its worker died: no "interrupted" mark
    assert _row(killed, retried=True).state == "interrupted"
    assert _row(killed, retried=False).state == "failed"
    two_objectives = create_trial(state=TrialState.COMPLETE, values=[0.81, 0.05], **space)
    row = _row(two_objectives, retried=False)
    assert row.value == 0.81 and row.objective_values == [0.81, 0.05]


def test_a_timeout_not_yet_reached_stops_nothing(in_tmp, invoke, small_args):
    result = invoke("tune", *small_args(epochs=2), *SEARCH, "--trials", 2, "--pruner", "none", "--timeout", 3600, "-q")
    assert result.exit_code == 0, result.output
    trials = study_trials(in_tmp / "runs" / "tune-default" / "study.journal")
    assert [(t.state.name, t.user_attrs["epochs"]) for t in trials] == [("COMPLETE", 2), ("COMPLETE", 2)]


def test_a_trials_own_epochs_are_those_it_trained_after_the_one_it_continues():
    from types import SimpleNamespace

    from dropcli.experiments.tune_search import trained_epochs

    assert trained_epochs(SimpleNamespace(user_attrs={})) == 0  # failed before its first epoch
    assert trained_epochs(SimpleNamespace(user_attrs={"epochs": 5})) == 5
    assert trained_epochs(SimpleNamespace(user_attrs={"epochs": 5, "resumed_at": 2})) == 3
    # A continued trial that failed before its run recorded an epoch: none of its own, never fewer.
    assert trained_epochs(SimpleNamespace(user_attrs={"resumed_at": 2})) == 0
    # Continuing a trial whose process died (it recorded no epochs): the run's earlier epochs count here.
    assert trained_epochs(SimpleNamespace(user_attrs={"epochs": 5, "resumed_at": 2, "counts_earlier_epochs": True})) == 5


def test_only_a_failed_trial_is_interrupted_even_where_its_attribute_says_so():
    from types import SimpleNamespace

    from dropcli.experiments.tune_search import interrupted

    def trial(state):
        return SimpleNamespace(state=SimpleNamespace(name=state), user_attrs={"interrupted": True})

    # A trial that ended as another process marked it lost keeps the attribute (set before the
    # state, which then could not be): complete, it is not to be continued.
    assert [interrupted(trial(state)) for state in ("FAIL", "COMPLETE", "PRUNED", "RUNNING")] == [True, False, False, False]


@pytest.mark.parametrize("earlier, counted_here", [({"epochs": 2}, False), ({}, True)])
def test_a_continued_trial_counts_the_earlier_epochs_only_where_the_one_it_continues_did_not(
    tmp_path, monkeypatch, earlier, counted_here
):
    import optuna

    from dropcli.experiments import tune_search

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.enqueue_trial({}, user_attrs=earlier)  # stopped by Ctrl-C (its epochs recorded) or killed outright (none)
    first = study.ask()
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({}, user_attrs={"retry_of": first.number})
    again = study.ask()
    (tmp_path / runs.LAST_CHECKPOINT).parent.mkdir(parents=True)
    (tmp_path / runs.LAST_CHECKPOINT).touch()
    monkeypatch.setattr(tune_search.checkpoints, "load", lambda path: {"epoch": 2})
    assert tune_search._resumed(study, again, tmp_path) == {"epoch": 2}
    again.set_user_attr("epochs", 5)
    attrs = study.trials[again.number].user_attrs
    assert attrs["resumed_at"] == 2 and tune_search.trained_epochs(study.trials[again.number]) == (5 if counted_here else 3)


@pytest.mark.parametrize("epochs, state", [(1, "COMPLETE"), (2, "FAIL")])
def test_timeout_stops_a_trial_only_where_epochs_are_left(in_tmp, invoke, small_args, monkeypatch, epochs, state):
    from dropcli.experiments import tune_search

    judged = tune_search._Judge.epoch_finished

    def slow(judge, metrics):  # the first epoch outlasts --timeout 1
        time.sleep(1.1)
        judged(judge, metrics)

    monkeypatch.setattr(tune_search._Judge, "epoch_finished", slow)
    result = invoke("tune", *small_args(epochs=epochs), *SEARCH, "--trials", 3, "--timeout", 1, "-q")
    assert result.exit_code == 0, result.output
    trial = only(study_trials(in_tmp / "runs" / "tune-default" / "study.journal"))
    assert trial.state.name == state and trial.user_attrs["epochs"] == 1  # a finished trial is not 'interrupted'
    assert bool(trial.user_attrs.get("interrupted")) == (state == "FAIL")


@pytest.mark.parametrize("from_a_plan", [False, True])
def test_the_grid_sampler_tries_each_point_once(in_tmp, invoke, small_args, from_a_plan):
    """From a flag or a plan file: a plan's "grid" is a string YAML made, not the literal a flag
    gives (a sampler compared with `is` took the plan's grid search for TPE)."""
    if from_a_plan:
        (in_tmp / "plan.yaml").write_text(
            "space:\n  optim.lr: [0.01, 0.1]\n  model.hidden: [32x32, 64]\n  model.dropout_1: [0.1, 0.3]\n"
            "trials: 8\nsampler: grid\npruner: none\n"
        )
        search = ["--plan", "plan.yaml"]
    else:
        space = ["--space", "optim.lr=0.01,0.1", "--space", "model.hidden=32x32,64", "--space", "model.dropout_1=0.1,0.3"]
        search = [*space, "--trials", 8, "--sampler", "grid", "--pruner", "none"]
    result = invoke("tune", *small_args(epochs=2), "--set", "data.val_split=0.2", *search, "-q")
    assert result.exit_code == 0, result.output
    trials = study_trials(in_tmp / "runs" / "tune-default" / "study.journal")
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials) == 8


@pytest.mark.parametrize("from_a_plan", [False, True])
def test_the_random_sampler_draws_every_trial_when_asked_for(in_tmp, invoke, small_args, monkeypatch, from_a_plan):
    import optuna

    from dropcli.experiments import tune_sampling

    made = []

    class Recorded(optuna.samplers.RandomSampler):
        def __init__(self, *args, **kwargs):
            made.append("random")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(optuna.samplers, "RandomSampler", Recorded)
    monkeypatch.setattr(tune_sampling, "tpe", lambda *args: made.append("tpe") or optuna.samplers.TPESampler())
    if from_a_plan:  # a plan's "random" is a string YAML made, not the literal a flag gives
        (in_tmp / "plan.yaml").write_text("space:\n  optim.lr: 0.01:0.1\ntrials: 2\nsampler: random\npruner: none\n")
        search = ["--plan", "plan.yaml"]
    else:
        search = ["--space", "optim.lr=0.01:0.1", "--trials", 2, "--sampler", "random", "--pruner", "none"]
    result = invoke("tune", *small_args(epochs=1), "--set", "data.val_split=0.2", *search, "-q")
    assert result.exit_code == 0, result.output
    assert made == ["random"] * 3  # the one the study is opened with, then one for each trial


@pytest.mark.parametrize("where", ["just asked", "announced"])
def test_a_ctrl_c_before_a_trials_run_begins_leaves_it_to_continue_not_running(
    in_tmp, invoke, small_args, monkeypatch, ctrl_c_raises, where
):
    """Ctrl-C as a trial has just been asked for (a real SIGINT, which lands between statements) or
    as it is announced: the trial is marked interrupted, never left running (a worker on a shared
    database would otherwise wait for it for ever or count it as trained)."""
    import signal

    from dropcli.experiments import tune_search

    if where == "just asked":
        real_ask = tune_search.ask

        def ask(study):
            trial = real_ask(study)
            signal.raise_signal(signal.SIGINT)
            return trial

        monkeypatch.setattr(tune_search, "ask", ask)
    else:

        def progress(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(tune_search, "_progress", progress)
    stopped = invoke("tune", *small_args(epochs=1), *SEARCH, "--trials", 1, "--pruner", "none", "-q")
    assert stopped.exit_code == 130 and "the study is kept" in stopped.output, stopped.output
    (trial,) = study_trials(in_tmp / "runs" / "tune-default" / "study.journal")
    assert (trial.state.name, trial.user_attrs.get("interrupted"), trial.user_attrs.get("reason")) == (
        "FAIL",
        True,
        "KeyboardInterrupt",
    )


def test_an_interrupted_trial_continues_from_its_last_epoch(in_tmp, invoke, small_args, monkeypatch):
    from dropcli.experiments import tune_search

    real = tune_search._Judge.epoch_finished

    def interrupt_at_epoch_2(judge, metrics):
        if metrics.epoch == 2:
            raise KeyboardInterrupt
        real(judge, metrics)

    args = ["tune", *small_args(epochs=4), *SEARCH, "--trials", 2, "--pruner", "none", "-q"]
    monkeypatch.setattr(tune_search._Judge, "epoch_finished", interrupt_at_epoch_2)
    stopped = invoke(*args)
    assert stopped.exit_code == 130 and "the study is kept" in stopped.output
    monkeypatch.setattr(tune_search._Judge, "epoch_finished", real)
    waited = []  # only a retried trial waits for its run to be let go by the process that had it
    monkeypatch.setattr(tune_search, "_wait_until_free", waited.append)
    resumed = invoke(*args)
    assert resumed.exit_code == 0, resumed.output
    directory = in_tmp / "runs" / "tune-default"
    assert [path.resolve() for path in waited] == [directory / "trial-0000"]
    trials = study_trials(directory / "study.journal")
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["interrupted"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert retry.state.name == "COMPLETE" and retry.params == trials[0].params and retry.user_attrs["run"] == "trial-0000"
    assert len(runs.read_metrics(directory / "trial-0000")) == 4  # epochs 3 and 4 added to the 2 kept, not trained again
    assert sum(t.state.name == "COMPLETE" for t in trials) == 2  # the interrupted trial is not counted


def test_an_interrupted_trial_its_pruner_stops_on_resume_is_listed_as_pruned(in_tmp, invoke, small_args, monkeypatch):
    from dropcli.experiments import tune_search

    real = tune_search._Judge.epoch_finished

    def interrupt_at_epoch_2(judge, metrics):
        if metrics.epoch == 2:
            raise KeyboardInterrupt
        real(judge, metrics)

    args = ["tune", *small_args(epochs=4), *SEARCH, "--trials", 2, "--pruner", "median", "-q"]
    monkeypatch.setattr(tune_search._Judge, "epoch_finished", interrupt_at_epoch_2)
    assert invoke(*args).exit_code == 130
    monkeypatch.setattr(tune_search._Judge, "epoch_finished", real)
    monkeypatch.setattr(tune_search.optuna_module().trial.Trial, "should_prune", lambda trial: True)
    assert invoke(*args).exit_code == 0
    summary = json.loads((in_tmp / "runs" / "tune-default" / "trial-0000" / runs.SUMMARY_FILE).read_text())
    assert summary["status"] == "pruned" and summary["epochs"] == 2
    # Epoch 1 was judged (and kept) before the interruption, so the pruner's "stop" there is not
    # acted on again: the continuation reports epoch 1, then is stopped at epoch 2.
    retry = next(t for t in study_trials(in_tmp / "runs" / "tune-default" / "study.journal") if t.user_attrs.get("retry_of") == 0)
    assert retry.state.name == "PRUNED" and sorted(retry.intermediate_values) == [1, 2]


def test_ctrl_c_on_a_trial_another_worker_already_took_over_still_stops_the_search(in_tmp, invoke, small_args, monkeypatch):
    """Under load a worker's heartbeat can be late enough that another worker fails its trial and
    takes it over; Ctrl-C then finds the trial finished, and telling it fails. The interruption,
    not that failed tell, is what the command reports (it once went on to the next trial)."""
    from optuna.trial import TrialState

    from dropcli.experiments import tune_search

    def taken_over_then_interrupted(judge, metrics):
        judge.trial.study._storage.set_trial_state_values(judge.trial._trial_id, TrialState.FAIL)
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_search._Judge, "epoch_finished", taken_over_then_interrupted)
    stopped = invoke("tune", *small_args(epochs=3), *SEARCH, "--trials", 2, "--pruner", "none", "-q")
    assert stopped.exit_code == 130, stopped.output
    trials = study_trials(in_tmp / "runs" / "tune-default" / "study.journal")
    assert [t.state.name for t in trials] == ["FAIL"]  # the search stopped: no second trial began


@pytest.mark.system
def test_two_processes_share_one_storage_without_losing_or_repeating_trials(tmp_path, fake_data):
    journal = tmp_path / "shared.journal"
    command = [
        sys.executable,
        "-m",
        "dropcli",
        "tune",
        "--data-dir",
        str(fake_data),
        "--device",
        "cpu",
        "--set",
        "data.train_limit=600",
        "--set",
        "data.test_limit=200",
        "--set",
        "train.epochs=2",
        *SEARCH,
        "--trials",
        "8",
        "--pruner",
        "none",
        "--storage",
        str(journal),
        "--run-dir",
        str(tmp_path / "study"),
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # PYTHONPATH: this checkout (conftest.py)
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    trained = [int(re.search(r"this command trained (\d+) trial", out).group(1)) for out, _ in outputs]
    trials = study_trials(journal)
    assert sum(trained) == len(trials) == 8
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["run"] for t in trials}) == 8


@pytest.mark.system
def test_a_process_killed_mid_trial_on_a_journal_has_its_trial_continued_by_the_next(tmp_path, fake_data):
    import signal

    from dropcli.experiments.tune_search import trained_epochs

    journal = tmp_path / "study.journal"
    data = ["--data-dir", str(fake_data), "--device", "cpu", "--set", "data.train_limit=600", "--set", "data.test_limit=200"]
    command = [sys.executable, "-m", "dropcli", "tune", *data, "--set", "train.epochs=3", *SEARCH, "--trials", "2"]
    command += ["--pruner", "none", "--storage", str(journal), "--run-dir", str(tmp_path / "study"), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # PYTHONPATH: this checkout (conftest.py)
    doomed = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run_dir = wait_for_a_trained_epoch(tmp_path / "study", doomed)
    doomed.send_signal(signal.SIGKILL)  # no handler runs: the trial is left running in the study
    doomed.communicate(timeout=300)
    lost = only(study_trials(journal))
    assert lost.state.name == "RUNNING"
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "this command trained 2 trials" in again.stdout, again
    trials = study_trials(journal)
    assert_exactly(trials, 2)
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["reason"] == "its process died"
    continued = only(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert continued.params == lost.params and continued.user_attrs["run"] == run_dir.name
    # From the killed run's last checkpoint: each epoch once.
    assert [m["epoch"] for m in runs.read_metrics(run_dir)] == [1, 2, 3]
    # The study's compute: each trial's 3 epochs, the killed process's saved ones counted with its continuation.
    assert sum(trained_epochs(t) for t in trials) == 6
    assert not list((tmp_path / ".study.journal.leases").iterdir())  # every lease let go and cleared


@pytest.mark.system
def test_under_torchrun_each_worker_takes_trials_from_the_study(tmp_path, fake_data):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "dropcli", "tune"]
    command += ["--data-dir", str(fake_data), "--device", "cpu", "--set", "data.train_limit=600", "--set", "data.test_limit=200"]
    command += [
        "--set",
        "train.epochs=2",
        *SEARCH,
        "--trials",
        "6",
        "--pruner",
        "none",
        "--run-dir",
        str(tmp_path / "study"),
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # PYTHONPATH: this checkout (conftest.py)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    counts = re.search(r"this command trained 6 trials \((\d+) \+ (\d+) on 2 workers\)", done.stdout)
    assert counts, done.stdout  # how the 6 fell to the workers depends on their pace
    trials = study_trials(tmp_path / "study" / "study.journal")
    assert sorted(t.number for t in trials) == list(range(6)) and all(t.state.name == "COMPLETE" for t in trials)
    assert (tmp_path / "study" / "best.yaml").is_file()


def test_a_study_read_from_its_storage_alone_keeps_its_runs_where_tune_would(in_tmp, invoke, small_args):
    from dropcli.experiments.tune_stored import stored_search

    journal = in_tmp / "shared.journal"
    args = [*small_args(epochs=1), *SEARCH, "--trials", 1, "--storage", journal, "--study", "wide", "-q"]
    assert invoke("tune", *args, "--run-dir", in_tmp / "elsewhere").exit_code == 0
    try:  # as --summary reads it, given no --pick and no --run-dir
        search = stored_search([], {}, {"storage": str(journal), "study": "wide", "run_dir": None}, print)
    except Exception as error:
        pytest.fail(f"the study could not be read back from its storage alone: {error!r}")
    assert search.directory == Path("runs") / "tune-wide" and search.study == "wide"


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--space", "optim.lr=0.01:1"], "data.val_split"),  # no validation split: no tuning on the test set
        (["--set", "data.val_split=0.2", "--space", "model.dropot=0:1"], "unknown key 'model.dropot'"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.1:0.1"], "LOW < HIGH"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.1", "--space", "model.hidden=64"], "fixes every key"),
        (["--set", "data.val_split=0.2", "--space", "seed=0,1"], "--final-seeds"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--sampler", "grid"], "lists of values"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.01,0.1", "--sampler", "grid", "--trials", 3], "only 2 points"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--pruner", "often"], "choose one of median"),
        (["--set", "data.val_split=0.2", "--space", "model.dropout=0:1.5"], "model.dropout"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--space", "optim.lr=0.2:2"], "more than once"),
        (["--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--figure", "tune.jpg"], "e.g. --figure tune.pdf"),
        (["--set", "data.val_split=0.2", "--space", "model.hidden=64,32x32", "--space", "model.hidden_1=8,16"], "same list"),
        (  # a second layer's rate, and a drawn net of one layer: refused before any trial, not in mid-study
            ["--set", "data.val_split=0.2", "--space", "model.hidden=64,32x32", "--space", "model.dropout_2=0.1:0.5"],
            "sets hidden layer 2, and the space also draws model.hidden=64 (1 layer)",
        ),
        (
            ["--set", "data.val_split=0.2", "--space", "optim.lr=0.01:1", "--storage", "sqlite:////no/such/dir/x.db"],
            "cannot open it",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(in_tmp, invoke, small_args, extra, words):
    result = invoke("tune", *small_args(), "--trials", 2, *extra)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output
    assert not (in_tmp / "runs").exists()


def test_without_optuna_it_says_how_to_install_it(in_tmp, invoke, small_args, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = invoke("tune", *small_args(), *SEARCH, "--trials", 2)
    assert result.exit_code == 2 and "pip install 'dropcli[tune]'" in result.output


def test_only_a_running_trial_with_a_heartbeat_is_waited_for():
    """A worker waits for trials running in another process (their worker may die and they be
    retried here), not for finished ones that once had a heartbeat, nor for heartbeat-less ones."""
    from types import SimpleNamespace

    from dropcli.experiments.tune_search import _running_elsewhere

    def trial(state, heartbeat):
        return SimpleNamespace(state=SimpleNamespace(name=state), user_attrs={"heartbeat": True} if heartbeat else {})

    assert _running_elsewhere([trial("COMPLETE", True), trial("RUNNING", True)])
    assert not _running_elsewhere([trial("COMPLETE", True), trial("PRUNED", True), trial("FAIL", True)])
    assert not _running_elsewhere([trial("RUNNING", False)])  # a journal's trial: nothing would say it is lost


def test_the_final_seeds_wait_for_a_trial_another_process_still_runs(in_tmp, invoke, small_args):
    """Two workers on one study: the first to find the budget spent must not train the final seeds
    on a best that the other's running trial may still beat; the last to finish trains them."""
    import optuna

    from dropcli.experiments.tune_storage import lease, open_storage

    args = [*small_args(epochs=1), *SEARCH, "--sampler", "random", "--pruner", "none", "-q"]
    assert invoke("tune", *args, "--trials", 1).exit_code == 0
    journal = str(in_tmp / "runs" / "tune-default" / "study.journal")
    storage = open_storage(optuna, journal)
    other = optuna.load_study(study_name="default", storage=storage).ask()  # another worker's trial
    with lease(storage, journal, other):  # ... whose process is alive
        waiting = invoke("tune", *args, "--trials", 2, "--final-seeds", 1)
    assert waiting.exit_code == 0, waiting.output
    assert f"--final-seeds waits for trial {other.number}, still running" in waiting.output
    assert not (in_tmp / "runs" / "tune-default" / "final").exists()
    optuna.load_study(study_name="default", storage=storage).tell(other, state=optuna.trial.TrialState.PRUNED)  # it ends
    done = invoke("tune", *args, "--trials", 2, "--final-seeds", 1)
    assert done.exit_code == 0 and "waits for trial" not in done.output, done.output
    assert (in_tmp / "runs" / "tune-default" / "final" / "seed0").is_dir()


def test_a_trial_with_early_stopping_is_scored_on_its_best_epochs_model(in_tmp, invoke, small_args):
    """The model whose validation accuracy the trial reports is the one its NLL or ECE is of: with
    early stopping the best epoch's (best.pt), else the last's."""
    from types import SimpleNamespace

    from dropcli.config import load_config
    from dropcli.experiments.tune_search import _scores

    assert invoke("train", *small_args(epochs=1), "--run-dir", "r", "-q").exit_code == 0
    payload = torch.load(in_tmp / "r" / runs.LAST_CHECKPOINT, weights_only=True)
    payload["model"] = {key: 2 * value for key, value in payload["model"].items()}  # best.pt: other weights
    torch.save(payload, in_tmp / "r" / runs.BEST_CHECKPOINT)

    def weights(model, X, y):
        return {"sum": sum(parameter.sum().item() for parameter in model.parameters())}

    data = SimpleNamespace(val=SimpleNamespace(X=None, y=None))
    plain = load_config(None, ["data.val_split=0.2"])
    stopping = load_config(None, ["data.val_split=0.2", "train.early_stopping=2"])
    last = _scores(weights, in_tmp / "r", torch.device("cpu"), data, plain)["sum"]
    best = _scores(weights, in_tmp / "r", torch.device("cpu"), data, stopping)["sum"]
    assert best == pytest.approx(2 * last) and last != pytest.approx(0)


def test_a_trial_whose_values_do_not_go_together_fails_with_the_reason_and_is_not_retried(monkeypatch):
    from types import SimpleNamespace

    from dropcli.errors import DropcliError
    from dropcli.experiments import tune_search

    def refused(search, trial):
        raise DropcliError("model.dropout_2 sets hidden layer 2 of a net of 1")

    monkeypatch.setattr(tune_search, "trial_config", refused)
    told, attrs = [], {}
    study = SimpleNamespace(tell=lambda trial, state: told.append(state.name))
    trial = SimpleNamespace(set_user_attr=attrs.__setitem__)
    message = refusal(tune_search._run_trial, study, trial, None, None, [], None)
    assert message == "model.dropout_2 sets hidden layer 2 of a net of 1"
    assert told == ["FAIL"] and attrs == {"reason": message}


def test_past_the_deadline_a_trial_stops_before_its_last_epoch_and_ends_at_it():
    from types import SimpleNamespace

    from dropcli.experiments import tune_search
    from dropcli.runs.listeners import OutOfTime

    epochs = int("300")  # past 256: a distinct int object from the epoch's own 300
    judge = tune_search._Judge(trial=None, pruner="none", epochs=epochs, deadline=0.0, reported=None)
    with pytest.raises(OutOfTime):
        judge.epoch_finished(SimpleNamespace(epoch=int("299")))
    try:
        judge.epoch_finished(SimpleNamespace(epoch=int("300")))
    except OutOfTime as stopped:
        pytest.fail(f"a trial's last epoch past the deadline: {stopped}")
