"""The training loop: `train_one_epoch()` and `evaluate()`, and `fit()` around them.

Nothing here prints. Progress goes out through a `Callbacks` object the caller supplies, and
the results come back as `EpochMetrics`.
"""

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dropcli.config import Config
from dropcli.data import FashionMNIST, Split

EVAL_BATCH_SIZE = 4096
PROGRESS_EVERY = 10  # batches between progress reports: each one reads the loss off the device


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


class Callbacks:
    """Hooks `fit()` calls as it goes; override the ones you need."""

    def on_epoch_start(self, epoch: int, n_batches: int) -> None:
        pass

    def on_progress(self, batches_done: int, loss: float) -> None:
        pass

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        pass


def fit(model: nn.Module, data: FashionMNIST, config: Config, callbacks: Callbacks | None = None) -> list[EpochMetrics]:
    """Train `model` for `config.train.epochs` epochs of SGD; return each epoch's metrics."""
    callbacks = callbacks or Callbacks()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr)
    # The data order has its own generator, so it is the same for every model and device.
    order_generator = torch.Generator().manual_seed(config.seed)
    batch_size = config.train.batch_size
    n_batches = -(-len(data.train) // batch_size)
    history = []
    for epoch in range(1, config.train.epochs + 1):
        callbacks.on_epoch_start(epoch, n_batches)
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(
            model, optimizer, data.train, batch_size, order_generator, callbacks.on_progress
        )
        train_seconds = time.perf_counter() - started
        test_loss, test_acc = evaluate(model, data.test)
        val_loss, val_acc = evaluate(model, data.val) if data.val is not None else (None, None)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=train_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            seconds=time.perf_counter() - started,
            samples_per_s=len(data.train) / train_seconds,
        )
        callbacks.on_epoch_end(metrics)
        history.append(metrics)
    return history


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    split: Split,
    batch_size: int,
    generator: torch.Generator,
    on_progress=None,
) -> tuple[float, float]:
    """One pass over `split` in a fresh random order; returns (mean loss, accuracy)."""
    model.train()
    device = split.X.device
    order = torch.randperm(len(split), generator=generator).to(device)
    # Sums stay on the device and are read once at the end: no host sync per batch.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for batch, start in enumerate(range(0, len(split), batch_size), start=1):
        index = order[start : start + batch_size]
        # index_select: several times faster than X[index] for gathering rows on the CPU.
        X, y = split.X.index_select(0, index), split.y.index_select(0, index)  # (batch, 784), (batch,)
        logits = model(X)  # (batch, 10)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(index)
        correct += (logits.argmax(dim=1) == y).sum()
        if on_progress is not None and batch % PROGRESS_EVERY == 0:
            on_progress(batch, loss.item())
    return loss_sum.item() / len(split), correct.item() / len(split)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on `split`, in eval mode (dropout off)."""
    model.eval()
    loss_sum = torch.zeros((), device=split.X.device)
    correct = torch.zeros((), dtype=torch.int64, device=split.X.device)
    for start in range(0, len(split), batch_size):
        X, y = split.X[start : start + batch_size], split.y[start : start + batch_size]
        logits = model(X)  # (batch, 10)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)
