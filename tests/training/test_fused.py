"""train.engine=fused against the autograd engine: the same masks give the same weights."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from dropcli import data, runs
from dropcli.config import load_config
from dropcli.errors import DropcliError
from dropcli.parallel.workers import Workers
from dropcli.training.epoch import Diverged, train_one_epoch
from dropcli.training.state import new_state

CPU = torch.device("cpu")


def trained_weights(
    fake_data, engine: str, *overrides: str, epochs: int = 1, device: torch.device = CPU
) -> tuple[list[torch.Tensor], float, float]:
    """The weights after `epochs` epochs on 1,000 stand-in images (batches of 64: the last one
    is short), and the last epoch's (loss, accuracy)."""
    config = load_config(
        None,
        [
            f"data.root={fake_data}",
            "data.train_limit=1000",
            "data.test_limit=100",
            "train.batch_size=64",
            f"train.engine={engine}",
            *overrides,
        ],
    )
    dataset = data.load(config.data, config.seed, device)
    state = new_state(config, device)  # seeds torch's generators, which the masks come from
    for epoch in range(1, epochs + 1):
        loss, accuracy = train_one_epoch(state, dataset.train, config, epoch)
    return [parameter.detach().clone() for parameter in state.model.parameters()], loss, accuracy


CASES = [
    ["model.kind=scratch", "model.mask_mode=bool"],
    ["model.kind=scratch", "model.mask_mode=int16"],
    ["model.kind=scratch", "model.mask_mode=bernoulli"],
    ["model.kind=scratch", "model.mask_mode=bits", "model.dropout_1=0.3", "model.dropout_2=0.7"],
    ["model.kind=scratch", "model.dropout_input=0.2"],
    ["model.kind=builtin"],
    ["model.kind=builtin", "model.dropout_input=0.2", "model.dropout_1=0.1"],
    ["model.kind=none"],
    ["model.kind=scratch", "model.dropout_2=1.0"],  # all of layer 2 dropped: zeros, no NaN
    ["optim.momentum=0.9", "optim.nesterov=true", "optim.weight_decay=0.001"],  # through optimizer.step()
    ["optim.name=adam", "optim.lr=0.001"],
    ["optim.max_norm=0.5", "optim.lr=0.5"],
    # Other depths: three hidden layers with a rate each, and one hidden layer.
    ["model.kind=scratch", "model.hidden=64x48x32", "model.dropout=[0.2,0.5,0.3]", "model.dropout_input=0.2"],
    ["model.kind=builtin", "model.hidden=64x48x32", "model.dropout=0.5"],
    ["model.kind=scratch", "model.hidden=64x48x32", "optim.momentum=0.9"],
    ["model.kind=scratch", "model.hidden=96", "model.dropout=0.4", "model.dropout_input=0.1"],
    ["model.kind=builtin", "model.hidden=96"],
    ["model.kind=scratch", "train.label_smoothing=0.1"],  # against F.cross_entropy's label_smoothing
]


@pytest.mark.parametrize("overrides", CASES, ids=[" ".join(case) for case in CASES])
def test_fused_step_ends_where_autograd_does_given_the_same_masks(fake_data, overrides):
    # Both engines draw every mask from the same seeded generator in the same order, so they
    # compute the same steps; only the rounding of fused products differs.
    autograd, autograd_loss, autograd_acc = trained_weights(fake_data, "autograd", *overrides, epochs=2)
    try:
        fused, fused_loss, fused_acc = trained_weights(fake_data, "fused", *overrides, epochs=2)
    except Diverged as diverged:  # a loss gone non-finite where autograd's trained: a wrong number
        pytest.fail(f"the fused step diverged where autograd trains: {diverged}")
    depth = len(load_config(None, overrides).model.hidden)
    assert len(fused) == 2 * (depth + 1)  # a weight and a bias per hidden layer and the output
    for expected, actual in zip(autograd, fused, strict=True):
        assert torch.isfinite(actual).all()
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    assert fused_loss == pytest.approx(autograd_loss, rel=1e-4)
    assert fused_acc == pytest.approx(autograd_acc, abs=0.002)  # an argmax may flip on a near tie


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("mask_mode", ["bool", "int16"])
def test_on_cuda_the_fused_step_ends_where_autograd_does(fake_data, mask_mode):
    # The scratch op and the fused step draw from the same CUDA generator. (builtin is left out:
    # on CUDA nn.Dropout draws with a fused kernel of its own, which the fused engine does not copy.)
    cuda = torch.device("cuda")
    autograd, _, _ = trained_weights(fake_data, "autograd", f"model.mask_mode={mask_mode}", epochs=2, device=cuda)
    fused, _, _ = trained_weights(fake_data, "fused", f"model.mask_mode={mask_mode}", epochs=2, device=cuda)
    for expected, actual in zip(autograd, fused, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_one_fused_step_moves_each_weight_by_minus_lr_times_its_gradient(fake_data):
    # Against autograd's gradient of the same batch: 64 images, one batch, no noise (so no masks).
    config = load_config(
        None,
        [
            f"data.root={fake_data}",
            "data.train_limit=64",
            "data.test_limit=100",
            "train.batch_size=64",
            "train.engine=fused",
            "model.kind=none",
            "optim.lr=0.5",
        ],
    )
    dataset = data.load(config.data, config.seed, CPU)
    state = new_state(config, CPU)
    before = copy.deepcopy(state.model)
    train_one_epoch(state, dataset.train, config, epoch=1)  # the one batch holds every image, in some order
    F.cross_entropy(before(dataset.train.X), dataset.train.y).backward()  # the mean loss: the same in any order
    for old, new in zip(before.parameters(), state.model.parameters(), strict=True):
        assert not torch.equal(new, old)
        torch.testing.assert_close(new, old.detach() - 0.5 * old.grad, rtol=1e-4, atol=1e-6)


def test_a_fused_step_with_input_dropout_leaves_the_callers_batch_as_it_was(fake_data):
    config = load_config(
        None,
        [f"data.root={fake_data}", "data.train_limit=64", "data.test_limit=100", "train.batch_size=64"]
        + ["train.engine=fused", "model.dropout_input=0.3"],
    )
    dataset = data.load(config.data, config.seed, CPU)
    images = dataset.train.X.clone()
    train_one_epoch(new_state(config, CPU), dataset.train, config, epoch=1)
    assert torch.equal(dataset.train.X, images)  # the input mask went on a copy, not on the data set


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.kind=dropconnect", "train.engine must be autograd for model.kind dropconnect"),
        ("model.kind=gaussian", "train.engine must be autograd for model.kind gaussian"),
        ("train.compile=true", "train.engine must be autograd with train.compile"),
        ("metrics.activation_stats=true", "train.engine must be autograd with metrics.activation_stats"),
    ],
)
def test_what_the_fused_engine_cannot_run_is_refused_with_the_way_out(override, message):
    with pytest.raises(DropcliError, match=message):
        load_config(None, ["train.engine=fused", override])


def test_the_fused_engine_is_refused_for_data_parallel_training():
    class TwoWorkers(Workers):
        world_size = 2

    config = load_config(None, ["train.engine=fused"])
    with pytest.raises(DropcliError, match="train.engine=fused trains in one process"):
        new_state(config, CPU, TwoWorkers())


def test_a_fused_run_resumes_exactly(in_tmp, invoke, small_args, without_times):
    args = [*small_args(epochs=3), "--set", "train.engine=fused", "-q"]
    assert invoke("train", *args, "--run-dir", "whole").exit_code == 0
    assert invoke("train", *small_args(epochs=1), "--set", "train.engine=fused", "-q", "--run-dir", "part").exit_code == 0
    assert invoke("train", "--resume", "part", "--set", "train.epochs=3", "-q").exit_code == 0
    whole = [json.loads(line) for line in (in_tmp / "whole" / runs.METRICS_FILE).read_text().splitlines()]
    resumed = [json.loads(line) for line in (in_tmp / "part" / runs.METRICS_FILE).read_text().splitlines()]
    assert without_times(resumed) == without_times(whole)


def test_a_sweep_over_the_engines_gives_both_the_same_accuracy(in_tmp, invoke, small_args):
    result = invoke("sweep", *small_args(epochs=1), "--grid", "train.engine=autograd,fused", "--run-dir", "s", "-q")
    assert result.exit_code == 0, result.output
    cells = json.loads((in_tmp / "s" / "results.json").read_text())["cells"]
    accuracies = [cell["test_acc"]["mean"] for cell in cells]
    assert len(accuracies) == 2 and accuracies[0] == pytest.approx(accuracies[1], abs=0.01)


def test_a_run_may_switch_engines_on_resume(in_tmp, invoke, small_args):
    assert invoke("train", *small_args(epochs=1), "-q", "--run-dir", "r").exit_code == 0
    result = invoke("train", "--resume", "r", "--engine", "fused", "--set", "train.epochs=2", "-q")
    assert result.exit_code == 0, result.output
    lines = (in_tmp / "r" / runs.METRICS_FILE).read_text().splitlines()
    assert len(lines) == 2 and "engine: fused" in (in_tmp / "r" / runs.CONFIG_FILE).read_text()


@pytest.mark.parametrize(
    "momentum, weight_decay, in_place", [(0.0, 0.0, True), (0.9, 0.0, False), (0.0, 1e-4, False), (1e-3, 1e-3, False)]
)
def test_plain_sgd_moves_the_weights_in_place_and_anything_else_through_the_optimizer(build, momentum, weight_decay, in_place):
    """Plain SGD (no momentum, no weight decay) adds each layer's update straight into its weights:
    no .grad is made, nor is the optimizer stepped; anything else hands the optimizer .grad."""
    from dropcli.training.fused import FusedStep

    model = build("scratch")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    stepped = []
    optimizer.step = lambda *args, **kwargs: stepped.append(1)
    generator = torch.Generator().manual_seed(0)
    X, y = torch.rand(16, 784, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    FusedStep(model, optimizer, "fp32", 0.0)(X, y, 16)
    assert all((p.grad is None) == in_place for p in model.parameters())
    assert stepped == ([] if in_place else [1])


@pytest.mark.parametrize("dropout_input, dropout", [(0.0, (0.5, 0.5)), (0.5, (0.5, 0.5)), (0.5, (0.5, 0.0)), (0.5, (0.0, 0.5))])
def test_a_fused_step_leaves_the_callers_batch_as_it_was(build, dropout_input, dropout):
    from dropcli.training.fused import FusedStep

    model = build("scratch", dropout_input=dropout_input, dropout=dropout)  # the last two: a hidden layer without a rate
    generator = torch.Generator().manual_seed(1)
    X, y = torch.rand(16, 784, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    before = X.clone()
    FusedStep(model, torch.optim.SGD(model.parameters(), lr=0.1), "fp32", 0.0)(X, y, 16)
    assert torch.equal(X, before)  # input dropout masks a copy, not the data set's tensor


def test_a_fused_step_smooths_no_labels_unless_told(build):
    from dropcli.training.fused import FusedStep

    generator = torch.Generator().manual_seed(2)
    X, y = torch.rand(16, 784, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    default = build("scratch", dropout=(0.0, 0.0))  # no masks: the two steps see the same net
    told = copy.deepcopy(default)
    FusedStep(default, torch.optim.SGD(default.parameters(), lr=0.1), "fp32")(X, y, 16)
    FusedStep(told, torch.optim.SGD(told.parameters(), lr=0.1), "fp32", 0.0)(X, y, 16)
    assert all(torch.equal(a, b) for a, b in zip(default.parameters(), told.parameters(), strict=True))
