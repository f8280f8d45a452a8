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
