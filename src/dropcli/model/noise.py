"""Multiplicative Gaussian noise, the chapter's "your own noise injection" exercise.

Each unit is multiplied by 1 + sigma * eps with eps ~ N(0, 1) and sigma^2 = p / (1 - p): the
same mean (1) and variance as dropout's keep-and-rescale factor with drop probability p
(Srivastava et al. 2014, section 10). Backward multiplies the gradient by the same noise.
"""

import math

import torch
from torch import nn

from dropcli.model.dropout import check_probability


def gaussian_noise(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """x times N(1, p / (1 - p)) noise in training; x itself in eval mode or with p == 0."""
    _check_p(p)
    if not training or p == 0:
        return x
    return GaussianNoiseFunction.apply(x, float(p))


def _check_p(p: object) -> None:
    check_probability(p)
    if p == 1:
        raise ValueError("gaussian noise needs p < 1: its variance p / (1 - p) is infinite at p=1")


class GaussianNoiseFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        sigma = math.sqrt(p / (1 - p))
        noise = torch.randn_like(x).mul_(sigma).add_(1)
        ctx.save_for_backward(noise)
        return x * noise

    @staticmethod
    def backward(ctx, grad):
        (noise,) = ctx.saved_tensors
        return grad * noise, None


class GaussianNoise(nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        _check_p(p)
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_noise(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
