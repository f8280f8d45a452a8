"""What a run carries from epoch to epoch: each finished epoch's `EpochMetrics`, and the
`TrainState` that training changes (and so every checkpoint holds)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dropcli.parallel.workers import ONE_PROCESS, Workers


@dataclass(frozen=True)
class EpochMetrics:
    """One finished epoch's losses, accuracies (train mode for train_*, eval mode for test_ and val_) and speed."""

    epoch: int
    train_loss: float  # mean over the epoch's examples (a short last batch weighs less), in train mode (dropout on)
    train_acc: float
    test_loss: float | None  # after the epoch, in eval mode (dropout off); None for a tune trial (no test split)
    test_acc: float | None
    val_loss: float | None
    val_acc: float | None
    seconds: float  # the whole epoch: training and evaluation
    samples_per_s: float  # training examples per second of training time
    activations: dict[str, float] | None = None  # with metrics.activation_stats: see stats.py
    lr: float | None = None  # the epoch's learning rate (optim.schedule)
    flip_acc: dict[str, float] | None = None  # metrics.flip_average: split ("test", "val") -> accuracy


@dataclass
class TrainState:
    """Everything training changes, and so everything a checkpoint must hold."""

    model: nn.Module
    optimizer: torch.optim.Optimizer  # SGD, Adam or AdamW (optim.name)
    order_generator: torch.Generator  # the data order has its own generator, the same on any device
    augment_generator: torch.Generator  # and so do the shifts and flips of data.augment
    history: list[EpochMetrics] = field(default_factory=list)  # the finished epochs
    workers: Workers = ONE_PROCESS  # under torchrun, the workers that train this model together
    # What runs the forward passes; both share `model`'s weights. The train module is DDP around
    # the model under torchrun; either is torch.compile's module with train.compile.
    train_module: nn.Module | None = None
    eval_module: nn.Module | None = None
    averaged: nn.Module | None = None  # train.average's AveragedModel of `model` (averaging.py), or None

    def __post_init__(self):
        if self.train_module is None:
            self.train_module = self.model
        if self.eval_module is None:
            self.eval_module = self.model

    @property
    def epoch(self) -> int:
        return len(self.history)

    def use_compiled(self, compiled: nn.Module) -> None:
        """Evaluate with torch.compile's module, and train with it where DDP does not wrap the model."""
        if self.train_module is self.model:
            self.train_module = compiled
        self.eval_module = compiled


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its directory, its finished epochs and its summary.json (None where the
    run stopped on an error no summary records)."""

    run_dir: Path
    history: list[EpochMetrics]
    summary: dict[str, Any] | None
