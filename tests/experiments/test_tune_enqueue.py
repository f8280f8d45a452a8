"""tune --enqueue and a plan's enqueue: list: known configs are the study's first trials, once."""

import pytest

from conftest import only

optuna = pytest.importorskip("optuna")

SEARCH = ["--set", "data.val_split=0.2", "--space", "optim.lr=0.001:1:log", "--space", "model.hidden=32x32,64"]


def study_trials(journal):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return optuna.load_study(study_name="default", storage=JournalStorage(JournalFileBackend(str(journal)))).get_trials()


def test_enqueued_configs_are_the_first_trials_and_are_put_in_once(in_tmp, invoke, small_args):
    (in_tmp / "known.yaml").write_text("model: {hidden: [64]}\noptim: {lr: 0.05}\n")
    (in_tmp / "other.yaml").write_text("model: {hidden: [32, 32]}\n")
    args = ["tune", *small_args(epochs=2), *SEARCH, "--sampler", "random", "--pruner", "none", "-q"]
    first = invoke(*args, "--trials", 2, "--enqueue", "known.yaml", "--enqueue", "other.yaml")
    assert first.exit_code == 0, first.output
    journal = in_tmp / "runs" / "tune-default" / "study.journal"
    trials = study_trials(journal)
    assert trials[0].params == {"model.hidden": "64", "optim.lr": 0.05}
    assert trials[0].user_attrs["enqueued"] == "known.yaml" and trials[1].user_attrs["enqueued"] == "other.yaml"
    assert trials[0].user_attrs["config"]["model"]["hidden"] == [64]  # trained as it says
    again = invoke(*args, "--trials", 3, "--enqueue", "known.yaml", "--enqueue", "other.yaml")
    assert again.exit_code == 0, again.output
    trials = study_trials(journal)
    assert len(trials) == 3 and "enqueued" not in trials[2].user_attrs  # each config once; the third drawn


def test_a_plans_enqueue_list_names_files_beside_it(in_tmp, invoke, small_args):
    (in_tmp / "study").mkdir()
    (in_tmp / "study" / "known.yaml").write_text("model: {hidden: [32, 32]}\noptim: {lr: 0.2}\n")
    (in_tmp / "study" / "plan.yaml").write_text(
        "space:\n  optim.lr: '0.001:1:log'\n  model.hidden: [32x32, 64]\ntrials: 1\npruner: none\nenqueue: [known.yaml]\n"
    )
    result = invoke("tune", "--plan", in_tmp / "study" / "plan.yaml", *small_args(epochs=1), "--set", "data.val_split=0.2")
    assert result.exit_code == 0, result.output
    trial = only(study_trials(in_tmp / "runs" / "tune-default" / "study.journal"))
    assert trial.params == {"optim.lr": 0.2, "model.hidden": "32x32"}


def test_the_ends_of_a_range_may_be_enqueued(in_tmp, invoke, small_args):
    (in_tmp / "low.yaml").write_text("model: {hidden: [64]}\noptim: {lr: 0.001}\n")
    (in_tmp / "high.yaml").write_text("model: {hidden: [64]}\noptim: {lr: 1}\n")
    result = invoke(
        "tune", *small_args(epochs=1), *SEARCH, "--trials", 2, "--enqueue", "low.yaml", "--enqueue", "high.yaml", "-q"
    )
    assert result.exit_code == 0, result.output
    lrs = sorted(t.params["optim.lr"] for t in study_trials(in_tmp / "runs" / "tune-default" / "study.journal"))
    assert lrs == [0.001, 1.0]


@pytest.mark.parametrize(
    "text, words",
    [
        ("model: {hidden: [64]}\noptim: {lr: 5}", "optim.lr=5 is outside the space's range 0.001:1"),
        ("model: {hidden: [64]}\noptim: {lr: 0.0005}", "optim.lr=0.0005 is outside the space's range 0.001:1"),  # below
        ("model: {hidden: [128]}", "model.hidden=128 is not among the space's values (32x32, 64); add it"),
        ("optim: {lr: -1}", "--enqueue known.yaml: "),
    ],
)
def test_a_config_the_space_cannot_draw_is_refused_before_anything_is_written(in_tmp, invoke, small_args, text, words):
    (in_tmp / "known.yaml").write_text(text + "\n")
    result = invoke("tune", *small_args(), *SEARCH, "--trials", 2, "--enqueue", "known.yaml")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (in_tmp / "runs").exists()


def test_one_rate_on_every_layer_is_enqueued_as_the_spaces_single_rate(in_tmp, invoke, small_args):
    (in_tmp / "known.yaml").write_text("model: {hidden: [32, 32], dropout: [0.3, 0.3]}\n")
    space = ["--set", "data.val_split=0.2", "--space", "model.dropout=0.3,0.5"]
    result = invoke("tune", *small_args(epochs=1), *space, "--trials", 1, "--enqueue", "known.yaml", "-q")
    assert result.exit_code == 0, result.output
    assert only(study_trials(in_tmp / "runs" / "tune-default" / "study.journal")).params == {"model.dropout": 0.3}


def test_rates_that_differ_by_layer_are_refused_by_a_space_of_single_rates(in_tmp, invoke, small_args):
    (in_tmp / "known.yaml").write_text("model: {hidden: [32, 32], dropout: [0.3, 0.5]}\n")
    space = ["--set", "data.val_split=0.2", "--space", "model.dropout=0.3,0.5"]
    result = invoke("tune", *small_args(epochs=1), *space, "--trials", 1, "--enqueue", "known.yaml", "-q")
    assert result.exit_code == 2 and "is not among the space's values (0.3, 0.5)" in result.output, result.output


@pytest.mark.parametrize("entry", ["best", [1], [""], ["best", None]])
def test_a_plans_enqueue_must_be_a_list_of_names(entry):
    from pathlib import Path

    from dropcli.errors import DropcliError
    from dropcli.experiments import tune_enqueue

    with pytest.raises(DropcliError, match="enqueue must be a list of config files or shipped names"):
        tune_enqueue.resolve(None, entry, Path("plan.yaml"), [])


def test_a_config_whose_net_has_no_layer_for_a_key_of_the_space_is_refused(in_tmp, invoke, small_args):
    (in_tmp / "known.yaml").write_text("model: {hidden: [64]}\n")  # one hidden layer: no dropout_2
    space = ["--set", "data.val_split=0.2", "--space", "model.dropout_2=0.3,0.5"]
    result = invoke("tune", *small_args(epochs=1), *space, "--trials", 1, "--enqueue", "known.yaml", "-q")
    assert result.exit_code == 2 and "enqueue configs whose nets the space's keys fit" in result.output, result.output


def test_a_config_is_enqueued_in_a_space_of_keys_that_are_not_rates(in_tmp, invoke, small_args):
    (in_tmp / "known.yaml").write_text("model: {hidden: [32]}\ndata: {augment: {shift: 1, flip: true}}\n")
    space = ["--set", "data.val_split=0.2", "--space", "data.augment.shift=0,1", "--space", "data.augment.flip=true,false"]
    result = invoke("tune", *small_args(epochs=1), *space, "--trials", 1, "--enqueue", "known.yaml", "-q")
    assert result.exit_code == 0, result.output
    params = only(study_trials(in_tmp / "runs" / "tune-default" / "study.journal")).params
    assert params == {"data.augment.shift": 1, "data.augment.flip": True}
