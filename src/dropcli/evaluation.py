"""Evaluate a saved checkpoint: loss, accuracy, per-class accuracy and the confusion matrix."""

from dataclasses import dataclass
from typing import Any

import torch

from dropcli import checkpoints
from dropcli.config import Config
from dropcli.data import CLASS_NAMES, FashionMNIST
from dropcli.errors import DropcliError
from dropcli.train import evaluate, new_state


@dataclass(frozen=True)
class Evaluation:
    split: str
    epoch: int
    loss: float
    accuracy: float
    class_names: tuple[str, ...]
    per_class_accuracy: list[float]
    confusion: list[list[int]]  # rows: true class, columns: predicted class


def evaluate_checkpoint(config: Config, payload: dict[str, Any], data: FashionMNIST, device: torch.device, split: str) -> Evaluation:
    """Rebuild the checkpoint's model on `device` and score it on one split, in eval mode."""
    subset = getattr(data, split)
    if subset is None:
        raise DropcliError(f"this run has no {split} split (data.val_split is 0); use --split test or --split train")
    state = new_state(config, device)
    checkpoints.restore(state, payload)
    # The same function training used, so the numbers match what training reported.
    loss, accuracy = evaluate(state.model, subset)
    confusion = confusion_matrix(state.model, subset.X, subset.y)
    per_class = (confusion.diag() / confusion.sum(dim=1).clamp(min=1)).tolist()
    return Evaluation(split, payload["epoch"], loss, accuracy, CLASS_NAMES, per_class, confusion.tolist())


@torch.no_grad()
def confusion_matrix(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """(10, 10) counts of (true class, predicted class)."""
    model.eval()
    counts = torch.zeros(len(CLASS_NAMES) ** 2, dtype=torch.int64, device=X.device)
    for start in range(0, len(y), batch_size):
        predicted = model(X[start : start + batch_size]).argmax(dim=1)
        counts += torch.bincount(y[start : start + batch_size] * len(CLASS_NAMES) + predicted, minlength=counts.numel())
    return counts.view(len(CLASS_NAMES), len(CLASS_NAMES)).cpu()
