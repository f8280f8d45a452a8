"""Evaluate a saved checkpoint: loss, accuracy, per-class accuracy and the confusion matrix."""

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from dropcli import checkpoints
from dropcli.config import Config
from dropcli.data import FashionMNIST, dataset
from dropcli.dropout import Dropout
from dropcli.errors import DropcliError
from dropcli.models import N_CLASSES, DropConnectLinear
from dropcli.noise import GaussianNoise
from dropcli.train import autocast, evaluate, new_state


@dataclass(frozen=True)
class Evaluation:
    split: str
    epoch: int
    precision: str  # the run's train.precision: fp32, or bf16 autocast as in training
    loss: float
    accuracy: float
    class_names: tuple[str, ...]
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    mc_samples: int = 0
    mc_loss: float | None = None  # Monte Carlo dropout: noise left on, predictions averaged
    mc_accuracy: float | None = None


def evaluate_checkpoint(
    config: Config, payload: dict[str, Any], data: FashionMNIST, device: torch.device, split: str, mc_samples: int = 0
) -> Evaluation:
    """Rebuild the checkpoint's model on `device` and score it on one split, in eval mode.

    With `mc_samples` > 0, also score Monte Carlo dropout: the noise layers stay on and the
    softmax of that many stochastic passes is averaged (seeded with the run's seed).
    """
    subset = getattr(data, split)
    if subset is None:
        raise DropcliError(f"this run has no {split} split (data.val_split is 0); use --split test or --split train")
    state = new_state(config, device)
    checkpoints.restore(state, payload)
    # The same function and precision training used, so the numbers match what it reported.
    precision = config.train.precision
    loss, accuracy = evaluate(state.model, subset, precision=precision)
    confusion = confusion_matrix(state.model, subset.X, subset.y, precision=precision)
    per_class = (confusion.diag() / confusion.sum(dim=1).clamp(min=1)).tolist()
    mc_loss, mc_accuracy = None, None
    if mc_samples > 0:
        torch.manual_seed(config.seed)
        with autocast(device, precision):
            mc_loss, mc_accuracy = monte_carlo_dropout(state.model, subset.X, subset.y, mc_samples)
    return Evaluation(
        split, payload["epoch"], precision, loss, accuracy, dataset(config.data.name).class_names, per_class, confusion.tolist(), mc_samples, mc_loss,
        mc_accuracy,
    )  # fmt: skip


@torch.no_grad()
def monte_carlo_dropout(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, samples: int, batch_size: int = 4096) -> tuple[float, float]:
    """(loss, accuracy) of the mean softmax over `samples` passes with the noise layers on."""
    model.eval()
    for module in model.modules():
        # The layers that inject noise: every noise slot and DropConnect's hidden layers.
        if isinstance(module, (Dropout, torch.nn.Dropout, GaussianNoise, DropConnectLinear)):
            module.train()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        X_batch, y_batch = X[start : start + batch_size], y[start : start + batch_size]
        probabilities = sum(torch.softmax(model(X_batch), dim=1) for _ in range(samples)) / samples  # (batch, 10)
        loss_sum += float(F.nll_loss(probabilities.clamp_min(1e-12).log(), y_batch, reduction="sum"))
        correct += int((probabilities.argmax(dim=1) == y_batch).sum())
    model.eval()
    return loss_sum / len(y), correct / len(y)


@torch.no_grad()
def confusion_matrix(
    model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096, precision: str = "fp32"
) -> torch.Tensor:
    """(10, 10) counts of (true class, predicted class)."""
    model.eval()
    counts = torch.zeros(N_CLASSES ** 2, dtype=torch.int64, device=X.device)
    for start in range(0, len(y), batch_size):
        with autocast(X.device, precision):
            predicted = model(X[start : start + batch_size]).argmax(dim=1)
        counts += torch.bincount(y[start : start + batch_size] * N_CLASSES + predicted, minlength=counts.numel())
    return counts.view(N_CLASSES, N_CLASSES).cpu()
