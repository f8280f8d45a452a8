"""The public API, through its public names only: train, compare, evaluate and predict on
smoke-sized runs of the stand-in data, and the same results and errors as the command line."""

import subprocess
import sys

import pytest

import dropcli


@pytest.fixture
def smoke(fake_data):
    """A config for a run of a few seconds on the stand-in data."""
    sizes = {"data.train_limit": 600, "data.test_limit": 200, "train.epochs": 2}
    return dropcli.load_config(None, {"device": "cpu", "data.root": str(fake_data), **sizes})


@pytest.fixture
def trained(smoke, tmp_path):
    return dropcli.train(smoke, tmp_path / "run", progress=False)


def test_train_returns_the_run_it_saved(trained, tmp_path):
    assert trained.directory == tmp_path / "run"
    assert trained.status == "finished"
    assert [epoch.epoch for epoch in trained.history] == [1, 2]
    assert trained.final["test_acc"] == trained.history[-1].test_acc
    assert not trained.model.training  # ready for inference: dropout off
    loaded = dropcli.load_run(trained.directory)
    assert loaded.metrics() == trained.metrics()
    assert loaded.config == trained.config
    for name, weights in loaded.model.state_dict().items():
        assert weights.equal(trained.model.state_dict()[name])


def test_the_command_line_trains_the_same_run(trained, invoke, small_args, tmp_path, without_times):
    result = invoke("train", *small_args(epochs=2, train=600, test=200), "--run-dir", tmp_path / "cli", "-q")
    assert result.exit_code == 0, result.output
    assert without_times(dropcli.load_run(tmp_path / "cli").history) == without_times(trained.history)


def test_compare_trains_each_model_as_train_does(smoke, trained, tmp_path):
    experiment = dropcli.compare(["scratch", "builtin"], smoke, run_dir=tmp_path / "cmp", progress=False)
    rows = experiment.rows()
    assert [row["model.kind"] for row in rows] == ["scratch", "builtin"]
    assert rows[0]["test_acc"] == trained.final["test_acc"]  # the same config and seed: the same run
    assert rows[0]["seeds"] == 1 and rows[0]["test_acc_std"] is None
    assert experiment.failed == {}
    assert [run.config.model.kind for run in experiment.runs()] == ["scratch", "builtin"]
    assert len(experiment.curves().axes) >= 2


def test_sweep_tabulates_each_value(smoke, tmp_path):
    experiment = dropcli.sweep({"model.dropout": [0, 0.5]}, smoke, run_dir=tmp_path / "sweep", progress=False)
    assert [row["model.dropout"] for row in experiment.rows()] == [0.0, 0.5]
    assert experiment.figure().axes


def test_evaluate_scores_the_run_as_training_measured_it(trained):
    scored = dropcli.evaluate(trained, mc_samples=3, bootstrap=0)
    rows = {row["method"]: row for row in scored.rows()}
    assert rows["deterministic"]["accuracy"] == pytest.approx(trained.final["test_acc"])
    assert rows["mc dropout"]["forward_passes"] == 3
    assert scored.per_class.accuracy == pytest.approx(trained.final["test_acc"])
    assert scored.to_json()["uncertainty"]["mc_samples"] == 3


def test_predict_gives_probabilities_for_test_images_and_tensors(trained):
    by_index = dropcli.predict(trained, index=[0, 1, 2], mc_samples=4)
    assert [p.source for p in by_index] == ["test image 0", "test image 1", "test image 2"]
    assert all(p.true_class is not None and p.entropy is not None for p in by_index)
    assert all(sum(p.probabilities) == pytest.approx(1.0, abs=1e-5) for p in by_index)
    assert by_index.checkpoint.name == "last.pt"
    torch = pytest.importorskip("torch")
    blank = dropcli.predict(trained, torch.zeros(2, 28, 28))
    assert [p.source for p in blank] == ["image 0", "image 1"] and blank[0].true_class is None


def test_errors_are_the_command_lines_lines(invoke):
    with pytest.raises(dropcli.DropcliError) as raised:
        dropcli.load_config(None, ["optim.lrr=1"])
    result = invoke("config", "show", "--set", "optim.lrr=1")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {raised.value}"
    with pytest.raises(dropcli.DropcliError, match=r"overrides\['optim.lr'\]: optim.lr must be a finite number > 0"):
        dropcli.load_config("smoke", {"optim.lr": -1})
    with pytest.raises(dropcli.DropcliError, match="--mc-samples 0: K must be at least 1"):
        dropcli.evaluate("no-such-run", mc_samples=0)


def test_overrides_may_set_a_key_to_none():
    assert dropcli.load_config("smoke").data.train_limit == 6000
    assert dropcli.load_config("smoke", {"data.train_limit": None}).data.train_limit is None


def test_progress_shows_epochs_or_nothing(smoke, tmp_path, capsys):
    dropcli.train(smoke, tmp_path / "quiet", progress=False)
    assert capsys.readouterr().out == ""
    dropcli.train(smoke, tmp_path / "shown")
    shown = capsys.readouterr().out
    assert "epoch 1/2" in shown and "epoch 2/2" in shown and f"run saved to {tmp_path / 'shown'}" in shown


def test_importing_dropcli_loads_neither_torch_nor_the_api():
    code = "import sys, dropcli; print('torch' in sys.modules, 'dropcli.api' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["False", "False"]


def test_every_public_name_is_documented_and_reachable_from_the_top():
    import dropcli.api

    assert dropcli.__all__ == dropcli.api.__all__
    for name in dropcli.__all__:
        assert getattr(dropcli, name) is getattr(dropcli.api, name)
        doc = (getattr(dropcli, name).__doc__ or "").strip()
        assert doc and not doc.startswith(f"{name}("), f"{name} has no docstring of its own"
    with pytest.raises(AttributeError):
        dropcli.no_such_name  # noqa: B018


class InterruptAt:
    """A listener that presses Ctrl-C as epoch `epoch` starts."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def __getattr__(self, name):  # every other listener call: nothing to do
        return lambda *args: None

    def batch_progress(self, epoch, batches_done, n_batches, loss):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupted_run_says_what_it_kept_and_resumes_exactly(smoke, trained, tmp_path, without_times):
    with pytest.raises(KeyboardInterrupt) as raised:
        dropcli.train(smoke, tmp_path / "stopped", progress=[InterruptAt(2)])
    directory = tmp_path / "stopped"
    assert raised.value.kept == f"the finished epochs are kept in {directory}; continue with: dropcli train --resume {directory}"
    assert dropcli.load_run(directory).status == "interrupted"
    resumed = dropcli.resume(directory, progress=False)
    assert resumed.status == "finished"
    assert without_times(resumed.history) == without_times(trained.history)


def test_a_run_stopped_before_its_first_epoch_leaves_nothing(smoke, tmp_path):
    with pytest.raises(KeyboardInterrupt) as raised:
        dropcli.train(smoke, tmp_path / "stopped", progress=[InterruptAt(1)])
    assert raised.value.kept == "nothing was trained and nothing is kept; run the same command again"
    assert not (tmp_path / "stopped").exists()


def test_a_random_search_keeps_its_log_scale_for_the_figure(smoke, tmp_path):
    search = dropcli.sweep({"optim.lr": "0.01:1:log"}, smoke, sample=2, run_dir=tmp_path / "search", progress=False)
    rates = [row["optim.lr"] for row in search.rows()]
    assert len(rates) == 2 and all(0.01 <= rate <= 1 for rate in rates)
    assert search.log_keys == ("optim.lr",)
    assert search.figure().axes[0].get_xscale() == "log"
