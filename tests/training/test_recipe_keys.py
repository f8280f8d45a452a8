"""The recipe keys a search may tune: train.label_smoothing changes the training targets as it
says (against torch's own), is refused out of range, and resumes exactly on both engines."""

import json

import pytest
import torch
import torch.nn.functional as F

from dropcli import data, runs
from dropcli.config import load_config
from dropcli.training.epoch import evaluate, train_one_epoch
from dropcli.training.state import new_state

CPU = torch.device("cpu")


def one_epoch(fake_data, *overrides):
    config = load_config(None, [f"data.root={fake_data}", "data.train_limit=500", "data.test_limit=100", *overrides])
    dataset = data.load(config.data, config.seed, CPU)
    state = new_state(config, CPU)
    loss, _ = train_one_epoch(state, dataset.train, config, 1)
    return state, dataset, loss


@pytest.mark.parametrize("engine", ["autograd", "fused"])
def test_label_smoothing_trains_on_the_smoothed_targets(fake_data, engine):
    plain, dataset, plain_loss = one_epoch(fake_data, f"train.engine={engine}", "model.kind=none")
    smooth, _, smooth_loss = one_epoch(fake_data, f"train.engine={engine}", "model.kind=none", "train.label_smoothing=0.2")
    weights = [(a - b).abs().max().item() for a, b in zip(plain.model.parameters(), smooth.model.parameters(), strict=True)]
    assert max(weights) > 1e-4  # other targets, other steps
    # The epoch's loss is the smoothed cross-entropy: above the plain one of the same (trained) net,
    # and torch's own label_smoothing scores the net as the engine reported, to the last batches' drift.
    X, y = dataset.train.X, dataset.train.y
    smooth.model.eval()
    with torch.no_grad():
        logits = smooth.model(X)
    assert F.cross_entropy(logits, y, label_smoothing=0.2) > F.cross_entropy(logits, y)
    assert smooth_loss > plain_loss
    # evaluation keeps the plain cross-entropy: the metric does not move with the training targets
    loss, _ = evaluate(smooth.model, dataset.train)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)


@pytest.mark.parametrize("value", ["-0.1", "1", "1.5"])
def test_label_smoothing_out_of_range_is_one_line(in_tmp, invoke, small_args, value):
    result = invoke("train", *small_args(), "--set", f"train.label_smoothing={value}")
    assert result.exit_code == 2 and "train.label_smoothing" in result.output and "below 1" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("engine", ["autograd", "fused"])
def test_label_smoothing_resumes_exactly(in_tmp, invoke, small_args, without_times, engine):
    keys = ["--set", "train.label_smoothing=0.1", "--set", f"train.engine={engine}", "-q"]
    assert invoke("train", *small_args(epochs=3), *keys, "--run-dir", "whole").exit_code == 0
    assert invoke("train", *small_args(epochs=1), *keys, "--run-dir", "part").exit_code == 0
    assert invoke("train", "--resume", "part", "--set", "train.epochs=3", "-q").exit_code == 0
    whole = [json.loads(line) for line in (in_tmp / "whole" / runs.METRICS_FILE).read_text().splitlines()]
    resumed = [json.loads(line) for line in (in_tmp / "part" / runs.METRICS_FILE).read_text().splitlines()]
    assert without_times(resumed) == without_times(whole)


def weights(run_dir, name="last.pt"):
    return runs_checkpoint(run_dir / runs.CHECKPOINT_DIR / name)["model"]


def runs_checkpoint(path):
    from dropcli.runs import checkpoints

    return checkpoints.load(path)


def test_swa_is_the_mean_of_the_epochs_ends_from_swa_start(in_tmp, invoke, small_args):
    """Averaging does not change training: the swa model of 3 epochs from epoch 2 is the mean of a
    plain run's weights after epochs 2 and 3 (the same seed, the constant schedule)."""
    for epochs in (2, 3):
        assert invoke("train", *small_args(epochs=epochs), "-q", "--run-dir", f"plain{epochs}").exit_code == 0
    args = ["--set", "train.average=swa", "--set", "train.swa_start=2", "-q", "--run-dir", "swa"]
    assert invoke("train", *small_args(epochs=3), *args).exit_code == 0
    averaged, two, three = weights(in_tmp / "swa"), weights(in_tmp / "plain2"), weights(in_tmp / "plain3")
    for key in averaged:
        torch.testing.assert_close(averaged[key], (two[key] + three[key]) / 2)
    swa = runs.read_metrics(in_tmp / "swa")
    plain = runs.read_metrics(in_tmp / "plain3")
    assert swa[0]["test_loss"] == plain[0]["test_loss"]  # before swa_start: the weights as trained are scored
    assert swa[2]["test_loss"] != plain[2]["test_loss"]  # then the average is


@pytest.mark.parametrize("max_norm", [None, "0.5"])
def test_ema_follows_its_decay_after_every_step(in_tmp, invoke, small_args, max_norm):
    """One step an epoch (the whole 600 images a batch): after epoch 2 the average is
    d * w1 + (1 - d) * w2 of a plain run's weights w1, w2; with optim.max_norm, of the weights as
    max-norm leaves them (the two run in one hook after each step)."""
    one_step = ["--set", "train.batch_size=600", "-q", *(["--set", f"optim.max_norm={max_norm}"] if max_norm else [])]
    for epochs in (1, 2):
        assert invoke("train", *small_args(epochs=epochs), *one_step, "--run-dir", f"plain{epochs}").exit_code == 0
    ema = ["--set", "train.average=ema", "--set", "train.ema_decay=0.75", "--run-dir", "ema"]
    assert invoke("train", *small_args(epochs=2), *one_step, *ema).exit_code == 0
    averaged, one, two = weights(in_tmp / "ema"), weights(in_tmp / "plain1"), weights(in_tmp / "plain2")
    for key in averaged:
        torch.testing.assert_close(averaged[key], 0.75 * one[key] + 0.25 * two[key])


@pytest.mark.parametrize("average", ["ema", "swa"])
@pytest.mark.parametrize("engine", ["autograd", "fused"])
def test_an_averaged_run_resumes_exactly(in_tmp, invoke, small_args, without_times, average, engine):
    keys = ["--set", f"train.average={average}", "--set", "train.swa_start=1", "--set", f"train.engine={engine}", "-q"]
    assert invoke("train", *small_args(epochs=3), *keys, "--run-dir", "whole").exit_code == 0
    assert invoke("train", *small_args(epochs=2), *keys, "--run-dir", "part").exit_code == 0
    assert invoke("train", "--resume", "part", "--set", "train.epochs=3", "-q").exit_code == 0
    assert without_times(runs.read_metrics(in_tmp / "part")) == without_times(runs.read_metrics(in_tmp / "whole"))
    whole, part = weights(in_tmp / "whole"), weights(in_tmp / "part")
    assert all(torch.equal(whole[key], part[key]) for key in whole)


def test_resume_refuses_a_total_that_moves_swas_start_before_the_epochs_done(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(epochs=4), "--set", "train.average=swa", "-q", "--run-dir", "swa").exit_code == 0
    # swa of 4 epochs averages from epoch 3, all trained; of 8 from epoch 6: epoch 3 would not have counted
    refused = invoke("train", "--resume", "swa", "--set", "train.epochs=8")
    assert refused.exit_code == 2 and "averages from epoch 3 of 4" in refused.output and "start at epoch 6" in refused.output


@pytest.mark.parametrize("text", ["train.average=mean", "train.ema_decay=1", "train.swa_start=0", "train.swa_start=9"])
def test_averaging_keys_out_of_range_are_one_line(in_tmp, invoke, small_args, text):
    result = invoke("train", *small_args(epochs=2), "--set", text)
    assert result.exit_code == 2 and text.split("=")[0] in result.output and len(result.output.strip().splitlines()) == 1


def test_flip_averaging_classifies_by_the_mean_of_an_image_and_its_mirror(fake_data):
    from dropcli.training.epoch import flip_averaged_accuracy

    state, dataset, _ = one_epoch(fake_data)
    split = dataset.test
    model = state.model.eval()
    with torch.no_grad():  # the reference: one image at a time, mirrored by torch.fliplr
        correct = 0
        for image, label in zip(split.X, split.y, strict=True):
            square = image.view(28, 28)
            p = F.softmax(model(square.reshape(1, -1)), 1) + F.softmax(model(torch.fliplr(square).reshape(1, -1)), 1)
            correct += int(p.argmax() == label)
    assert flip_averaged_accuracy(model, split, batch_size=7) == pytest.approx(correct / len(split))


def test_flip_averaging_is_reported_beside_the_plain_accuracy_it_leaves_alone(in_tmp, invoke, small_args, without_times):
    split = ["--set", "data.val_split=0.2", "-q"]
    assert invoke("train", *small_args(), *split, "--run-dir", "plain").exit_code == 0
    shown = invoke("train", *small_args(), *split[:2], "--set", "metrics.flip_average=true", "--run-dir", "flips")
    assert shown.exit_code == 0 and "test acc (flips)" in shown.output and "val acc (flips)" in shown.output
    plain, flips = runs.read_metrics(in_tmp / "plain"), runs.read_metrics(in_tmp / "flips")
    assert all(set(m["flip_acc"]) == {"test", "val"} for m in flips)
    less = [{k: v for k, v in m.items() if k != "flip_acc"} for m in flips]
    assert without_times(less) == without_times([{k: v for k, v in m.items() if k != "flip_acc"} for m in plain])
