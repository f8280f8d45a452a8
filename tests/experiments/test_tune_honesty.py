"""tune chooses on the validation set only, on data where validation and test disagree.

The stand-in data's test labels are shifted by one class, so a trained net's test accuracy is near
0 while its validation accuracy is high: a search that read test accuracy anywhere (trial values,
the pruner's reports, a resumed trial's reports) would show it here. One study is built once: its
first trial is interrupted at epoch 2 and continued by a second session, then the best settings
train with two seeds.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import idx_bytes
from dropcli import data, runs
from dropcli.config import load_config

optuna = pytest.importorskip("optuna")

SEED = 3
SPACE = ["--space", "optim.lr=0.05:0.5:log", "--space", "model.hidden=32,64x32"]


@pytest.fixture(scope="module")
def test_labels_wrong(fake_data, tmp_path_factory) -> Path:
    """The stand-in data with every test label moved to the next class (validation comes from the
    training file, and keeps its true labels)."""
    directory = Path(shutil.copytree(fake_data, tmp_path_factory.mktemp("wrong-test") / "data"))
    labels_file = directory / data.FILES["test"][1]
    labels = torch.frombuffer(bytearray(labels_file.read_bytes()[8:]), dtype=torch.uint8)
    labels_file.write_bytes(idx_bytes((labels.long() + 1) % 10, data.LABELS_MAGIC))
    return directory


@pytest.fixture(scope="module")
def study(test_labels_wrong, tmp_path_factory):
    """(study directory, the two sessions' outputs, Optuna's trials)."""
    from typer.testing import CliRunner

    from dropcli.cli import app
    from dropcli.experiments import tune_search

    directory = tmp_path_factory.mktemp("study") / "tune"
    args = ["tune", "--data-dir", str(test_labels_wrong), "--device", "cpu", "--set", "data.train_limit=600"]
    args += ["--set", "data.test_limit=200", "--set", "train.epochs=3", "--set", "data.val_split=0.2", "--set", f"seed={SEED}"]
    args += [
        *SPACE,
        "--trials",
        "4",
        "--pruner",
        "none",
        "--sampler",
        "random",
        "--final-seeds",
        "2",
        "--run-dir",
        str(directory),
    ]
    real = tune_search._Judge.epoch_finished

    def interrupt_at_epoch_2(judge, metrics):
        real(judge, metrics)
        if metrics.epoch == 2:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tune_search._Judge, "epoch_finished", interrupt_at_epoch_2)
        first = CliRunner().invoke(app, args)
    assert first.exit_code == 130, first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(directory / "study.journal")))
    trials = optuna.load_study(study_name="default", storage=storage).get_trials(deepcopy=False)
    return directory, second.output, trials


def complete(trials) -> list:
    return [t for t in trials if t.state.name == "COMPLETE"]


def run_metrics(directory: Path, trial) -> list[dict]:
    return runs.read_metrics(directory / trial.user_attrs["run"])


def test_the_study_is_as_planned(study):
    directory, _, trials = study
    # Trial 0 was interrupted and continued by trial 1 in the same run directory; 4 trials count.
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["interrupted"] and trials[1].user_attrs["run"] == trials[0].user_attrs["run"]
    assert len({t.value for t in complete(trials)}) > 1  # the argmax tests below can tell max from min
    # A trial never scores the test set at all: no epoch of any trial's run has a test score.
    assert all(m["test_acc"] is None and m["test_loss"] is None for t in trials for m in run_metrics(directory, t))


def test_each_trial_value_is_its_runs_validation_accuracy(study):
    directory, _, trials = study
    for trial in complete(trials):
        last = run_metrics(directory, trial)[-1]
        assert last["epoch"] == 3 and trial.value == last["val_acc"]
        summary = json.loads((directory / trial.user_attrs["run"] / runs.SUMMARY_FILE).read_text())
        assert summary["final"]["val_acc"] == trial.value


def test_every_reported_epoch_is_the_validation_accuracy_resumed_trials_too(study):
    directory, _, trials = study
    for trial in trials:
        metrics = run_metrics(directory, trial)
        reported = trial.intermediate_values
        assert reported == {m["epoch"]: m["val_acc"] for m in metrics[: len(reported)]}
    # The continued trial reported epochs 1 and 2 again from its run's files, then trained epoch 3.
    assert trials[0].intermediate_values == {
        1: run_metrics(directory, trials[0])[0]["val_acc"],
        2: run_metrics(directory, trials[0])[1]["val_acc"],
    }
    assert sorted(trials[1].intermediate_values) == [1, 2, 3]


def test_the_best_trial_is_the_argmax_and_best_yaml_holds_its_settings(study):
    directory, output, trials = study
    best = max(complete(trials), key=lambda t: t.value)  # the first of the highest
    assert f"best: trial {best.number}, val acc {best.value:.4f}" in output
    assert best.number != complete(trials)[0].number  # the fixture's seed makes the first complete trial not the best
    text = (directory / "best.yaml").read_text()
    assert f"trial {best.number}" in text
    chosen = load_config(directory / "best.yaml")
    trained = yaml.safe_load((directory / best.user_attrs["run"] / runs.CONFIG_FILE).read_text())
    assert chosen.optim.lr == trained["optim"]["lr"] and list(chosen.model.hidden) == trained["model"]["hidden"]
    assert chosen.data.val_split == 0 and chosen.seed == SEED


def test_final_seeds_n_trains_seed_to_seed_plus_n_minus_1_on_the_whole_training_set(study):
    directory, output, trials = study
    finals = sorted((directory / "final").glob(f"*/{runs.SUMMARY_FILE}"))
    summaries = [json.loads(path.read_text()) for path in finals]
    assert [s["seed"] for s in summaries] == [SEED, SEED + 1] and [p.parent.name for p in finals] == ["seed3", "seed4"]
    assert all(s["data"]["val"] == 0 and s["data"]["train"] == 600 for s in summaries)
    best = max(complete(trials), key=lambda t: t.value)
    for path in finals:  # the best trial's settings
        config = yaml.safe_load((path.parent / runs.CONFIG_FILE).read_text())
        assert config["optim"]["lr"] == best.user_attrs["config"]["optim"]["lr"]


def test_the_validation_split_cannot_be_searched(invoke, small_args):
    result = invoke("tune", *small_args(), "--set", "data.val_split=0.2", "--space", "data.val_split=0.1,0.3", "--trials", 2)
    assert result.exit_code == 2 and "the validation split is what trials are compared on" in result.stderr
