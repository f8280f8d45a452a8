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
    epoch: int
    train_loss: float  # mean over the epoch's batches, in train mode (dropout on), as in d2l
    train_acc: float
    test_loss: float  # after the epoch, in eval mode (dropout off)
    test_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float  # the whole epoch: training and evaluation
    samples_per_s: float  # training examples per second of training time
    activations: dict[str, float] | None = None  # with metrics.activation_stats: see stats.py
    lr: float | None = None  # the epoch's learning rate (optim.schedule)


@dataclass
class TrainState:
    """Everything training changes, and so everything a checkpoint must hold."""

    model: nn.Module
    optimizer: torch.optim.Optimizer  # SGD, Adam or AdamW (optim.name)
    order_generator: torch.Generator  # the data order has its own generator, the same on any device
    augment_generator: torch.Generator  # and so do the shifts and flips of data.augment
    history: list[EpochMetrics] = field(default_factory=list)  # the finished epochs
    compiled: nn.Module | None = None  # torch.compile(model), with train.compile; shares its weights
    workers: Workers = ONE_PROCESS  # under torchrun, the workers that train this model together
    parallel: nn.Module | None = None  # under torchrun, DistributedDataParallel around the model

    @property
    def epoch(self) -> int:
        return len(self.history)

    @property
    def scorer(self) -> nn.Module:
        """The module to evaluate with: the compiled one where there is one."""
        return self.compiled if self.compiled is not None else self.model

    @property
    def runner(self) -> nn.Module:
        """The module to train: the DDP-wrapped one under torchrun, else the scorer."""
        return self.parallel if self.parallel is not None else self.scorer


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its directory, its finished epochs and its summary.json (None where the
    run stopped on an error no summary records)."""

    run_dir: Path
    history: list[EpochMetrics]
    summary: dict[str, Any] | None
