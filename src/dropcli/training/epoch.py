"""The step and evaluation math: `run_epoch()` is `train_one_epoch()` then `evaluate()`.

Nothing here prints or writes files; runs/loop.py runs the epochs of a run. Per-batch progress goes
to a hook the caller may supply.
"""

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dropcli.config import Config
from dropcli.data import IMAGE_SIDE, Split, Splits, augment
from dropcli.errors import DropcliError
from dropcli.model.mlp import hidden_layers
from dropcli.parallel.workers import ONE_PROCESS, Workers
from dropcli.runtime import autocast
from dropcli.training import averaging
from dropcli.training.fused import FusedStep
from dropcli.training.records import EpochMetrics, TrainState
from dropcli.training.schedules import apply_max_norm, start_epoch
from dropcli.training.stats import ActivationStats

EVAL_BATCH_SIZE = 4096
# Batches between progress reports. Each report reads the loss off the device, which is also
# when a diverged loss is noticed.
PROGRESS_EVERY = 10


# on_progress(epoch, batches_done, n_batches, loss): called with 0 batches and no loss as an
# epoch starts, then every PROGRESS_EVERY batches and at the epoch's last batch.
ProgressHook = Callable[[int, int, int, "float | None"], None]


class Diverged(DropcliError):
    """The loss became NaN or infinite."""

    exit_code = 3

    def __init__(self, epoch: int, where: str, lr: float):
        super().__init__(
            f"training diverged: the loss became NaN or infinite at epoch {epoch}, {where}; "
            f"lower the learning rate (now {lr:g}), e.g. --set optim.lr={lr / 10:g}"
        )
        self.epoch = epoch


def run_epoch(
    state: TrainState,
    data: Splits,
    config: Config,
    epoch: int,
    on_progress: ProgressHook | None = None,
    stats: ActivationStats | None = None,
) -> EpochMetrics:
    """Epoch `epoch`: set its learning rate, train on `data.train`, then score the test and
    validation sets in eval mode (those the data has). Raises Diverged if a loss is not finite."""
    lr = start_epoch(state.optimizer, config.optim, epoch, config.train.epochs)
    if stats is not None:
        stats.reset()
    started = time.perf_counter()
    train_loss, train_acc = train_one_epoch(state, data.train, config, epoch, on_progress)
    averaging.after_epoch(state, config, epoch)
    train_seconds = time.perf_counter() - started
    precision, workers, scored = config.train.precision, state.workers, averaging.scoring_module(state)
    # A tune trial has no test split: settings are chosen on validation, and the test set is not scored at all.
    test_loss, test_acc = (
        evaluate(scored, data.test, precision=precision, workers=workers) if data.test is not None else (None, None)
    )
    val_loss, val_acc = evaluate(scored, data.val, precision=precision, workers=workers) if data.val is not None else (None, None)
    for name, value in (("train", train_loss), ("test", test_loss), ("validation", val_loss)):
        # The weights can turn non-finite on the epoch's last steps, after the last loss check.
        if value is not None and not math.isfinite(value):
            raise Diverged(epoch, f"its end (the {name} loss is {value})", config.optim.lr)
    return EpochMetrics(
        epoch=epoch,
        train_loss=train_loss,
        train_acc=train_acc,
        test_loss=test_loss,
        test_acc=test_acc,
        val_loss=val_loss,
        val_acc=val_acc,
        seconds=time.perf_counter() - started,
        samples_per_s=len(data.train) / train_seconds,
        activations=stats.read() if stats is not None else None,
        lr=lr,
        flip_acc=_flip_accuracies(scored, data, config, workers) if config.metrics.flip_average else None,
    )


def _flip_accuracies(model: nn.Module, data: Splits, config: Config, workers: Workers) -> dict[str, float]:
    splits = {"test": data.test, "val": data.val}
    return {
        name: flip_averaged_accuracy(model, split, precision=config.train.precision, workers=workers)
        for name, split in splits.items()
        if split is not None
    }


def _transform(config: Config, state: TrainState):
    """data.augment as a function of a batch, or None."""
    if not augment.is_on(config.data.augment):
        return None
    return lambda X: augment.shift_and_flip(X, config.data.augment, state.augment_generator)


def _after_step(config: Config, state: TrainState):
    """optim.max_norm, then train.average's ema, as a function called after each step, or None."""
    average = config.train.average == "ema"
    if config.optim.max_norm is None:
        return (lambda: averaging.after_step(state, config)) if average else None
    hidden = hidden_layers(state.model)

    def after() -> None:
        apply_max_norm(hidden, config.optim.max_norm)
        if average:  # the average of the weights as they are after the step, max-norm included
            averaging.after_step(state, config)

    return after


def train_one_epoch(
    state: TrainState, split: Split, config: Config, epoch: int, on_progress: ProgressHook | None = None
) -> tuple[float, float]:
    """Epoch `epoch`'s pass over `split` in a fresh random order; returns (mean loss, accuracy).

    config.train.engine says how each step is computed: "autograd" (the model's modules,
    autograd and the optimizer) or "fused" (fused.py; one process). config.train.precision bf16 runs the products in bf16:
    the fused step's own bf16 path, or autocast of the autograd engine's forward pass. Under torchrun
    (`state.workers` > 1, the model wrapped in DDP) every worker draws the same order and trains
    on its share of each global batch; the loss and accuracy returned are those of the whole
    epoch, the same on every worker. Raises Diverged at the first progress report whose loss is
    not finite.
    """
    model, optimizer, workers = state.train_module, state.optimizer, state.workers
    batch_size, transform, after_step = config.train.batch_size, _transform(config, state), _after_step(config, state)
    model.train()
    device = split.X.device
    world = workers.world_size
    if config.train.engine == "fused":
        step = FusedStep(model, optimizer, config.train.precision, config.train.label_smoothing)
    else:
        step = _AutogradStep(model, optimizer, config.train.precision, world, config.train.label_smoothing)
    order = torch.randperm(len(split), generator=state.order_generator).to(device)
    n_batches = -(-len(split) // batch_size)
    if on_progress is not None:
        on_progress(epoch, 0, n_batches, None)
    # Per-batch losses and the correct count stay on the device and are read at progress
    # reports and at the end: no host sync per batch.
    batch_losses = torch.zeros(n_batches, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for batch, start in enumerate(range(0, len(split), batch_size), start=1):
        index = order[start : start + batch_size]
        global_size = len(index)
        if world > 1:
            index = index[workers.rank :: world]  # this worker's share of the global batch
        # index_select: several times faster than X[index] for gathering rows on the CPU.
        X, y = split.X.index_select(0, index), split.y.index_select(0, index)  # (batch, 784), (batch,)
        if transform is not None:
            X = transform(X)
        loss, logits = step(X, y, global_size)  # (), (batch, 10)
        if after_step is not None:
            after_step()
        batch_losses[batch - 1] = loss
        correct += (logits.argmax(dim=1) == y).sum()
        if batch % PROGRESS_EVERY == 0 or batch == n_batches:
            # Every worker sees the same value, so all stop together if it is not finite.
            loss_value = loss.item() if world == 1 else workers.all_reduce(loss.clone()).item() / world
            if not math.isfinite(loss_value):
                # Once the weights are NaN every later loss is too: the first bad batch is here.
                bad = workers.all_reduce((~torch.isfinite(batch_losses[:batch])).to(torch.int64))
                raise Diverged(epoch, f"step {int(torch.nonzero(bad)[0]) + 1}", config.optim.lr)
            if on_progress is not None:
                on_progress(epoch, batch, n_batches, loss_value)
    last_size = len(split) - (n_batches - 1) * batch_size
    loss_sum = (batch_losses[:-1].sum() * batch_size + batch_losses[-1] * last_size) / world
    return workers.all_reduce(loss_sum).item() / len(split), workers.all_reduce(correct).item() / len(split)


class _AutogradStep:
    """One step the chapter's way: forward through the model, backward, optimizer.step()."""

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: str, world: int, label_smoothing: float = 0.0
    ):
        self.model, self.optimizer, self.precision, self.world = model, optimizer, precision, world
        self.label_smoothing = label_smoothing

    def __call__(self, X: torch.Tensor, y: torch.Tensor, global_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(X.device, self.precision):  # the forward pass only, as autocast asks
            logits = self.model(X)  # (batch, 10)
            if self.world == 1:
                loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            else:
                # DDP averages gradients over workers: scaled so, they are the global batch's mean.
                loss = F.cross_entropy(logits, y, reduction="sum", label_smoothing=self.label_smoothing) * (
                    self.world / global_size
                )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), logits


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE, precision: str = "fp32", workers: Workers = ONE_PROCESS
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on `split`, in eval mode (dropout off).

    Under torchrun each worker scores its share of `split` and the sums are added up.
    """
    model.eval()
    loss_sum = torch.zeros((), device=split.X.device)
    correct = torch.zeros((), dtype=torch.int64, device=split.X.device)
    for X, y in _share_in_batches(split, batch_size, workers):
        with autocast(split.X.device, precision):
            logits = model(X)  # (batch, 10)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
    return workers.all_reduce(loss_sum).item() / len(split), workers.all_reduce(correct).item() / len(split)


@torch.no_grad()
def flip_averaged_accuracy(
    model: nn.Module, split: Split, batch_size: int = EVAL_BATCH_SIZE, precision: str = "fp32", workers: Workers = ONE_PROCESS
) -> float:
    """Accuracy on `split` in eval mode, each image classified by the mean of its and its mirror
    image's softmax (test-time flip averaging)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=split.X.device)
    for X, y in _share_in_batches(split, batch_size, workers):
        mirrored = X.view(len(X), IMAGE_SIDE, IMAGE_SIDE).flip(-1).reshape(len(X), -1)
        with autocast(split.X.device, precision):
            p = F.softmax(model(X).float(), dim=1) + F.softmax(model(mirrored).float(), dim=1)  # (batch, 10)
        correct += (p.argmax(dim=1) == y).sum()
    return workers.all_reduce(correct).item() / len(split)


def _share_in_batches(split: Split, batch_size: int, workers: Workers):
    """This worker's share of `split` (under torchrun each scores its own, and the sums are added
    up), in order, as (X, y) batches of at most `batch_size`: (batch, 784), (batch,)."""
    n = len(split)
    first, last = n * workers.rank // workers.world_size, n * (workers.rank + 1) // workers.world_size
    for start in range(first, last, batch_size):
        end = min(start + batch_size, last)
        yield split.X[start:end], split.y[start:end]
