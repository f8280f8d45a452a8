"""checkpoints/best.pt is the epoch with the best validation score, never the best test score;
without a validation split there is no best epoch at all."""

import dataclasses
import json

import pytest

from dropcli import runs
from dropcli.runs import checkpoints, loop

# Scores that disagree: the best epoch by validation (2) is the worst by test accuracy.
VAL_ACC = [0.50, 0.90, 0.70, 0.60]
TEST_ACC = [0.95, 0.40, 0.80, 0.99]


@pytest.fixture
def scripted_scores(monkeypatch):
    """Each epoch trains for real, then reports the scores above (validation ones where the run has a split)."""
    real = loop.run_epoch

    def run_epoch(state, data, config, epoch, *args, **kwargs):
        metrics = real(state, data, config, epoch, *args, **kwargs)
        val = VAL_ACC[epoch - 1] if metrics.val_acc is not None else None
        return dataclasses.replace(metrics, val_acc=val, test_acc=TEST_ACC[epoch - 1])

    monkeypatch.setattr(loop, "run_epoch", run_epoch)


def test_the_best_epoch_is_the_best_by_validation_not_by_test(in_tmp, invoke, small_args, scripted_scores):
    run_dir = in_tmp / "r"
    trained = invoke("train", *small_args(4), "--set", "data.val_split=0.2", "--run-dir", run_dir, "-q")
    assert trained.exit_code == 0, trained.output
    summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
    assert summary["best"] == {"metric": "val_acc", "value": 0.90, "epoch": 2}
    assert summary["selection"] == "by val_acc, on the validation set"
    assert checkpoints.load(run_dir / runs.BEST_CHECKPOINT)["epoch"] == 2


def test_without_a_validation_split_there_is_no_best_epoch(in_tmp, invoke, small_args, scripted_scores):
    run_dir = in_tmp / "r"
    assert invoke("train", *small_args(4), "--run-dir", run_dir, "-q").exit_code == 0
    summary = json.loads((run_dir / runs.SUMMARY_FILE).read_text())
    assert summary["best"] is None and summary["final"]["epoch"] == 4  # the last epoch is reported
    assert "no validation split" in summary["selection"] and "select on the test set" in summary["selection"]
    assert sorted(p.name for p in (run_dir / runs.CHECKPOINT_DIR).iterdir()) == ["last.pt"]
    listed = invoke("runs", in_tmp)
    assert listed.exit_code == 0 and "0.9900" in listed.stdout  # the final test accuracy, shown as such
    assert "0.9500" not in listed.stdout  # no epoch's test score is shown as a "best"


@pytest.mark.parametrize("monitor", ["test_acc", "test_loss"])
def test_a_test_metric_cannot_pick_the_best_epoch(invoke, small_args, monitor):
    result = invoke("train", *small_args(1), "--set", "data.val_split=0.2", "--set", f"train.monitor={monitor}")
    assert result.exit_code == 2
    assert "train.monitor must be one of auto, val_acc, val_loss" in result.stderr and "select on the test set" in result.stderr
