import pytest
import torch
from torch import nn

from dropcli.model.dropout import Dropout


@pytest.mark.parametrize("kind", ["scratch", "builtin"])
def test_shapes_and_layers(kind, build):
    model = build(kind, hidden=(32, 16), dropout=(0.2, 0.4))
    assert model(torch.rand(5, 784)).shape == (5, 10)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)  # images are flattened
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 32), (32, 16), (16, 10)]
    dropouts = [m for m in model if isinstance(m, (Dropout, nn.Dropout))]
    assert [m.p for m in dropouts] == [0.2, 0.4]
    assert all(isinstance(m, Dropout if kind == "scratch" else nn.Dropout) for m in dropouts)


def test_both_kinds_start_from_the_same_weights_under_one_seed(build):
    scratch, builtin = build("scratch"), build("builtin")
    for a, b in zip(scratch.state_dict().values(), builtin.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["scratch", "builtin"])
def test_dropout_is_on_in_train_mode(kind, build):
    model = build(kind).train()
    X = torch.rand(64, 784)
    assert not torch.equal(model(X), model(X))


def test_bernoulli_scratch_trains_exactly_like_builtin_on_cpu(build):
    X, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    grads = []
    for kind in ("scratch", "builtin"):
        model = build(kind, mask_mode="bernoulli").train()
        torch.manual_seed(9)
        nn.functional.cross_entropy(model(X), y).backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["scratch", "builtin", "none", "dropconnect", "gaussian"])
@pytest.mark.parametrize("hidden, dropout", [((24,), (0.3,)), ((32, 24, 16), (0.1, 0.2, 0.4))])
def test_every_kind_builds_at_any_depth(kind, build, hidden, dropout):
    from dropcli.config import ModelConfig
    from dropcli.model.mlp import hidden_layers, noise_layers, parameter_count

    model = build(kind, hidden=hidden, dropout=dropout, dropout_input=0.0 if kind == "none" else 0.2)
    assert [(m.in_features, m.out_features) for m in hidden_layers(model)] == list(zip((784, *hidden), hidden))
    assert model.output.in_features == hidden[-1]
    slots = list(noise_layers(model))
    assert slots == (["input_noise"] if kind != "none" else []) + [f"noise_{i}" for i in range(1, len(hidden) + 1)]
    if kind == "dropconnect":
        assert [layer.p for layer in hidden_layers(model)] == list(dropout)
    elif kind != "none":
        assert [noise_layers(model)[f"noise_{i + 1}"].p for i in range(len(hidden))] == list(dropout)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(ModelConfig(hidden=hidden, dropout=dropout))
    model.train()
    assert model(torch.rand(6, 784)).shape == (6, 10)


def test_a_two_layer_net_is_the_first_versions_net(build):
    # The parameter names of the 784-256-256-10 model of old (test_compat.py: its weights and steps too).
    model = build("scratch")
    assert list(model.state_dict()) == [
        "hidden_1.weight",
        "hidden_1.bias",
        "hidden_2.weight",
        "hidden_2.bias",
        "output.weight",
        "output.bias",
    ]
