"""What one epoch reports beside its accuracy: its times, where a divergence began and what to do
about it, the progress loss under torchrun, flip-averaged accuracies, and the switches that decide
what runs (augmentation, gradients in evaluation)."""

import math

import pytest
import torch

from dropcli import data
from dropcli.config import load_config
from dropcli.training import epoch as epoch_module
from dropcli.training.epoch import Diverged, evaluate, flip_averaged_accuracy, run_epoch, train_one_epoch
from dropcli.training.state import new_state

CPU = torch.device("cpu")


def setup(fake_data, *overrides):
    config = load_config(None, [f"data.root={fake_data}", "data.train_limit=600", "data.test_limit=200", *overrides])
    return config, data.load(config.data, config.seed, CPU), new_state(config, CPU)


class _Clock:
    """time.perf_counter stand-in: each read is `step` seconds after the last."""

    def __init__(self, start: float, step: float):
        self.now, self.step = start, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def test_an_epochs_times_are_differences_of_the_clock(fake_data, monkeypatch):
    config, dataset, state = setup(fake_data)
    monkeypatch.setattr(epoch_module, "time", _Clock(start=1000.0, step=7.0))
    metrics = run_epoch(state, dataset, config, 1)
    # Read three times: at the start (1007), after training (1014), at the end (1021).
    assert metrics.seconds == pytest.approx(14.0)
    assert metrics.samples_per_s == pytest.approx(len(dataset.train) / 7.0)  # 85.7: not rounded down to 85


@pytest.mark.parametrize("split", ["test", "val"])
def test_weights_gone_non_finite_after_the_last_loss_check_stop_the_epoch_at_its_end(fake_data, monkeypatch, split):
    config, dataset, state = setup(fake_data, "data.val_split=0.1")
    real = epoch_module.evaluate

    def evaluate(model, scored, **kwargs):  # as if the epoch's last steps had made the weights NaN
        loss, accuracy = real(model, scored, **kwargs)
        return (math.nan if scored is getattr(dataset, split) else loss), accuracy

    monkeypatch.setattr(epoch_module, "evaluate", evaluate)
    name = {"test": "test", "val": "validation"}[split]
    with pytest.raises(Diverged, match=rf"at epoch 1, its end \(the {name} loss is nan\)"):
        run_epoch(state, dataset, config, 1)


def test_the_fused_engine_named_in_a_config_runs_the_fused_step(fake_data, monkeypatch):
    calls = []

    class Recording(epoch_module.FusedStep):
        def __call__(self, X, y, global_size):
            calls.append(len(X))
            return super().__call__(X, y, global_size)

    monkeypatch.setattr(epoch_module, "FusedStep", Recording)
    # --set gives the engine as a string made at run time: equal to "fused", not the same object.
    config, dataset, state = setup(fake_data, "train.engine=fused", "train.batch_size=100")
    train_one_epoch(state, dataset.train, config, epoch=1)
    assert calls == [100] * 6


def test_the_divergence_hint_suggests_a_tenth_of_the_learning_rate():
    message = str(Diverged(4, "step 7", lr=0.3))
    assert "at epoch 4, step 7" in message
    assert "(now 0.3), e.g. --set optim.lr=0.03" in message


def test_a_divergence_names_the_first_step_whose_loss_was_not_finite(fake_data, monkeypatch):
    config, dataset, state = setup(fake_data, "train.engine=autograd", "train.batch_size=50")  # 12 batches

    class TurnsNaN(epoch_module._AutogradStep):
        calls = 0

        def __call__(self, X, y, global_size):
            loss, logits = super().__call__(X, y, global_size)
            TurnsNaN.calls += 1
            return (torch.full_like(loss, math.nan) if TurnsNaN.calls >= 3 else loss), logits

    monkeypatch.setattr(epoch_module, "_AutogradStep", TurnsNaN)
    with pytest.raises(Diverged, match=r"at epoch 1, step 3;"):
        train_one_epoch(state, dataset.train, config, epoch=1)  # noticed at the 10th batch's report


class _OtherWorkerLosesMore:
    """Rank 0 of two workers whose partner's every value is this worker's plus one."""

    rank, world_size, local_rank, local_world_size = 0, 2, 0, 1

    def all_reduce(self, tensor):
        return tensor * 2 + 1


def test_under_torchrun_the_progress_loss_is_the_mean_over_workers(fake_data, monkeypatch):
    config, dataset, state = setup(fake_data, "train.engine=autograd", "train.batch_size=50")
    state.workers = _OtherWorkerLosesMore()
    local = []

    correct = []

    class Recording(epoch_module._AutogradStep):
        def __call__(self, X, y, global_size):
            loss, logits = super().__call__(X, y, global_size)
            local.append(loss.item())
            correct.append((logits.argmax(dim=1) == y).sum().item())
            return loss, logits

    monkeypatch.setattr(epoch_module, "_AutogradStep", Recording)
    reported = []
    loss, accuracy = train_one_epoch(
        state, dataset.train, config, 1, lambda e, done, n, loss: loss is not None and reported.append((done, loss))
    )
    # Reports at batches 10 and 12: the mean of this worker's loss and its partner's (one more).
    assert reported == [(10, pytest.approx(local[9] + 0.5)), (12, pytest.approx(local[11] + 0.5))]
    # The epoch's: over all 600 examples, this worker's 25 of each batch of 50 (its batch loss is
    # their mean) and its partner's (each sum one more).
    assert loss == pytest.approx((2 * 25 * sum(local) + 1) / 600)
    assert accuracy == pytest.approx((2 * sum(correct) + 1) / 600)


def test_progress_is_reported_as_the_epoch_starts_every_ten_batches_and_at_its_last(fake_data):
    config, dataset, state = setup(fake_data, "train.batch_size=24")  # 25 batches
    reported = []
    train_one_epoch(state, dataset.train, config, 1, lambda epoch, done, n, loss: reported.append((done, n, loss is None)))
    assert reported == [(0, 25, True), (10, 25, False), (20, 25, False), (25, 25, False)]


def test_augmentation_runs_on_every_batch_when_on_and_never_when_off(fake_data, monkeypatch):
    calls = []
    real = data.augment.shift_and_flip
    monkeypatch.setattr(data.augment, "shift_and_flip", lambda X, *rest: calls.append(len(X)) or real(X, *rest))
    config, dataset, state = setup(fake_data, "train.batch_size=100")
    train_one_epoch(state, dataset.train, config, epoch=1)
    assert calls == []
    config, dataset, state = setup(fake_data, "train.batch_size=100", "data.augment.flip=true")
    train_one_epoch(state, dataset.train, config, epoch=1)
    assert calls == [100] * 6


@pytest.mark.parametrize("val_split, splits", [("0.1", {"test", "val"}), ("0", {"test"})])
def test_flip_averaged_accuracy_is_reported_for_each_split_the_data_has(fake_data, val_split, splits):
    config, dataset, state = setup(fake_data, "metrics.flip_average=true", f"data.val_split={val_split}")
    metrics = run_epoch(state, dataset, config, 1)
    assert set(metrics.flip_acc) == splits
    for name in splits:
        assert metrics.flip_acc[name] == flip_averaged_accuracy(state.model, getattr(dataset, name))
    assert metrics.test_acc is not None  # beside the plain accuracy, not instead of it


def test_evaluation_records_no_gradients(fake_data):
    config, dataset, state = setup(fake_data)
    grad_enabled = []
    state.model.register_forward_hook(lambda module, args, out: grad_enabled.append(torch.is_grad_enabled()))
    evaluate(state.model, dataset.test)
    flip_averaged_accuracy(state.model, dataset.test)
    assert grad_enabled and not any(grad_enabled)
