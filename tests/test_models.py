import pytest
import torch
from torch import nn

from dropcli.dropout import Dropout


@pytest.mark.parametrize("kind", ["scratch", "builtin"])
def test_shapes_and_layers(kind, build):
    model = build(kind, hidden_1=32, hidden_2=16, dropout_1=0.2, dropout_2=0.4)
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
