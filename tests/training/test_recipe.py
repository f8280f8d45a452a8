"""The dropout paper's recipe: input dropout, optimizers, momentum warm-up, max-norm, learning-rate
schedules, augmentation and early stopping; and the chapter's default run, pinned."""

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import only
from dropcli import data, runs
from dropcli.config import AugmentConfig, load_config
from dropcli.data import augment
from dropcli.errors import DropcliError
from dropcli.training.schedules import build_optimizer, first_changed_epoch, learning_rate, momentum, start_epoch


def optim(*overrides):
    return load_config(None, ["train.epochs=10", *overrides]).optim


def test_input_dropout_is_on_in_training_and_off_in_eval(build):
    X = torch.rand(64, 784) + 0.1  # no zero pixels of its own
    with_input, without = build("scratch", dropout_input=0.2), build("scratch")
    assert torch.equal(with_input.eval()(X), without.eval()(X))  # same weights, no noise in eval
    dropped = with_input.input_noise.train()(X)
    assert 0.15 < (dropped == 0).float().mean() < 0.25
    assert "input_noise" not in dict(without.named_children())  # the chapter's model is unchanged


@pytest.mark.parametrize("kind", ["builtin", "gaussian", "dropconnect"])
def test_input_noise_for_the_other_kinds(build, kind):
    model = build(kind, dropout_input=0.3)
    X = torch.rand(32, 784)
    assert not torch.equal(model.input_noise.train()(X), X) and torch.equal(model.input_noise.eval()(X), X)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], [0.1] * 10),
        (["optim.schedule=step", "optim.step_epochs=3", "optim.step_gamma=0.5"], [0.1] * 3 + [0.05] * 3 + [0.025] * 3 + [0.0125]),
        (["optim.schedule=constant", "optim.warmup_epochs=3"], [0.025, 0.05, 0.075] + [0.1] * 7),
        (  # the uncertainty study's schedule: one warm-up epoch, then a half cosine over the other nine
            ["optim.schedule=cosine", "optim.warmup_epochs=1"],
            [0.05] + [0.05 * (1 + math.cos(math.pi * step / 9)) for step in range(9)],
        ),
        (  # onecycle: from lr / 25 up to lr over the first 3 epochs, then a half cosine down to lr / 1e4
            ["optim.schedule=onecycle", "optim.warmup_epochs=3"],
            [0.004, 0.052, 0.1] + [1e-5 + (0.1 - 1e-5) * (1 + math.cos(math.pi * step / 7)) / 2 for step in range(1, 8)],
        ),
    ],
)
def test_schedules_give_the_expected_learning_rates(overrides, expected):
    config = optim(*overrides)
    assert [learning_rate(config, epoch, 10) for epoch in range(1, 11)] == pytest.approx(expected)


def test_cosine_and_onecycle_shapes():
    cosine = [learning_rate(optim("optim.schedule=cosine"), e, 10) for e in range(1, 11)]
    assert cosine[0] == pytest.approx(0.1) and all(a > b > 0 for a, b in zip(cosine, cosine[1:]))
    assert cosine[5] == pytest.approx(0.05 * (1 + torch.cos(torch.tensor(torch.pi * 5 / 10)).item()))
    onecycle = [learning_rate(optim("optim.schedule=onecycle"), e, 10) for e in range(1, 11)]
    assert onecycle[0] == pytest.approx(0.1 / 25) and max(onecycle) == pytest.approx(0.1) and onecycle.index(0.1) == 2
    assert onecycle[-1] == pytest.approx(0.1 / 1e4)


def test_momentum_rises_as_in_the_paper():
    config = optim("optim.momentum=0.5", "optim.momentum_final=0.99", "optim.momentum_epochs=10")
    assert [momentum(config, e) for e in (1, 6, 11, 30)] == pytest.approx([0.5, 0.745, 0.99, 0.99])


def test_each_epoch_sets_the_sgd_momentum_of_its_place_on_the_ramp():
    # optim.name given as a config file or --set gives it: a string read at run time, equal to "sgd" but not the same object
    config = optim(
        "optim.name=sgd", "optim.momentum=0.5", "optim.momentum_final=0.99", "optim.momentum_epochs=10", "optim.schedule=cosine"
    )
    optimizer = build_optimizer(config, torch.nn.Linear(2, 2).parameters())
    for epoch, (lr, beta) in {1: (0.1, 0.5), 6: (0.05 * (1 + math.cos(math.pi * 5 / 10)), 0.745), 11: (None, 0.99)}.items():
        returned = start_epoch(optimizer, config, epoch, 10 if lr is not None else 20)
        assert optimizer.param_groups[0]["momentum"] == pytest.approx(beta)
        assert optimizer.param_groups[0]["lr"] == returned and (lr is None or returned == pytest.approx(lr))
    adam = optim("optim.name=adam")  # its momentum is optim.betas: no schedule sets one
    optimizer = build_optimizer(adam, torch.nn.Linear(2, 2).parameters())
    start_epoch(optimizer, adam, 6, 10)
    assert "momentum" not in optimizer.param_groups[0]


@pytest.mark.parametrize("name, kind", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_the_optimizer_built_is_the_one_named_with_the_configs_settings(name, kind):
    extra = ["optim.momentum=0.9", "optim.nesterov=true"] if name == "sgd" else ["optim.betas=[0.8, 0.99]"]
    config = optim(f"optim.name={name}", "optim.lr=0.02", "optim.weight_decay=0.001", *extra)
    optimizer = build_optimizer(config, torch.nn.Linear(2, 2).parameters())
    assert type(optimizer) is kind  # AdamW is a subclass of Adam in newer torch: isinstance cannot tell them apart
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.02, 0.001)
    if name == "sgd":
        assert (group["momentum"], group["nesterov"]) == (0.9, True)
    else:
        assert group["betas"] == (0.8, 0.99)


def test_a_one_epoch_onecycle_trains_at_its_peak():
    assert learning_rate(optim("optim.schedule=onecycle"), 1, 1) == 0.1  # a rise of round(0.3) = 0 epochs is one


def test_onecycle_with_a_one_epoch_rise_starts_at_its_peak():
    config = optim("optim.schedule=onecycle", "optim.warmup_epochs=1")
    rates = [learning_rate(config, epoch, 10) for epoch in range(1, 11)]
    assert rates == pytest.approx([0.1] + [1e-5 + (0.1 - 1e-5) * (1 + math.cos(math.pi * step / 9)) / 2 for step in range(1, 10)])


@pytest.mark.parametrize(
    "overrides, done, changed",
    [
        (["optim.schedule=cosine"], 1, None),  # a cosine's first epoch is its full rate whatever the total
        (["optim.schedule=cosine"], 2, 2),
        (["optim.schedule=cosine"], 5, 2),
        (["optim.schedule=onecycle", "optim.warmup_epochs=3"], 3, None),  # the rise is set by its epochs alone
        (["optim.schedule=onecycle", "optim.warmup_epochs=3"], 4, 4),
        (["optim.schedule=step", "optim.warmup_epochs=2"], 10, None),
        (["optim.schedule=onecycle"], 1, None),  # the rise (3 of 10, 6 of 20) starts at lr / 25 either way
    ],
)
def test_the_first_trained_epoch_whose_rate_a_new_total_changes(overrides, done, changed):
    assert first_changed_epoch(optim(*overrides), 10, 20, done) == changed


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.name=adam", "optim.momentum=0.9"], "optim.momentum must be 0 unless optim.name is sgd"),
        (["optim.name=rmsprop"], "optim.name must be one of sgd, adam, adamw"),
        (["optim.betas=[0.9]"], "optim.betas must be a list of 2 numbers"),
        (["optim.nesterov=true"], "optim.nesterov must be false unless sgd with optim.momentum > 0"),
        (["optim.max_norm=0"], "optim.max_norm must be null or a finite number > 0"),
        (["optim.schedule=linear"], "optim.schedule must be one of constant, step, cosine, onecycle"),
        (["train.early_stopping=3"], "never the test set"),
        (["model.kind=none", "model.dropout_input=0.2"], "model.dropout_input must be 0 for model.kind none"),
        (["data.augment.shift=20"], "data.augment.shift must be between 0 and 14"),
        (["data.augment.shfit=2"], "did you mean 'data.augment.shift'"),
    ],
)
def test_recipe_keys_are_validated(overrides, message):
    with pytest.raises(DropcliError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(None, overrides)


def test_betas_round_trip_through_yaml(tmp_path):
    from dropcli.config import to_yaml

    config = load_config(None, ["optim.name=adamw", "optim.betas=[0.8, 0.99]"])
    (tmp_path / "c.yaml").write_text(to_yaml(config))
    assert load_config(tmp_path / "c.yaml").optim.betas == (0.8, 0.99)


def test_max_norm_holds_after_every_step(in_tmp, invoke, small_args):
    args = [*small_args(epochs=1), "--set", "optim.max_norm=0.3", "--set", "optim.lr=0.5", "--run-dir", "r", "-q"]
    assert invoke("train", *args).exit_code == 0
    weights = torch.load(in_tmp / "r" / runs.LAST_CHECKPOINT, weights_only=True)["model"]
    for name in ("hidden_1.weight", "hidden_2.weight"):
        norms = weights[name].norm(dim=1)
        assert norms.max() <= 0.3 + 1e-5 and norms.max() > 0.29  # held, and it had to be
    assert weights["output.weight"].norm(dim=1).max() > 0  # the output layer is not constrained


@pytest.mark.parametrize("engine", ["autograd", "fused"])
def test_max_norm_holds_on_every_hidden_layer_of_a_deeper_net(in_tmp, invoke, small_args, engine):
    args = [
        *small_args(epochs=1),
        "--set",
        "model.hidden=32x24x16",
        "--set",
        "optim.max_norm=0.3",
        "--set",
        "optim.lr=0.5",
        "--set",
        f"train.engine={engine}",
        "--run-dir",
        "r",
        "-q",
    ]
    assert invoke("train", *args).exit_code == 0
    weights = torch.load(in_tmp / "r" / runs.LAST_CHECKPOINT, weights_only=True)["model"]
    for name in ("hidden_1.weight", "hidden_2.weight", "hidden_3.weight"):
        norms = weights[name].norm(dim=1)
        assert norms.max() <= 0.3 + 1e-5 and norms.max() > 0.29


def test_adam_and_sgd_momentum_train(in_tmp, invoke, small_args):
    for name, extra in (
        ("adam", ["optim.name=adam", "optim.lr=0.001"]),
        ("nesterov", ["optim.momentum=0.9", "optim.nesterov=true"]),
    ):
        overrides = [part for item in extra for part in ("--set", item)]
        assert invoke("train", *small_args(epochs=3), *overrides, "--run-dir", name, "-q").exit_code == 0
        assert runs.read_metrics(in_tmp / name)[-1]["test_acc"] > 0.8


def test_each_epochs_learning_rate_is_recorded(in_tmp, invoke, small_args):
    args = [*small_args(epochs=4), "--set", "optim.schedule=step", "--set", "optim.step_epochs=2", "--run-dir", "r"]
    result = invoke("train", *args)
    assert result.exit_code == 0 and "lr 0.01" in result.stdout
    assert [m["lr"] for m in runs.read_metrics(in_tmp / "r")] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_shifts_and_flips_move_pixels_and_repeat_with_the_seed():
    X = torch.zeros(2, 784)
    X[:, 28 * 14 + 3] = 1.0  # one bright pixel, row 14, column 3
    flipped = augment.shift_and_flip(X, AugmentConfig(shift=0, flip=True), torch.Generator().manual_seed(1))
    positions = {int(i) for i in flipped.nonzero()[:, 1]}
    assert positions <= {28 * 14 + 3, 28 * 14 + 24}
    shifted = augment.shift_and_flip(X, AugmentConfig(shift=2), torch.Generator().manual_seed(0))
    for row in shifted:
        index = only(row.nonzero()[:, 0].tolist())
        assert abs(index // 28 - 14) <= 2 and abs(index % 28 - 3) <= 2
    again = augment.shift_and_flip(X, AugmentConfig(shift=2), torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)
    many = augment.shift_and_flip(X.repeat(200, 1), AugmentConfig(shift=2, flip=True), torch.Generator().manual_seed(3))
    assert len({tuple(row.nonzero()[:, 0].tolist()) for row in many}) > 20  # per-image draws


def test_augmented_training_resumes_exactly(in_tmp, invoke, small_args, without_times):
    args = [*small_args(), "--set", "data.augment.shift=2", "--set", "data.augment.flip=true", "-q"]
    assert invoke("train", *args, "--set", "train.epochs=3", "--run-dir", "whole").exit_code == 0
    assert invoke("train", *args, "--set", "train.epochs=2", "--run-dir", "part").exit_code == 0
    assert invoke("train", "--resume", "part", "--set", "train.epochs=3", "-q").exit_code == 0
    whole, part = runs.read_metrics(in_tmp / "whole"), runs.read_metrics(in_tmp / "part")
    assert without_times(part) == without_times(whole)
    assert invoke("train", *small_args(epochs=3), "--run-dir", "plain", "-q").exit_code == 0
    assert without_times(runs.read_metrics(in_tmp / "plain")) != without_times(whole)  # augmentation did something


def test_early_stopping_stops_and_reports_the_best_checkpoint(in_tmp, invoke, small_args):
    # The stand-in data is easy: validation accuracy soon stops rising, and training stops.
    args = [*small_args(epochs=40), "--set", "data.val_split=0.2", "--set", "train.early_stopping=2", "--run-dir", "r", "-q"]
    assert invoke("train", *args).exit_code == 0
    metrics = runs.read_metrics(in_tmp / "r")
    summary = json.loads((in_tmp / "r" / runs.SUMMARY_FILE).read_text())
    best = max(range(len(metrics)), key=lambda i: (metrics[i]["val_acc"], -i))  # the first epoch of the best value
    assert len(metrics) == best + 1 + 2 < 40
    assert summary["final"] == metrics[best] and summary["best"]["epoch"] == best + 1
    assert "early stopping: reported epoch" in summary["reason"]
    result = invoke("train", "--resume", in_tmp / "r", "--set", "train.epochs=60")
    assert result.exit_code == 2 and f"the run stopped early at epoch {len(metrics)}" in result.stderr, result.output
    # The gap is measured on the best weights too: evaluate best.pt agrees with the summary.
    evaluated = json.loads(invoke("evaluate", in_tmp / "r" / runs.BEST_CHECKPOINT, "--split", "test", "--json").stdout)
    assert evaluated["accuracy"] == summary["final"]["test_acc"]
    result = invoke("train", "--resume", "r", "--set", "train.epochs=50")
    assert result.exit_code == 2 and "stopped early" in result.stderr


def test_recipe_keys_work_as_grid_keys(in_tmp, invoke, small_args):
    grids = ["--grid", "optim.schedule=constant,cosine", "--grid", "data.augment.flip=false,true"]
    assert invoke("sweep", *small_args(epochs=1), *grids, "--run-dir", "s", "-q").exit_code == 0
    cells = json.loads((in_tmp / "s" / "results.json").read_text())["cells"]
    assert len(cells) == 4 and len({c["test_acc"]["mean"] for c in cells}) > 1


# The first two epochs of `make train`: (train loss 1, 2), (test loss 1, test acc 1, train acc 1).
# int16 masks are today's default; bool masks are the chapter's draw, which srivastava.yaml,
# best.yaml and long.yaml keep (their documented numbers were measured with them).
PINNED_RUNS = {
    "int16": ((1.1519, 0.6866), (0.7200, 0.7293, 0.5841)),  # measured 2026-11-28, AVX2
    "bool": ((1.1571, 0.6858), (0.7282, 0.7171, 0.5827)),  # measured 2026-11-27; AVX2 agrees within the tolerances
}


@pytest.mark.skipif(data.find(None) is None, reason="the real Fashion-MNIST is not on this machine")
@pytest.mark.parametrize("mask_mode", PINNED_RUNS)
def test_the_chapters_default_run_is_unchanged(in_tmp, invoke, mask_mode):
    # The last digits depend on the CPU's kernels (AVX2 and AVX-512 machines differ past the
    # fourth decimal of the test accuracy), so the tolerances are those; a change to the model,
    # data order, masks or optimizer moves far more.
    default = Path(__file__).parents[2] / "configs" / "default.yaml"
    args = ["-c", default, "--device", "cpu", "--set", "train.epochs=2", "--set", f"model.mask_mode={mask_mode}"]
    result = invoke("train", *args, "--run-dir", "r", "-q")
    assert result.exit_code == 0, result.output
    first, second = runs.read_metrics(in_tmp / "r")
    (train_loss_1, train_loss_2), (test_loss, test_acc, train_acc) = PINNED_RUNS[mask_mode]
    assert first["train_loss"] == pytest.approx(train_loss_1, abs=2e-4)
    assert second["train_loss"] == pytest.approx(train_loss_2, abs=2e-4)
    assert first["test_loss"] == pytest.approx(test_loss, abs=3e-4)
    assert first["test_acc"] == pytest.approx(test_acc, abs=0.002)
    assert first["train_acc"] == pytest.approx(train_acc, abs=0.0005)


def test_tensorboard_event_files_hold_the_metrics(in_tmp, invoke, small_args):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    args = [*small_args(epochs=3), "--set", "data.val_split=0.1", "--set", "optim.schedule=cosine", "--tensorboard"]
    assert invoke("train", *args, "--run-dir", "r", "-q").exit_code == 0
    events = accumulator.EventAccumulator(str(in_tmp / "r"))
    events.Reload()
    metrics = runs.read_metrics(in_tmp / "r")
    for tag, key in (("test/acc", "test_acc"), ("train/loss", "train_loss"), ("val/acc", "val_acc"), ("optim/lr", "lr")):
        assert [(e.step, e.value) for e in events.Scalars(tag)] == [(m["epoch"], pytest.approx(m[key])) for m in metrics]
    assert len(events.Scalars("batch/train_loss")) >= 3
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins and b"optim.schedule" in plugins["_hparams_/session_start_info"]


def test_tensorboard_missing_is_one_line(in_tmp, invoke, small_args, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    result = invoke("train", *small_args(), "--tensorboard", "--run-dir", "r")
    assert result.exit_code == 2 and "pip install 'dropcli[tensorboard]'" in result.stderr
    assert not (in_tmp / "r").exists()
