"""The optimizer, and what it is set to each epoch: learning rate, momentum, the max-norm rule.

Everything here is a function of the config and the epoch number, so a run resumed at epoch k
sets exactly what an uninterrupted run would have set.
"""

import math

import torch
from torch import nn

from dropcli.config import OptimConfig


def build_optimizer(config: OptimConfig, parameters) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
        )
    optimizer = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return optimizer(parameters, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def learning_rate(config: OptimConfig, epoch: int, epochs: int) -> float:
    """The learning rate of `epoch` (1-based) of `epochs`."""
    lr, warmup = config.lr, config.warmup_epochs
    if config.schedule == "onecycle":
        rise = warmup or max(1, round(0.3 * epochs))  # epochs up to the peak, which is the last of them
        if epoch <= rise:
            return lr if rise == 1 else lr / 25 + (lr - lr / 25) * (epoch - 1) / (rise - 1)
        return _cosine(lr, lr / 1e4, epoch - rise, epochs - rise)
    if epoch <= warmup:
        return lr * epoch / (warmup + 1)
    if config.schedule == "step":
        return lr * config.step_gamma ** ((epoch - warmup - 1) // config.step_epochs)
    if config.schedule == "cosine":
        return _cosine(lr, 0.0, epoch - warmup - 1, epochs - warmup)
    return lr


def first_changed_epoch(config: OptimConfig, epochs: int, new_epochs: int, done: int) -> int | None:
    """The first of epochs 1..`done` whose learning rate differs when the run's total becomes
    `new_epochs` instead of `epochs` (cosine and onecycle are planned over the total; constant,
    step and warm-up are not); None if every epoch trained keeps its rate."""
    for epoch in range(1, done + 1):
        if not math.isclose(learning_rate(config, epoch, epochs), learning_rate(config, epoch, new_epochs), rel_tol=1e-12):
            return epoch
    return None


def _cosine(start: float, end: float, step: int, steps: int) -> float:
    """Step `step` of `steps` (0-based) along a half cosine from `start` down to `end`."""
    return end + (start - end) * (1 + math.cos(math.pi * step / steps)) / 2


def momentum(config: OptimConfig, epoch: int) -> float:
    """The paper's momentum warm-up: linear from optim.momentum to optim.momentum_final over
    optim.momentum_epochs epochs, then held (Srivastava et al. 2014, appendix A.1)."""
    if config.momentum_final is None:
        return config.momentum
    progress = min(1.0, (epoch - 1) / config.momentum_epochs) if config.momentum_epochs else 1.0
    return config.momentum + (config.momentum_final - config.momentum) * progress


def start_epoch(optimizer: torch.optim.Optimizer, config: OptimConfig, epoch: int, epochs: int) -> float:
    """Set the epoch's learning rate (and SGD momentum); return the learning rate."""
    lr = learning_rate(config, epoch, epochs)
    for group in optimizer.param_groups:
        group["lr"] = lr
        if config.name == "sgd":  # adam's and adamw's momentum is optim.betas, which no schedule moves
            group["momentum"] = momentum(config, epoch)
    return lr


@torch.no_grad()
def apply_max_norm(hidden_layers: list[nn.Linear], max_norm: float) -> None:
    """Rescale each hidden unit's incoming weight vector (a row of the weight) to norm <= max_norm."""
    for layer in hidden_layers:
        layer.weight.copy_(torch.renorm(layer.weight, p=2, dim=0, maxnorm=max_norm))
